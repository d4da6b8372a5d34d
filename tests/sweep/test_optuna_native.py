"""A finished sweep is an ordinary Optuna study: real params with their distributions, values,
states, per-epoch intermediate values and ocrtune's figures as user attrs, so
``optuna.load_study``, ``trials_dataframe``, ``optuna.importance`` and optuna-dashboard work
on it. Checked on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import math
import os
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution

from ocrtune.sweep.store import Store

REPO = Path(__file__).resolve().parents[2]
CURVES = "tests.sweep.curves:"
LR, THRESH = "models.optimizer.lr", "models.head.postprocess.thresh"
PG = os.environ.get("OCRTUNE_TEST_POSTGRES")


def optuna_url(url: str) -> str:
    """The URL a user passes to Optuna: with psycopg2 (not psycopg 3) installed, SQLAlchemy
    needs the driver named, as docs/sweeps.md says."""
    import importlib.util

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None:
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url
SPACE = f"""\
{LR}: {{distribution: log_uniform, min: 1.0e-4, max: 1.0e-2}}
{THRESH}: {{distribution: uniform, min: 0.1, max: 0.5}}
"""


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # objective modules are imported in the trial processes from here
    monkeypatch.setenv("OCRTUNE_SWEEP_POLL_S", "0.05")


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=[
    pytest.mark.postgres, pytest.mark.skipif(not PG, reason="OCRTUNE_TEST_POSTGRES is not set")])])
def test_multi_parameter_sweep_reads_as_an_optuna_study(cli, tmp_path: Path, backend: str) -> None:
    name = f"native-{uuid.uuid4().hex[:8]}"
    storage = PG if backend == "postgresql" else None
    url = optuna_url(PG) if storage else f"sqlite:///{tmp_path}/runs/sweeps/{name}/study.db"
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    args = ["sweep", "--runs-dir", str(tmp_path / "runs"), "--objective", CURVES + "two_keys", "--space", str(space),
            "--strategy", "random", "--trials", "12", "--epochs", "3", "--name", name, "--parallel", "2", "--json"]
    if storage:
        args += ["--storage", storage]
    code, out, err = cli(*args)
    try:
        assert code == 0, err
        s = json.loads(out)
        study = optuna.load_study(study_name=name, storage=url)
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        assert len(done) == 12
        # params are real Optuna params, with the space's distributions
        for t in done:
            assert set(t.params) == {LR, THRESH}
            assert t.distributions[LR] == FloatDistribution(1e-4, 1e-2, log=True)
            assert t.distributions[THRESH] == FloatDistribution(0.1, 0.5)
            assert sorted(t.intermediate_values) == [1, 2, 3]  # one per epoch
            assert t.user_attrs["status"] == "completed" and "loss_reduction_rate" in t.user_attrs
        # Optuna's best is the top measured trial: the same trial and values as the sweep's rows
        top = max(s["trials"], key=lambda r: r["score"])
        assert study.best_value == pytest.approx(top["score"])
        assert study.best_params == pytest.approx(top["params"])
        assert study.best_trial.number == top["number"]
        df = study.trials_dataframe()
        assert {f"params_{LR}", f"params_{THRESH}", "value", "state"} <= set(df.columns)
        assert df[f"params_{LR}"].notna().sum() == 12
        imp = optuna.importance.get_param_importances(study)
        assert set(imp) == {LR, THRESH} and math.isclose(sum(imp.values()), 1.0, rel_tol=1e-6)
    finally:
        if storage:
            Store.open(name, storage).drop()


def test_hierarchical_sweep_has_the_learning_rate_as_a_log_param(cli, tmp_path: Path) -> None:
    code, out, err = cli("sweep", "--no-report", "--runs-dir", str(tmp_path / "runs"), "--objective", CURVES + "peak", "--range",
                         "1e-5,1e-2", "--stages", "2", "--epochs", "2", "--name", "h", "--json")
    assert code == 0, err
    s = json.loads(out)
    study = optuna.load_study(study_name="h", storage=f"sqlite:///{tmp_path}/runs/sweeps/h/study.db")
    assert study.best_params == {LR: pytest.approx(max(s["trials"], key=lambda r: r["score"])["params"][LR])}
    for t in study.trials:
        assert t.distributions[LR] == FloatDistribution(1e-5, 1e-2, log=True)
        # the coupled eta_min is recorded with the trial (user attr), not as a searched param
        assert "models.scheduler.eta_min" not in t.params


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=[
    pytest.mark.postgres, pytest.mark.skipif(not PG, reason="OCRTUNE_TEST_POSTGRES is not set")])])
def test_pruned_trials_keep_their_last_value_and_failed_ones_none(cli, tmp_path: Path, backend: str) -> None:
    """``--prune median`` on five good rates, then two weak ones (pruned: state PRUNED, value the
    last epoch reported, intermediate values up to it) and one that diverges (FAIL, no value).
    The weak rates take 0.5 s an epoch (``slow_when_bad``), so the pruner can stop them between
    epochs; ``lr_response`` ends in milliseconds, before the worker's first poll could."""
    from tests.sweep_objectives import curve

    name = f"pruned-{uuid.uuid4().hex[:8]}"
    storage = PG if backend == "postgresql" else None
    url = optuna_url(PG) if storage else f"sqlite:///{tmp_path}/runs/sweeps/{name}/study.db"
    space = tmp_path / "space.yaml"
    space.write_text(f"{LR}: {{values: [5.0e-4, 4.0e-4, 6.0e-4, 3.0e-4, 7.0e-4, 2.0e-5, 3.0e-5, 1.0e-2]}}\n")
    args = ["sweep", "--no-report", "--runs-dir", str(tmp_path / "runs"),
            "--objective", "tests.sweep_objectives:slow_when_bad",
            "--space", str(space), "--strategy", "grid", "--epochs", "4", "--prune", "median", "--name", name, "--json"]
    if storage:
        args += ["--storage", storage]
    code, out, err = cli(*args)
    try:
        assert code == 0, err
        assert [t["status"] for t in json.loads(out)["trials"]] == ["completed"] * 5 + ["pruned"] * 2 + ["diverged"]
        study = optuna.load_study(study_name=name, storage=url)
        by_status: dict[str, list[optuna.trial.FrozenTrial]] = {}
        for t in study.trials:
            by_status.setdefault(t.user_attrs["status"], []).append(t)
        assert len(by_status["completed"]) == 5 and len(by_status["pruned"]) == 2
        for t in by_status["pruned"]:
            assert t.state == optuna.trial.TrialState.PRUNED
            last = t.last_step
            assert last is not None and 1 <= last < 4  # stopped between epochs, before the last one
            assert sorted(t.intermediate_values) == list(range(1, last + 1))  # one per epoch it ran
            for step, v in t.intermediate_values.items():
                assert v == pytest.approx(curve(t.params[LR]) * step / 4)
            assert t.value == t.intermediate_values[last]  # its last reported value, as Optuna keeps it
            assert t.params[LR] in (pytest.approx(2e-5), pytest.approx(3e-5))
        # Optuna's best is among completed trials only: a pruned trial's value never ranks there
        assert study.best_trial.user_attrs["status"] == "completed"
        (diverged,) = by_status["diverged"]
        assert diverged.state == optuna.trial.TrialState.FAIL and diverged.value is None
        assert diverged.params == {LR: pytest.approx(1e-2)}  # params are there for failed trials too
    finally:
        if storage:
            Store.open(name, storage).drop()
