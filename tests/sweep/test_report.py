"""`ocrtune sweep report`: every section with the right numbers, from real stored sweeps made
by tiny `--objective` sweeps (hierarchical with a diverged trial and replicates, a two-key
grid), recommended presets that validate and load, figures, methods text, and the report a
sweep writes when it ends."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from ocrtune.presets.load import load_preset
from ocrtune.sweep.store import Store

REPO = Path(__file__).resolve().parents[2]
CURVES = "tests.sweep.curves:"
LR, ETA, THRESH = "models.optimizer.lr", "models.scheduler.eta_min", "models.head.postprocess.thresh"


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("OCRTUNE_SWEEP_POLL_S", "0.05")


@pytest.fixture(scope="module")
def hier(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """baseline, hierarchical, 4 stages, the top value replicated twice, 1e-2 diverges."""
    from typer.testing import CliRunner

    from ocrtune.cli.app import app

    tmp = tmp_path_factory.mktemp("hier")
    mp = pytest.MonkeyPatch()
    mp.chdir(REPO)
    mp.setenv("OCRTUNE_SWEEP_POLL_S", "0.05")
    try:
        r = CliRunner().invoke(app, ["sweep", "--runs-dir", str(tmp / "runs"), "--preset", "baseline", "--objective",
                                     CURVES + "cliff", "--min-improvement", "0", "--stages", "4", "--replicates", "2",
                                     "--replicate-top", "1", "--name", "h", "--json"])
        assert r.exit_code == 0, r.stderr
        return tmp, json.loads(r.stdout)
    finally:
        mp.undo()


def test_the_sweep_writes_its_report_when_it_ends(hier) -> None:
    tmp, summary = hier
    folder = tmp / "runs/sweeps/h/report"
    assert summary["report"] == str(folder.resolve())
    for f in ("report.md", "report.html", "report.json", "methods.md", "methods.tex"):
        assert (folder / f).stat().st_size > 200, f
    assert sorted(p.name for p in (folder / "presets").iterdir()) == ["h-best.yaml", "h-hybrid.yaml", "h-stable.yaml"]
    html = (folder / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(list((folder / "figures").glob("*.png"))) >= 5
    assert 'src="figures/' not in html  # self-contained


def test_report_json_numbers(hier) -> None:
    tmp, summary = hier
    r = json.loads((tmp / "runs/sweeps/h/report/report.json").read_text())
    assert {"best", "baseline", "best_vs_baseline", "score_delta_pp", "ranking", "recommended", "figures"} <= set(r)
    assert r["baseline"]["score"] == pytest.approx(0.9653) and "96.53" in r["baseline"]["score_source"]
    best_lr = summary["best"]["params"][LR]
    rows = {c["key"]: c for c in r["best_vs_baseline"]}
    assert rows[LR]["baseline"] == 4e-4 and rows[LR]["best"] == pytest.approx(best_lr)
    assert rows[LR]["pct_change"] == pytest.approx((best_lr - 4e-4) / 4e-4 * 100)
    assert rows[ETA]["best"] == pytest.approx(0.025 * best_lr, rel=1e-5) and rows[ETA]["coupled"]
    # replicates: the pick's score is the mean over its runs, the pp delta against 96.53 %
    assert summary["best"]["n"] == 3
    assert r["score_delta_pp"] == pytest.approx((summary["best"]["score"] - 0.9653) * 100)
    scores = [x["score"] for x in r["ranking"]]
    assert scores == sorted(scores, reverse=True) and [x["rank"] for x in r["ranking"]] == list(range(1, len(scores) + 1))
    for x in r["ranking"]:
        assert x["delta_pp"] == pytest.approx((x["score"] - 0.9653) * 100)
    (div,) = r["unscored"]
    assert div["status"] == "diverged" and div["params"][LR] == 1e-2 and "nan" in div["reason"]
    # impact: tertile bands of the explored values (replicates would count their values twice)
    pts = [(x["params"][LR], x["score"]) for x in r["ranking"] if x["kind"] == "explore"]
    q1, q2 = 10 ** np.quantile(np.log10([v for v, _ in pts]), [1 / 3, 2 / 3])
    bands = {b["label"]: b for b in r["impact"][0]["bands"]}
    for label, sel in (("low", lambda v: v <= q1), ("mid", lambda v: q1 < v <= q2), ("high", lambda v: v > q2)):
        got = [s for v, s in pts if sel(v)]
        assert bands[label]["n"] == len(got) and bands[label]["mean"] == pytest.approx(np.mean(got))
    assert "scored best on average" in r["impact"][0]["sentence"]
    assert "one parameter" in r["importance"]["note"]
    # coarse-to-fine: the bracket around the pick and the equal-resolution grid
    p = r["progress"]
    assert [s["stage"] for s in p["stages"]] == [1, 2, 3, 4] and p["evaluations"] == 20
    tried = sorted({x["params"][LR] for x in r["ranking"] if x["kind"] == "explore"} | {1e-2})
    i = min(range(len(tried)), key=lambda j: abs(math.log10(tried[j]) - math.log10(best_lr)))
    width = math.log10(tried[i + 1]) - math.log10(tried[i - 1])
    assert p["resolution"] == pytest.approx(width)
    assert p["grid_equivalent"] == math.ceil(3 / (width / 2) - 1e-9) + 1
    assert p["stages"][1]["improvement_pp"] == pytest.approx((p["stages"][1]["best_so_far"] - p["stages"][0]["best_so_far"]) * 100)
    assert set(r["recommended"]) == {"best", "stable", "hybrid"}
    assert set(r["figures"]) >= {"search_path", "convergence_heatmap", "efficiency", "learning_curves", "score_vs_lr"}


def test_recommended_presets_validate_load_and_keep_the_full_horizon(hier) -> None:
    tmp, summary = hier
    r = json.loads((tmp / "runs/sweeps/h/report/report.json").read_text())
    best_lr = summary["best"]["params"][LR]
    recs = {x["kind"]: x for x in r["recommendations"]}
    best = load_preset(r["recommended"]["best"]).preset
    assert best.models.optimizer.lr == pytest.approx(best_lr)
    assert best.models.scheduler.eta_min == pytest.approx(0.025 * best_lr, rel=1e-5)
    assert best.trainer.max_epochs == 22  # baseline's full horizon, not the trial's 3 epochs
    text = Path(r["recommended"]["best"]).read_text()
    assert text.startswith("# Written by `ocrtune sweep report h`") and yaml.safe_load(text)["extends"] == "baseline"
    assert recs["best"]["command"].startswith("ocrtune train --preset ") and recs["best"]["command"].endswith("h-best.yaml")
    assert recs["best"]["n"] == 3 and recs["best"]["spread"] is not None  # replicates: mean +- spread
    assert "short horizon" in recs["best"]["risk"]
    hybrid = load_preset(r["recommended"]["hybrid"]).preset
    assert hybrid.models.optimizer.lr == pytest.approx(math.sqrt(4e-4 * best_lr))  # geometric on a log scale
    assert recs["hybrid"]["score"] is None and "not measured" in recs["hybrid"]["risk"]
    stable = load_preset(r["recommended"]["stable"]).preset
    assert stable.models.scheduler.eta_min < stable.models.optimizer.lr


def test_methods_text_carries_the_sweeps_numbers(hier) -> None:
    tmp, _ = hier
    r = json.loads((tmp / "runs/sweeps/h/report/report.json").read_text())
    md = (tmp / "runs/sweeps/h/report/methods.md").read_text()
    tex = (tmp / "runs/sweeps/h/report/methods.tex").read_text()
    p = r["progress"]
    for text in (md, tex):
        assert f"{p['evaluations']} evaluations" in text and f"{p['grid_equivalent']} evaluations" in text
        assert "3 epoch(s)" in text and "hierarchical" in text
    assert "\\%" in tex or "%" not in md  # LaTeX escapes


def test_report_against_a_measured_run_and_on_a_two_key_grid(cli, tmp_path: Path) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(f"{LR}: {{distribution: log_uniform, min: 1.0e-4, max: 1.0e-2}}\n"
                     f"{THRESH}: {{values: [0.2, 0.3, 0.4, 0.5]}}\n")
    code, out, err = cli("sweep", "--runs-dir", str(tmp_path / "runs"), "--objective", CURVES + "two_keys", "--space",
                         str(space), "--strategy", "grid", "--points", "3", "--epochs", "2", "--name", "g",
                         "--no-report", "--json")
    assert code == 0, err
    assert json.loads(out)["report"] is None and not (tmp_path / "runs/sweeps/g/report").exists()
    run = tmp_path / "runs" / "2026-01-01-ref"
    run.mkdir(parents=True)
    cfg = load_preset("cpu-demo", ["models.optimizer.lr=0.002"]).preset.model_dump(mode="json")
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / "summary.json").write_text(json.dumps({"status": "completed", "best": {"hmean": 0.81}, "best_epoch": 1}))
    code, out, err = cli("sweep", "report", "g", "--runs-dir", str(tmp_path / "runs"), "--baseline", str(run),
                         "--out", str(tmp_path / "rep"), "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["baseline"]["kind"] == "run" and r["baseline"]["score"] == 0.81 and "measured" in r["baseline"]["score_source"]
    assert r["score_delta_pp"] == pytest.approx((r["best"]["score"] - 0.81) * 100)
    assert r["progress"] is None and "parallel_coordinates" in r["figures"]
    assert {i["key"] for i in r["impact"]} == {LR, THRESH}
    thresh = next(i for i in r["impact"] if i["key"] == THRESH)
    assert [b["label"] for b in thresh["bands"]] == ["0.2", "0.3", "0.4", "0.5"]  # a categorical: one band per value
    assert r["importance"]["values"] is not None and set(r["importance"]["values"]) == {LR, THRESH}  # 12 trials
    assert (tmp_path / "rep/report.md").is_file()
    code, out, err = cli("sweep", "report", "g", "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "rep"))
    assert code == 0 and "report:" in out and "hybrid" in out  # the rich summary; the folder is replaced whole


def test_report_of_a_running_sweep_names_the_running_trials(cli, tmp_path: Path) -> None:
    code, _, err = cli("sweep", "--runs-dir", str(tmp_path / "runs"), "--objective", CURVES + "peak", "--range",
                       "1e-4,1e-2", "--points", "3", "--stages", "1", "--name", "r", "--no-report")
    assert code == 0 and "report:" not in err and not (tmp_path / "runs/sweeps/r/report").exists()
    store = Store.open("r", None, runs_dir=tmp_path / "runs")
    try:  # one more attempt, claimed by this (live) process: running
        plan = store.plans()[0]
        store.enqueue(plan, 0, attempt=2)
        claimed = store.claim()
        code, out, err = cli("sweep", "report", "r", "--runs-dir", str(tmp_path / "runs"), "--json")
    finally:
        store.close()
    assert code == 0, err
    r = json.loads(out)
    assert r["running"] == [claimed.number]
    assert "Still running" in (tmp_path / "runs/sweeps/r/report/report.md").read_text()


def test_report_errors_are_one_line(cli, tmp_path: Path) -> None:
    code, _, err = cli("sweep", "report", "nope", "--runs-dir", str(tmp_path / "runs"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "nope" in err
    assert cli("sweep", "--runs-dir", str(tmp_path / "runs"), "--objective", CURVES + "peak", "--range", "1e-4,1e-2",
               "--points", "2", "--stages", "1", "--name", "e", "--no-report")[0] == 0
    code, _, err = cli("sweep", "report", "e", "--runs-dir", str(tmp_path / "runs"), "--baseline", "no-such-preset")
    assert code == 2 and "no-such-preset" in err and "Traceback" not in err


def test_report_of_a_tpe_sweep_and_of_an_imported_csv(cli, tmp_path: Path) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(f"{LR}: {{distribution: log_uniform, min: 1.0e-4, max: 1.0e-2}}\n"
                     f"{THRESH}: {{distribution: uniform, min: 0.1, max: 0.5}}\n")
    code, out, err = cli("sweep", "--runs-dir", str(tmp_path / "runs"), "--objective", CURVES + "two_keys", "--space",
                         str(space), "--strategy", "tpe", "--trials", "6", "--epochs", "2", "--name", "t", "--json")
    assert code == 0, err
    r = json.loads((tmp_path / "runs/sweeps/t/report/report.json").read_text())
    assert r["strategy"] == "tpe" and len(r["ranking"]) == 6 and r["progress"] is None
    assert "only 6 completed trials" in r["importance"]["note"]  # too few to trust
    assert {x["kind"] for x in r["recommendations"]} == {"best", "stable", "hybrid"}
    assert load_preset(r["recommended"]["stable"]).preset.models.head.postprocess.thresh == pytest.approx(
        next(x for x in r["recommendations"] if x["kind"] == "stable")["values"][THRESH])
    # a W&B export, imported, reported like any sweep (H-mean in percent in the file)
    csv = tmp_path / "wandb.csv"
    csv.write_text("Name,State,models.optimizer.lr,val/hmean\n"
                   "a,finished,0.0001,71.2\nb,finished,0.001,85.5\nc,crashed,0.01,\nd,finished,0.0005,80.25\n")
    code, out, err = cli("sweep", "import", str(csv), "--name", "w", "--preset", "cpu-demo", "--metric", "val/hmean",
                         "--runs-dir", str(tmp_path / "runs"))
    assert code == 0, err
    code, out, err = cli("sweep", "report", "w", "--runs-dir", str(tmp_path / "runs"), "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["strategy"] == "imported" and [x["score"] for x in r["ranking"]] == pytest.approx([0.855, 0.8025, 0.712])
    assert r["unscored"][0]["reason"] == "state crashed in the file"
    assert r["best_vs_baseline"][0]["best"] == 1e-3
    assert r["best_vs_baseline"][0]["pct_change"] == pytest.approx((1e-3 - 2e-3) / 2e-3 * 100)  # cpu-demo lr 2e-3
    assert load_preset(r["recommended"]["best"]).preset.models.optimizer.lr == 1e-3


def test_a_report_that_cannot_be_written_keeps_the_sweeps_results(cli, tmp_path: Path, monkeypatch) -> None:
    import ocrtune.sweep.report.build as build

    def broken(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(build, "write_files", broken)
    code, out, err = cli("sweep", "--runs-dir", str(tmp_path / "runs"), "--objective", CURVES + "peak", "--range",
                         "1e-4,1e-2", "--points", "2", "--stages", "1", "--name", "x")
    assert code == 1 and "report not written: No space left on device" in err and "sweep report x" in err
    assert "Traceback" not in err and not (tmp_path / "runs/sweeps/x/report").exists()
    assert not [p for p in (tmp_path / "runs/sweeps/x").iterdir() if p.name.startswith(".report")]  # no staging left
    monkeypatch.undo()
    monkeypatch.chdir(REPO)
    code, out, err = cli("sweep", "report", "x", "--runs-dir", str(tmp_path / "runs"))
    assert code == 0 and (tmp_path / "runs/sweeps/x/report/report.md").is_file()


def test_report_never_replaces_a_folder_that_is_not_a_report(cli, tmp_path: Path) -> None:
    assert cli("sweep", "--runs-dir", str(tmp_path / "runs"), "--objective", CURVES + "peak", "--range", "1e-4,1e-2",
               "--points", "2", "--stages", "1", "--name", "o")[0] == 0
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    (tmp_path / "afile").write_text("keep me too")
    for out in (mine, tmp_path / "runs/sweeps/o", tmp_path / "runs", tmp_path / "afile"):
        code, _, err = cli("sweep", "report", "o", "--runs-dir", str(tmp_path / "runs"), "--out", str(out))
        assert code == 2 and "--out" in err and len(err.strip().splitlines()) == 1, (out, err)
    assert (mine / "notes.txt").read_text() == "keep me" and (tmp_path / "afile").read_text() == "keep me too"
    assert (tmp_path / "runs/sweeps/o/study.db").is_file()
    assert not [p for p in tmp_path.rglob(".*tmp-*")]  # no staging folder left behind
    # an earlier report (default place or --out) is replaced whole
    assert cli("sweep", "report", "o", "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "rep"))[0] == 0
    assert cli("sweep", "report", "o", "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "rep"))[0] == 0


def test_against_another_preset_every_differing_setting_is_compared_and_blended(cli, tmp_path: Path) -> None:
    code, out, err = cli("sweep", "--runs-dir", str(tmp_path / "runs"), "--preset", "baseline", "--objective",
                         CURVES + "peak", "--stages", "2", "--name", "b8", "--set", "models.optimizer.weight_decay=0.001",
                         "--json")
    assert code == 0, err
    r = json.loads((tmp_path / "runs/sweeps/b8/report/report.json").read_text())
    rows = {c["key"]: c for c in r["best_vs_baseline"]}
    # the baseline is the preset as written: the sweep's --set shows as a setting it kept fixed
    wd = rows["models.optimizer.weight_decay"]
    assert (wd["baseline"], wd["best"], wd["swept"]) == (1e-4, 1e-3, False) and wd["pct_change"] == pytest.approx(900)
    best = load_preset(r["recommended"]["best"]).preset
    assert best.models.optimizer.weight_decay == 1e-3 and best.reported is None  # scores are not inherited
    code, out, err = cli("sweep", "report", "b8", "--runs-dir", str(tmp_path / "runs"), "--baseline", "run8",
                         "--out", str(tmp_path / "vs-run8"), "--json")
    assert code == 0, err
    r = json.loads(out)
    rows = {c["key"]: c for c in r["best_vs_baseline"]}
    assert rows["models.scheduler.T_max"]["baseline"] == 24 and rows["models.scheduler.T_max"]["best"] == 22
    assert r["baseline"]["epochs"] == 10 and "not a full run" in r["baseline"]["score_source"]
    hybrid = load_preset(r["recommended"]["hybrid"]).preset
    assert hybrid.models.scheduler.T_max == 23  # run8 24 and best 22, blended
    assert hybrid.models.optimizer.weight_decay == pytest.approx((6.797303101020006e-05 + 1e-3) / 2)
    text = Path(r["recommended"]["hybrid"]).read_text()
    assert "--baseline run8" in text.splitlines()[0] and "reported:" in text
    md = (tmp_path / "vs-run8/report.md").read_text()
    assert "measured after 10 epoch(s), the trials' after 3" in md and "(fixed in the sweep)" in md


# --- a sharp best beside a broad plateau: the stable rule, placement, the path printed -------

SPIKY = "tests.sweep.report_objectives:spike_and_plateau"


@pytest.fixture(scope="module")
def spiky(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A 9-point log grid over lr 1e-4..1e-2 (10**-4, 10**-3.75, ..., 10**-2) on cpu-demo (lr
    2e-3), run as a user runs it (no --json): a lone spike at 10**-3.5 (0.90, both neighbours
    0.60) and a broad plateau 10**-2.75..10**-2.25 at 0.88; every curve steady."""
    from typer.testing import CliRunner

    from ocrtune.cli.app import app

    tmp = tmp_path_factory.mktemp("spiky")
    space = tmp / "space.yaml"
    space.write_text(f"{LR}: {{distribution: log_uniform, min: 1.0e-4, max: 1.0e-2}}\n")
    mp = pytest.MonkeyPatch()
    mp.chdir(REPO)
    mp.setenv("OCRTUNE_SWEEP_POLL_S", "0.05")
    try:
        r = CliRunner().invoke(app, ["sweep", "--runs-dir", str(tmp / "runs"), "--objective", SPIKY, "--space",
                                     str(space), "--strategy", "grid", "--points", "9", "--epochs", "1", "--name", "sp"])
        assert r.exit_code == 0, r.stderr
        return tmp, r.stdout, r.stderr
    finally:
        mp.undo()


def test_sweep_prints_the_report_path_when_it_ends(spiky) -> None:
    tmp, out, err = spiky
    folder = (tmp / "runs/sweeps/sp/report").resolve()
    assert f"report: {folder / 'report.md'} (also report.html, figures/, presets/)" in err.splitlines()
    assert (folder / "report.md").is_file() and (folder / "report.html").is_file()


def test_stable_is_the_plateau_not_the_sharp_best(spiky) -> None:
    tmp, _, _ = spiky
    r = json.loads((tmp / "runs/sweeps/sp/report/report.json").read_text())
    recs = {x["kind"]: x for x in r["recommendations"]}
    best, stable = recs["best"], recs["stable"]
    assert best["values"][LR] == pytest.approx(10**-3.5) and best["score"] == pytest.approx(0.90)
    # the plateau's middle: its neighbours on both sides score 0.88 too; the spike's score 0.60
    assert stable["values"][LR] == pytest.approx(10**-2.5) and stable["score"] == pytest.approx(0.88)
    assert stable["trial"] != best["trial"]
    assert "2.00 pp below the best trial" in stable["risk"] and "Gaussian-weighted mean" in stable["rule"]
    assert "its nearest neighbours score 30.00 pp lower: a sharp optimum" in best["risk"]
    assert load_preset(r["recommended"]["stable"]).preset.models.optimizer.lr == pytest.approx(10**-2.5)
    assert load_preset(r["recommended"]["best"]).preset.models.optimizer.lr == pytest.approx(10**-3.5)


def test_the_strip_marks_baseline_and_best_where_they_lie(spiky, cli) -> None:
    tmp, _, _ = spiky
    r = json.loads((tmp / "runs/sweeps/sp/report/report.json").read_text())
    (pl,) = r["placement"]
    # 48 cells over log10 lr -4..-2, cell round((log10 v + 4) / 2 * 47): the 9 grid values at
    # 0, 6, 12, 18, 24, 29, 35, 41, 47; best 10**-3.5 at 12; baseline cpu-demo 2e-3 at 31
    strip = "0.0001 [|     |     *     |     |    | B   |     |     |] 0.01"
    assert pl["strip"] == strip and pl["baseline"] == 2e-3 and pl["best"] == pytest.approx(10**-3.5)
    cells = strip[strip.index("[") + 1:strip.index("]")]
    assert len(cells) == 48 and cells.index("*") == 12 and cells.index("B") == 31
    line = f"{'lr':>14}  {strip}"
    assert line in (tmp / "runs/sweeps/sp/report/report.md").read_text().splitlines()
    code, out, err = cli("sweep", "report", "sp", "--runs-dir", str(tmp / "runs"), "--out", str(tmp / "again"))
    assert code == 0, err
    assert f"  {line}" in out.splitlines()  # the terminal summary


# --- the hierarchical sweep: methods text and per-stage progress ------------------------------


def test_methods_text_states_range_stages_points_compute_and_both_uncertainties(hier) -> None:
    tmp, summary = hier
    folder = tmp / "runs/sweeps/h/report"
    r = json.loads((folder / "report.json").read_text())
    p = r["progress"]
    explore = [t for t in summary["trials"] if t["kind"] == "explore"]
    stages = sorted({t["stage"] for t in explore})
    first = [t for t in explore if t["stage"] == stages[0]]
    hours = sum(t["duration_s"] or 0.0 for t in summary["trials"]) / 3600
    best = summary["best"]
    assert (len(stages), len(first), best["n"]) == (4, 5, 3) and best["spread"] is not None
    delta = (best["score"] - 0.9653) * 100
    md, tex = (folder / "methods.md").read_text(), (folder / "methods.tex").read_text()
    for text, pm in ((md, "+-"), (tex, r"$\pm$")):
        assert "over [1e-05, 0.01] (3 decades)" in text  # the default --range
        assert f"a first stage of {len(first)} log-spaced values, then {len(stages) - 1} refinement stage(s)" in text
        assert f"It ran {p['evaluations']} evaluations" in text and p["evaluations"] == len(explore)
        assert "Each trial trained for 3 epoch(s)" in text
        assert f"the sweep used {hours:.3g} CPU-hours in all" in text
        assert "stopped because: reached 4 stages" in text
        # the chosen value with its own uncertainty (half its bracket) AND its score's mean +- spread
        assert f"lr = {best['params'][LR]:.4g} (located to within {pm}{p['resolution'] / 2:.2g} decades)" in text
        assert f"scoring a mean of {best['score']:.4f} {pm} {best['spread']:.4f} over 3 runs" in text
        assert f"{delta:+.2f} pp against baseline" in text
    assert r["methods"]["markdown"] == md.rstrip("\n") and r["methods"]["latex"] == tex


def test_report_json_progress_carries_each_stages_intervals_and_the_stop_reason(hier) -> None:
    tmp, summary = hier
    r = json.loads((tmp / "runs/sweeps/h/report/report.json").read_text())
    p = r["progress"]
    explore = [t for t in summary["trials"] if t["kind"] == "explore"]
    by_stage = {k: sorted(t["params"][LR] for t in explore if t["stage"] == k) for k in (1, 2, 3, 4)}
    rows = p["stages"]
    assert [s["stage"] for s in rows] == [1, 2, 3, 4]
    assert rows[0]["intervals"] == [] and rows[0]["reason"] == "initial log grid"
    assert rows[0]["values"] == pytest.approx(list(np.logspace(-5, -2, 5)))
    for s in rows:
        assert s["values"] == pytest.approx(by_stage[s["stage"]])
    for s in rows[1:]:
        earlier = sorted({v for k in range(1, s["stage"]) for v in by_stage[k]})
        assert len(s["intervals"]) == 2  # --top 2: the two best-ranked gaps
        for a, b, n in s["intervals"]:  # each a gap between two adjacent values tried before this stage
            i = min(range(len(earlier)), key=lambda j: abs(earlier[j] - a))
            assert earlier[i] == pytest.approx(a) and earlier[i + 1] == pytest.approx(b)
            assert len([v for v in s["values"] if a < v < b]) == n
        assert sum(n for _, _, n in s["intervals"]) == len(s["values"]) == 5
        assert s["reason"] == "refine " + ", ".join(f"{a:.3g}..{b:.3g} x{n}" for a, b, n in s["intervals"])
    # why the coarse-to-fine search stopped, not only that the replicates after it finished
    assert summary["reason"] == "replicates finished"
    assert p["stop_reason"].startswith("reached 4 stages") and "replicate" in p["stop_reason"]
    md = (tmp / "runs/sweeps/h/report/report.md").read_text()
    assert f"Stopped: {p['stop_reason']}." in md


def test_methods_text_of_a_grid_sweep_states_its_range_points_and_compute(spiky, cli) -> None:
    tmp, _, _ = spiky
    code, out, err = cli("sweep", "status", "sp", "--runs-dir", str(tmp / "runs"), "--json")
    assert code == 0, err
    s = json.loads(out)
    hours = sum(t["duration_s"] or 0.0 for t in s["trials"]) / 3600
    md = (tmp / "runs/sweeps/sp/report/methods.md").read_text()
    tex = (tmp / "runs/sweeps/sp/report/methods.tex").read_text()
    for text in (md, tex):
        assert ("We tuned models.optimizer.lr over [0.0001, 0.01] on a log scale (9 value(s) tried) with a grid "
                "search (9 trials).") in text
        assert "Each trial trained for 1 epoch(s)" in text and f"the sweep used {hours:.3g} CPU-hours in all" in text
        assert "The chosen configuration is lr = 0.0003162, scoring 0.9000." in text  # no replicates, no bracket
