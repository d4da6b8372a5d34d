"""The sweep's boundary types: statuses and their store states, the trial spec and result as
JSON, the stored settings (and which of them a resume may change)."""

from __future__ import annotations

import json
from dataclasses import fields, replace

import pytest

from ocrtune.sweep.types import (
    Coupling,
    GridSearch,
    HierarchicalSearch,
    RandomSearch,
    Status,
    SweepConfig,
    TPESearch,
    TrialResult,
    TrialSpec,
    derived_values,
    scored,
)

LR, ETA = "models.optimizer.lr", "models.scheduler.eta_min"


def test_status_groups_and_the_one_store_mapping() -> None:
    assert {s for s in Status if s.is_result} == {Status.COMPLETED, Status.DIVERGED, Status.OOM, Status.FAILED,
                                                  Status.PRUNED}
    assert {s for s in Status if s.is_scored} == {Status.COMPLETED, Status.PRUNED}
    assert {s for s in Status if not s.is_result and not s.is_live} == {Status.LOST, Status.INTERRUPTED}  # queued again
    assert {s.store_state for s in Status} == {"waiting", "running", "complete", "pruned", "fail"}
    for s in Status:  # a recorded status wins; the state alone gives the obvious one
        assert Status.from_store(s.store_state, s.value) is s
    assert Status.from_store("complete") is Status.COMPLETED and Status.from_store("waiting") is Status.QUEUED
    assert Status.from_store("fail", "no-such-status") is Status.FAILED
    assert Status.COMPLETED == "completed" and str(Status.LOST) == "lost"


def test_only_completed_and_pruned_keep_a_score() -> None:
    assert scored(Status.COMPLETED, 0.5) == 0.5 and scored("pruned", 0.4) == 0.4
    assert scored(Status.DIVERGED, 0.9) is None and scored(Status.COMPLETED, float("nan")) is None


def test_trial_spec_and_result_round_trip_through_json(tmp_path) -> None:
    spec = TrialSpec(name="s-t0001", params={LR: 1e-3}, derived={ETA: 2.5e-5}, epochs=2, metric="hmean",
                     base={"seed": 1}, preset="baseline", data="/data", objective=None)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec.to_json()))
    assert TrialSpec.read(path) == spec
    assert spec.settings == {LR: 1e-3, ETA: 2.5e-5}
    res = TrialResult(Status.DIVERGED, None, "/run", "loss is NaN", None, "cpu", 1.5)
    again = TrialResult.from_json(json.loads(json.dumps(res.to_json())))
    assert again == res and again.status is Status.DIVERGED
    assert TrialResult.from_json({"status": "completed", "score": float("inf")}).score is None
    assert TrialResult.from_json({}).status is Status.FAILED  # a result without a status is not a success


def test_coupling_values() -> None:
    c = Coupling(ETA, LR, 0.025)
    assert derived_values({LR: 4e-4}, [c]) == {ETA: pytest.approx(1e-5)}
    assert derived_values({"seed": 1}, [c]) == {}
    assert "0.025 x models.optimizer.lr" in c.describe()


def _cfg(**kw) -> SweepConfig:
    base = {"models": {"optimizer": {"lr": 4e-4, "weight_decay": 1e-4}}, "seed": 42}
    return SweepConfig(name="s", preset="baseline", base=base, dims=({"key": LR, "kind": "log_uniform", "leaf": "float",
                       "low": 1e-5, "high": 1e-2, "q": None, "values": []},), couplings=(Coupling(ETA, LR, 0.025),), **kw)


@pytest.mark.parametrize("search", [HierarchicalSearch(), GridSearch(points=3, trials=7), RandomSearch(trials=9),
                                    TPESearch(trials=11, batch=2)])
def test_config_round_trips_through_json(search) -> None:
    cfg = _cfg(search=search)
    again = SweepConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.strategy == search.kind and again.differences(cfg) == []


def test_resume_may_change_only_the_fields_marked_resumable() -> None:
    marked = {f.name for f in fields(SweepConfig) if f.metadata.get("resumable")}
    assert marked == {"name", "space_file", "trial_timeout"}
    assert {f.name for f in fields(HierarchicalSearch) if f.metadata.get("resumable")} == {
        "stages", "min_improvement", "min_improvement_abs", "replicates", "replicate_top"}
    assert {f.name for f in fields(TPESearch) if f.metadata.get("resumable")} == {"trials", "batch"}
    stored = _cfg()
    grown = replace(stored, search=replace(stored.search, stages=9, replicates=2), trial_timeout=60.0)
    assert grown.differences(stored) == []
    changed = replace(stored, epochs=5, base={**stored.base, "models": {"optimizer": {"lr": 4e-4, "weight_decay": 0.1}}},
                      search=replace(stored.search, points=7))
    got = [str(d) for d in changed.differences(stored)]
    assert got == ["models.optimizer.weight_decay (--preset/--set): stored 0.0001, now 0.1",
                   "--points: stored 5, now 7", "--epochs: stored 3, now 5"]
    assert [(d.key, d.option) for d in changed.differences(stored)] == [
        ("base.models.optimizer.weight_decay", "models.optimizer.weight_decay (--preset/--set)"),
        ("search.points", "--points"), ("epochs", "--epochs")]
    # couplings follow from the preset and the keys (reported there): not a difference of their own
    assert replace(stored, couplings=(Coupling(ETA, LR, 0.05),)).differences(stored) == []
    other = replace(stored, search=GridSearch())
    assert [str(d) for d in other.differences(stored)] == ["--strategy: stored 'hierarchical', now 'grid'"]


def test_a_sweep_stored_before_a_schema_key_existed_resumes_unchanged() -> None:
    from ocrtune.presets.schema import Preset

    now = replace(_cfg(), base=Preset().model_dump(mode="json"))
    older = now.base | {"trainer": {k: v for k, v in now.base["trainer"].items() if k != "ema"}}
    assert replace(now, base=older).base != now.base
    assert now.differences(replace(now, base=older)) == []  # trainer.ema takes its default
    on = now.base | {"trainer": now.base["trainer"] | {"ema": {"enabled": True, "decay": 0.999, "warmup": True}}}
    assert [str(d) for d in replace(now, base=on).differences(replace(now, base=older))] == [
        "trainer.ema.enabled (--preset/--set): stored false, now true"]


def test_differences_are_named_by_the_options_that_set_them() -> None:
    stored = _cfg()
    dim = {**stored.dims[0], "high": 1e-3}
    changed = replace(stored, search=replace(stored.search, high=1e-3, points=4, log=False, top=3,
                                             param="models.optimizer.weight_decay"),
                      dims=(dim,), epochs=2, metric="val_loss", prune="asha", min_epochs=2, seed=5, data="/data/x",
                      objective="m:f", preset="cpu-demo")
    got = [str(d) for d in changed.differences(stored)]
    assert got == [
        "--preset: stored 'baseline', now 'cpu-demo'", "--param: stored 'models.optimizer.lr', now "
        "'models.optimizer.weight_decay'", "--range: stored 1e-05,0.01, now 1e-05,0.001",
        "--linear: stored false, now true", "--points: stored 5, now 4", "--top: stored 2, now 3",
        "--metric: stored 'hmean', now 'val_loss'", "--epochs: stored 3, now 2", "--prune: stored null, now 'asha'",
        "--min-epochs: stored 1, now 2", "--seed: stored 0, now 5", "--data: stored null, now '/data/x'",
        "--objective: stored null, now 'm:f'"]
    assert not any("dims" in g or "couplings" in g for g in got)  # the hierarchical space repeats --param/--range
    grid = _cfg(search=GridSearch())
    choice = {"key": "x.y", "kind": "choice", "leaf": "str", "low": None, "high": None, "q": None, "values": ["a", "b"]}
    wider = replace(grid, dims=(dim, choice))
    assert [str(d) for d in wider.differences(grid)] == [
        "--space models.optimizer.lr: stored log_uniform 1e-05..0.01, now log_uniform 1e-05..0.001",
        "--space x.y: stored (absent), now values ['a', 'b']"]


def test_config_stored_in_the_flat_layout_of_earlier_sweeps_still_loads() -> None:
    flat = {"name": "old", "preset": "cpu-demo", "base": {}, "strategy": "tpe", "metric": "hmean", "epochs": 3,
            "param": LR, "low": 1e-5, "high": 1e-2, "points": 5, "stages": 4, "trials": None, "batch": 3,
            "dims": [], "seed": 0}
    cfg = SweepConfig.from_dict(flat)
    assert cfg.search == TPESearch(trials=20, batch=3)
    hier = SweepConfig.from_dict({**flat, "strategy": "hierarchical", "min_improvement": 0.0})
    assert hier.search == HierarchicalSearch(param=LR, low=1e-5, high=1e-2, points=5, stages=4, min_improvement=0.0)
