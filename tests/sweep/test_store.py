"""The sweep store on every backend: in-memory, SQLite, journal file and (marked) PostgreSQL."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from ocrtune.errors import InputError, OcrtuneError
from ocrtune.sweep.plan.space import parse_space
from ocrtune.sweep.plan.strategies import TPE
from ocrtune.sweep.run.liveness import host_id, process_start
from ocrtune.sweep.store import Store, make_pruner, propose_tpe, resolve_storage, show_storage
from ocrtune.sweep.types import Batch, GridSearch, Result, Status, SweepConfig
from tests.sweep.helpers import LR, REPO

PG = os.environ.get("OCRTUNE_TEST_POSTGRES")
STORAGES = [
    "memory",
    "sqlite",
    "journal",
    pytest.param("postgres", marks=[pytest.mark.postgres,
                                    pytest.mark.skipif(not PG, reason="OCRTUNE_TEST_POSTGRES is not set (no PostgreSQL server)")]),
]


def storage_url(kind: str, tmp_path: Path) -> str:
    return {"memory": f"memory:{uuid.uuid4().hex}", "sqlite": f"sqlite:///{tmp_path}/study.db",
            "journal": f"journal:{tmp_path}/study.log", "postgres": PG or ""}[kind]


@pytest.fixture(params=STORAGES)
def opened(request, tmp_path):
    """(kind, url, name, store) for a fresh study; PostgreSQL studies are deleted afterwards."""
    kind = request.param
    url, name = storage_url(kind, tmp_path), f"t-{uuid.uuid4().hex[:10]}"
    store = Store.open(name, url, create=True)
    yield kind, url, name, store
    if kind == "postgres":
        store.drop()


def claim_when_released(store: Store) -> None:
    """Claim the coordinator lock of a process just killed: a database server drops a dead
    client's session lock a few milliseconds after the client is gone."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return store.claim_coordinator()
        except OcrtuneError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def plan_of(store: Store, values, index: int = 0):
    plan = store.add_plan(Batch(tuple({LR: v} for v in values), index, False, "test"))
    for i in range(len(values)):
        store.enqueue(plan, i)
    return plan


def test_settings_plans_and_reopen(opened):
    kind, url, name, store = opened
    assert store.config() is None and store.plans() == []
    cfg = SweepConfig(name=name, search=GridSearch(points=3), base={"seed": 7, "score": math.nan},
                      dims=({"key": LR, "kind": "log_uniform", "leaf": "float", "low": 1e-5, "high": 1e-2},))
    store.set_config(cfg)
    plan_of(store, [1e-4, 1e-3])
    plan_of(store, [3e-4], index=1)
    again = Store.open(name, url)
    assert again.config() == replace(cfg, base={"seed": 7, "score": None})  # NaN is stored as null
    assert [(p.seq, p.index, p.params) for p in again.plans()] == [(0, 0, ({LR: 1e-4}, {LR: 1e-3})), (1, 1, ({LR: 3e-4},))]
    queued = again.trials(Status.QUEUED)
    assert [(t.plan, t.slot, t.params, t.status) for t in queued] == [
        (0, 0, {LR: 1e-4}, "queued"), (0, 1, {LR: 1e-3}, "queued"), (1, 0, {LR: 3e-4}, "queued")]
    with pytest.raises(InputError, match="minimizes its metric|maximizes its metric"):
        Store.open(name, url, create=True, direction="minimize")


def test_missing_sweep_is_a_located_input_error(tmp_path):
    with pytest.raises(InputError, match="no sweep named 'nope'"):
        Store.open("nope", None, runs_dir=tmp_path)
    with pytest.raises(InputError, match="no sweep named 'nope'"):
        Store.open("nope", f"memory:{uuid.uuid4().hex}")
    assert not Store.exists("nope", None, runs_dir=tmp_path)


def test_claims_are_exclusive_across_threads(opened):
    kind, url, name, store = opened
    plan_of(store, [10.0 ** (-5 + i / 4) for i in range(12)])
    got: list[int] = []
    lock = threading.Lock()

    def take():
        while (t := store.claim({"worker": threading.current_thread().name})) is not None:
            with lock:
                got.append(t.slot)

    threads = [threading.Thread(target=take) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(12))
    assert store.claim() is None
    assert len(store.trials()) == 12  # claiming never creates trials
    running = store.trials(Status.RUNNING)
    assert all(t.attrs["host"] == host_id() and t.attrs["pid"] == os.getpid() for t in running)


CLAIMER = textwrap.dedent("""
    import json, sys
    from ocrtune.sweep.store import Store
    store = Store.open(sys.argv[1], sys.argv[2])
    got = []
    while (t := store.claim()) is not None:
        got.append(t.slot)
    print(json.dumps(got))
""")


@pytest.mark.slow
@pytest.mark.parametrize("kind", [s for s in STORAGES if s != "memory"])
def test_claims_are_exclusive_across_processes(kind, tmp_path):
    url, name = storage_url(kind, tmp_path), f"p-{uuid.uuid4().hex[:10]}"
    store = Store.open(name, url, create=True)
    try:
        plan_of(store, [10.0 ** (-5 + i / 8) for i in range(24)])
        procs = [subprocess.Popen([sys.executable, "-c", CLAIMER, name, url], stdout=subprocess.PIPE, text=True, cwd=REPO)
                 for _ in range(2)]
        got = []
        for p in procs:
            out, _ = p.communicate(timeout=120)
            assert p.returncode == 0
            got += __import__("json").loads(out)
        assert sorted(got) == list(range(24))
    finally:
        if kind == "postgres":
            store.drop()


def test_finish_statuses(opened):
    kind, url, name, store = opened
    plan_of(store, [1e-5, 1e-4, 1e-3, 1e-2, 3e-3])
    ts = [store.claim() for _ in range(5)]
    assert store.finish(ts[0].trial_id, "completed", 0.71, {"epochs": 3, "run_dir": "/x"})
    assert store.finish(ts[1].trial_id, "diverged", 0.42, {"error": "loss is NaN at step 4"})  # best epoch before NaN
    assert store.finish(ts[2].trial_id, "oom", 0.3, {"error": "CUDA out of memory\nTried to allocate"})
    assert store.finish(ts[3].trial_id, "lost", None, {"error": "gone"})
    assert store.finish(ts[4].trial_id, "completed", None)  # no score: recorded as failed
    assert not store.finish(ts[0].trial_id, "failed")  # already ended: the first outcome stays
    by = {t.slot: t for t in store.trials()}
    assert (by[0].state, by[0].status, by[0].score, by[0].attrs["epochs"]) == ("complete", "completed", 0.71, 3)
    assert (by[1].state, by[1].status, by[1].score, by[1].attrs["error"]) == ("fail", "diverged", None, "loss is NaN at step 4")
    assert (by[2].status, by[2].score) == ("oom", None) and by[2].attrs["error"].endswith("Tried to allocate")
    assert (by[4].status, by[4].attrs["error"]) == ("failed", "finished without a score")
    assert [s for s in range(5) if by[s].is_result] == [0, 1, 2, 4]
    assert not by[3].is_result and not by[3].is_live
    assert by[0].result() == Result({LR: 1e-5}, 0.71, 0, "explore")


def _dead_pid() -> tuple[int, float | None]:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    start = None
    p.wait()
    return p.pid, start


def test_dead_worker_is_lost_and_written_result_adopted(opened):
    kind, url, name, store = opened
    plan_of(store, [1e-4, 1e-3, 3e-4])
    a, b, c = store.claim(), store.claim(), store.claim()
    pid, _ = _dead_pid()
    for t in (a, b):
        store.set_attrs(t.trial_id, pid=pid, pid_start=None)
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        store.set_attrs(c.trial_id, pid=alive.pid, pid_start=process_start(alive.pid))

        def adopt(t):
            return ("completed", 0.5, {"epochs": 2}) if t.trial_id == b.trial_id else None

        changed = store.reap_stale(grace_s=3600, adopt=adopt)
        assert sorted((t.slot, t.status) for t in changed) == [(0, "lost"), (1, "completed")]
        by = {t.slot: t for t in store.trials()}
        assert "gone" in by[0].attrs["error"] and by[1].score == 0.5 and "adopted" in by[1].attrs
        assert by[2].state == "running"  # its process lives
    finally:
        alive.kill()
        alive.wait()


def _reap_after_silence(store, beating_id: int, grace_s: float, before: float, after: float) -> list:
    """Reap at first sight (the clock starts then), ``before`` seconds later (inside the grace:
    nothing lost) and ``after`` more (past it), ``beating_id`` beating before each later reap;
    returns what the last reap declared lost. Silence is timed by the store's clock, set here,
    not by how fast the machine is."""
    now = [100.0]
    store.clock = lambda: now[0]
    assert store.reap_stale(grace_s=grace_s) == []
    now[0] += before
    store.heartbeat(beating_id)
    assert store.reap_stale(grace_s=grace_s) == []
    now[0] += after
    store.heartbeat(beating_id)
    return store.reap_stale(grace_s=grace_s)


def test_silent_worker_is_lost_after_grace(opened):
    """Journal and in-memory studies (no Optuna heartbeat): silence timed by the observer's clock."""
    kind, url, name, store = opened
    if kind in ("sqlite", "postgres"):
        pytest.skip("RDB storages use Optuna's heartbeat: test_rdb_silence_is_optunas_stale_trial_check")
    plan_of(store, [1e-4, 1e-3])
    quiet, beating = store.claim(), store.claim()
    for t in (quiet, beating):
        store.set_attrs(t.trial_id, host="elsewhere/remote", pid=1)
    lost = _reap_after_silence(store, beating.trial_id, grace_s=0.3, before=0.2, after=0.25)
    assert [(t.slot, t.status) for t in lost] == [(0, "lost")]
    assert "no heartbeat" in lost[0].attrs["error"]
    assert not store.heartbeat(quiet.trial_id)  # the silent worker learns it lost the trial


def test_a_trial_whose_claimer_was_killed_mid_claim_is_lost_after_grace(opened):
    """``claim`` moves a trial to running, then records its owner: a process killed between the
    two leaves a running trial still marked queued, with no owner or heartbeat. On every storage
    (RDB ones included: Optuna's stale-trial check never sees it) silence declares it lost, so
    the coordinator queues its slot again instead of waiting for it forever."""
    from optuna.trial import TrialState

    kind, url, name, store = opened
    plan_of(store, [1e-4, 1e-3])
    half = store.trials()[0]
    store._storage.set_trial_state_values(half.trial_id, TrialState.RUNNING)  # the kill lands here
    whole = store.claim()
    seen = {t.trial_id: t for t in store.trials()}[half.trial_id]
    assert seen.is_live and seen.attrs.get("status") == "queued" and "claimed" not in seen.attrs
    lost = _reap_after_silence(store, whole.trial_id, grace_s=60, before=30, after=31)
    assert [(t.trial_id, t.status) for t in lost] == [(half.trial_id, "lost")]
    assert "stopped before it recorded itself" in lost[0].attrs["error"] and not lost[0].is_live
    assert {t.trial_id: t for t in store.trials()}[whole.trial_id].status == "running"


@pytest.mark.parametrize("kind", ["sqlite", STORAGES[-1]])
def test_rdb_silence_is_optunas_stale_trial_check(kind, tmp_path):
    """SQLite and PostgreSQL: Optuna's RDB heartbeat (recorded at claim and by every beat, timed
    by the database's clock) and its stale-trial check decide silence; the failed trial reads
    as lost, with the reason, and its worker learns it lost the trial."""
    import optuna

    url, name = storage_url(kind, tmp_path), f"hb-{uuid.uuid4().hex[:10]}"
    store = Store.open(name, url, create=True)
    try:
        plan_of(store, [1e-4, 1e-3])
        quiet, beating = store.claim(), store.claim()
        for t in (quiet, beating):
            store.set_attrs(t.trial_id, host="elsewhere/remote", pid=1)
        assert store.reap_stale(grace_s=2) == []
        time.sleep(1.6)
        assert store.heartbeat(beating.trial_id)
        time.sleep(1.6)  # quiet: >= 3 s since its claim; beating: <= 2 s (the database counts whole seconds)
        lost = store.reap_stale(grace_s=2)
        assert [(t.slot, t.status) for t in lost] == [(0, "lost")]
        assert "Optuna's stale-trial check" in lost[0].attrs["error"]
        by = {t.slot: t for t in store.trials()}
        assert by[0].status == "lost" and not by[0].is_live and by[1].status == "running"
        assert not store.heartbeat(quiet.trial_id)  # the silent worker learns it lost the trial
        assert optuna.load_study(study_name=name, storage=store._storage).trials[quiet.number].state == \
            optuna.trial.TrialState.FAIL
    finally:
        if kind == "postgres":
            store.drop()
        store.close()


@pytest.mark.parametrize("kind", [s for s in STORAGES if s != "memory"])
def test_one_coordinator_at_a_time(kind, tmp_path):
    url, name = storage_url(kind, tmp_path), f"c-{uuid.uuid4().hex[:10]}"
    store = Store.open(name, url, create=True)
    code = ("import sys, time; from ocrtune.sweep.store import Store; s = Store.open(sys.argv[1], sys.argv[2]); "
            "s.claim_coordinator(); print('ok', flush=True); time.sleep(60)")
    other = subprocess.Popen([sys.executable, "-c", code, name, url], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert other.stdout.readline().strip() == "ok"
        assert store.coordinator(60)["pid"] == other.pid
        with pytest.raises(OcrtuneError, match="already coordinated by pid"):
            store.claim_coordinator()
        other.kill()
        other.wait()
        assert store.coordinator(60) is None
        claim_when_released(store)  # the old one is gone: take over
        store.release_coordinator()
        assert store.coordinator(60) is None
    finally:
        other.kill()
        if kind == "postgres":
            store.drop()


def test_the_coordinator_lock_is_held_by_the_storage(opened):
    """Two stores on one study (as two processes would have) cannot both coordinate, even in
    one process: a lock, not a recorded pid, decides."""
    kind, url, name, store = opened
    other = Store.open(name, url)
    try:
        store.claim_coordinator()
        store.claim_coordinator()  # again: already ours
        with pytest.raises(OcrtuneError, match=f"already coordinated by pid {os.getpid()}"):
            other.claim_coordinator()
        store.coordinator_beat()
        store.release_coordinator()
        other.claim_coordinator()
        with pytest.raises(OcrtuneError, match="already coordinated"):
            store.claim_coordinator()
    finally:
        other.close()
    store.claim_coordinator()  # closing a store gives its lock back
    store.release_coordinator()


@pytest.mark.postgres
@pytest.mark.skipif(not PG, reason="OCRTUNE_TEST_POSTGRES is not set (no PostgreSQL server)")
def test_a_coordinator_whose_lock_session_ended_takes_the_lock_again_or_stops(tmp_path):
    import sqlalchemy

    name = f"s-{uuid.uuid4().hex[:10]}"
    store, other = Store.open(name, PG, create=True), None
    admin = sqlalchemy.create_engine(str(PG).replace("postgresql://", "postgresql+psycopg2://", 1))

    def end_lock_session() -> None:  # what a database restart or a dropped connection does
        pid = store._coord._conn.execute(sqlalchemy.text("SELECT pg_backend_pid()")).scalar()
        with admin.connect() as c:
            c.execute(sqlalchemy.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            c.commit()
            # termination is only signalled: wait until the backend (and its advisory lock) is gone;
            # a new transaction per look, as pg_stat_activity is a snapshot per transaction
            deadline = time.monotonic() + 10
            while c.execute(sqlalchemy.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"),
                            {"p": pid}).scalar():
                c.rollback()
                assert time.monotonic() < deadline, f"backend {pid} did not end"
                time.sleep(0.02)

    try:
        store.claim_coordinator()
        end_lock_session()
        store.coordinator_beat()  # the lock is gone with its session: taken again
        other = Store.open(name, PG)
        with pytest.raises(OcrtuneError, match="already coordinated"):
            other.claim_coordinator()
        end_lock_session()
        other.claim_coordinator()  # another coordinator got in while this one's session was down
        with pytest.raises(OcrtuneError, match="another coordinator took over the sweep meanwhile"):
            store.coordinator_beat()
    finally:
        if other is not None:
            other.close()
        store.close()
        store.drop()
        admin.dispose()


RACER = textwrap.dedent("""
    import json, sys, time
    from ocrtune.errors import OcrtuneError
    from ocrtune.sweep.store import Store
    store, held, refused = Store.open(sys.argv[1], sys.argv[2]), [], 0
    print("ready", flush=True)
    sys.stdin.readline()  # start together, however long the imports took
    end = time.time() + float(sys.argv[3])
    while time.time() < end:
        try:
            store.claim_coordinator()
        except OcrtuneError:
            refused += 1
            time.sleep(0.005)
            continue
        start = time.time()  # inside the true hold: recorded holds overlap only if real ones do
        time.sleep(0.03)
        held.append((start, time.time()))
        store.release_coordinator()
        time.sleep(0.005)
    print(json.dumps({"held": held, "refused": refused}))
""")


@pytest.mark.slow
@pytest.mark.parametrize("kind", [s for s in STORAGES if s not in ("memory", "journal")])  # journal: same flock as sqlite
def test_coordinators_started_together_never_both_win(kind, tmp_path):
    import json

    url, name = storage_url(kind, tmp_path), f"r-{uuid.uuid4().hex[:10]}"
    store = Store.open(name, url, create=True)
    procs = [subprocess.Popen([sys.executable, "-c", RACER, name, url, "1.5"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=REPO) for _ in range(2)]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        out = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
        holds = sorted(tuple(h) for o in out for h in o["held"])
        assert holds and sum(o["refused"] for o in out) > 0  # they did contend
        assert all(b[0] >= a[1] for a, b in zip(holds, holds[1:]))  # never two holders at once
    finally:
        for p in procs:
            p.kill()
        store.close()
        if kind == "postgres":
            store.drop()


def test_pruner_never_prunes_before_min_epochs(opened):
    kind, url, name, store = opened
    store.set_pruner("median", min_epochs=2)
    plan_of(store, [10.0 ** (-5 + i / 2) for i in range(7)])
    for i in range(5):  # five good finished trials: the median's start-up
        t = store.claim()
        for step in (1, 2, 3):
            store.report(t.trial_id, step, 0.5 + 0.1 * step)
        store.finish(t.trial_id, "completed", 0.8)
    bad = store.claim()
    store.report(bad.trial_id, 1, 0.01)
    assert not store.should_prune(bad.trial_id)  # epoch 1 < --min-epochs 2
    store.report(bad.trial_id, 2, 0.02)
    assert store.should_prune(bad.trial_id)
    good = store.claim()
    store.report(good.trial_id, 2, 0.9)
    assert not store.should_prune(good.trial_id)


def test_make_pruner_validates():
    assert make_pruner(None) is None
    with pytest.raises(InputError, match="median, asha"):
        make_pruner("hyperband")
    with pytest.raises(InputError, match="--min-epochs"):
        make_pruner("asha", 0)


SPACE = parse_space({
    LR: {"distribution": "log_uniform", "min": 1e-5, "max": 1e-1},
    "models.head.postprocess.thresh": {"distribution": "q_uniform", "min": 0.1, "max": 0.5, "q": 0.05},
    "models.encoder.out_indices": {"values": [[1, 2, 3, 4], [2, 3, 4]]},
    "models.optimizer.weight_decay": {"value": 1e-4},
})


def score(p) -> float:
    x = math.log10(p[LR]) + 3
    return 1.0 - x * x - 10 * (p["models.head.postprocess.thresh"] - 0.3) ** 2 - 0.1 * len(p["models.encoder.out_indices"])


def test_tpe_proposals_are_valid_deterministic_and_learn():
    first = propose_tpe(SPACE.dims, [], 3, seed=5, direction="maximize")
    assert first == propose_tpe(SPACE.dims, [], 3, seed=5, direction="maximize")
    tpe = TPE(SPACE, 40, propose_tpe, batch=4, seed=1)
    hist: list[Result] = []
    while not (b := tpe.next_batch(hist)).done:
        assert len({repr(sorted(p.items())) for p in b.params}) == len(b.params)  # constant liar: no repeats
        for p in b.params:
            assert 1e-5 <= p[LR] <= 1e-1 and p["models.optimizer.weight_decay"] == 1e-4
            assert p["models.encoder.out_indices"] in ([1, 2, 3, 4], [2, 3, 4])
            assert round(p["models.head.postprocess.thresh"] / 0.05, 6).is_integer()
        hist += [Result(p, score(p) if p[LR] < 3e-2 else None, b.index) for p in b.params]
    assert len(hist) == 40
    dist = [abs(math.log10(r.params[LR]) + 3) for r in hist]
    assert sum(dist[-10:]) / 10 < sum(dist[:10]) / 10  # later proposals close in on the optimum


def test_resolve_storage_forms(tmp_path):
    assert resolve_storage("s", None, tmp_path) == ("sqlite", str(tmp_path / "sweeps" / "s" / "study.db"))
    assert resolve_storage("s", "sqlite:////abs/x.db") == ("sqlite", "/abs/x.db")
    assert resolve_storage("s", "runs/x.log") == ("journal", "runs/x.log")
    assert resolve_storage("s", "journal:j.txt") == ("journal", "j.txt")
    assert resolve_storage("s", "postgres://u:p@h/db") == ("rdb", "postgresql://u:p@h/db")
    assert show_storage("rdb", "postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"
    with pytest.raises(InputError, match="--storage"):
        resolve_storage("s", "redis://h")


def test_bad_file_storages_are_one_line_errors(tmp_path):
    (tmp_path / "folder").mkdir()
    for bad in ("journal:", "sqlite:///", "sqlite:///  ", f"sqlite:///{tmp_path}/folder", f"journal:{tmp_path}/folder"):
        with pytest.raises(InputError, match="--storage: .*(names no file|is a folder)"):
            Store.open("s", bad, create=True)
    (tmp_path / "junk.db").write_text("not a database\n")
    (tmp_path / "junk.log").write_text("not a journal\n")
    (tmp_path / "bin.log").write_bytes(b"\xff\xfe\x00garbage\n")
    for bad, why in ((f"sqlite:///{tmp_path}/junk.db", "file is not a database"),
                     (f"journal:{tmp_path}/junk.log", "Expecting value"),
                     (f"journal:{tmp_path}/bin.log", "can't decode"),
                     ("sqlite:////proc/x.db", "No such file or directory")):
        with pytest.raises(OcrtuneError, match=f"cannot open storage .*{why}") as e:
            Store.open("s", bad, create=True)
        assert not isinstance(e.value, InputError) and "\n" not in str(e.value)


def test_sweep_names_are_plain(tmp_path):
    for bad in ("My Sweep/x", "../up", ".hidden", "", "a" * 101, "tab\there"):
        with pytest.raises(InputError, match="--name: a sweep name uses only letters"):
            Store.open(bad, None, runs_dir=tmp_path, create=True)
    assert Store.open("lr-b4_v1.2", None, runs_dir=tmp_path, create=True).name == "lr-b4_v1.2"


@pytest.mark.postgres
@pytest.mark.skipif(not PG, reason="OCRTUNE_TEST_POSTGRES is not set (no PostgreSQL server)")
def test_waiting_for_a_sweep_holds_one_connection_pool(cli, monkeypatch):
    """A worker started before its coordinator polls with one engine, closed when it gives up."""
    import sqlalchemy

    app = f"ocrtune-wait-{uuid.uuid4().hex[:8]}"
    url = f"{PG}{'&' if '?' in str(PG) else '?'}application_name={app}"
    monkeypatch.setenv("OCRTUNE_SWEEP_POLL_S", "0.02")
    seen: list[int] = []
    watcher = sqlalchemy.create_engine(str(PG).replace("postgresql://", "postgresql+psycopg2://", 1))

    def count() -> int:
        with watcher.connect() as c:
            return c.execute(sqlalchemy.text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :a"),
                             {"a": app}).scalar()

    stop = threading.Event()
    th = threading.Thread(target=lambda: [seen.append(count()) or stop.wait(0.1) for _ in iter(stop.is_set, True)])
    th.start()
    try:
        code, out, err = cli("sweep", "worker", "--name", "nobody-made-me", "--storage", url, "--wait", "1.5")
    finally:
        stop.set()
        th.join()
    assert code == 2 and "sweep 'nobody-made-me' does not exist in postgresql://ocrtune:***@" in err
    deadline = time.monotonic() + 10  # a closed connection's backend leaves pg_stat_activity a moment later
    while count() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert max(seen) <= 2 and count() == 0  # one small pool, not one per poll; nothing left after
    watcher.dispose()


@pytest.mark.postgres
@pytest.mark.skipif(not PG, reason="OCRTUNE_TEST_POSTGRES is not set (no PostgreSQL server)")
def test_stores_opened_together_on_a_fresh_database_all_open():
    """A coordinator and its workers started together on an empty database: Optuna's table
    creation is not atomic, so all but one used to fail."""
    import sqlalchemy

    admin = sqlalchemy.create_engine(str(PG).replace("postgresql://", "postgresql+psycopg2://", 1))
    for _ in range(3):
        schema = f"fresh_{uuid.uuid4().hex[:10]}"
        with admin.begin() as c:
            c.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
        url = f"{PG}{'&' if '?' in str(PG) else '?'}options=-csearch_path%3D{schema}"
        start, errors, stores = threading.Barrier(4), [], []

        def open_one(i: int) -> None:
            start.wait()
            try:
                stores.append(Store.open(f"s{i}", url, create=True))
            except Exception as e:  # noqa: BLE001 - collected and asserted below
                errors.append(repr(e))

        threads = [threading.Thread(target=open_one, args=(i,)) for i in range(4)]
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert errors == [] and len(stores) == 4
        finally:
            for s in stores:
                s.close()
            with admin.begin() as c:
                c.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()
