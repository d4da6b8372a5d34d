from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from ocrtune.errors import InputError
from ocrtune.presets.compare import (
    NO_PERCENT_KEYS,
    SCORE_KEYS,
    blend_values,
    delta_pp,
    diff,
    flatten,
    pct_change,
    score_fraction,
    settings,
)
from ocrtune.presets.load import load_preset


def flat(name: str) -> dict:
    return settings(load_preset(name).preset)


def test_compare_baseline_run8_exact_deltas():
    rows = {r.key: r for r in diff([("baseline", flat("baseline")), ("run8", flat("run8"))])}
    assert round(rows["models.optimizer.lr"].deltas[1], 1) == 28.4
    assert round(rows["models.optimizer.weight_decay"].deltas[1], 1) == -32.0
    assert round(rows["models.scheduler.T_max"].deltas[1], 1) == 9.1
    assert round(rows["models.scheduler.eta_min"].deltas[1], 1) == -36.1
    # only the tuned values (and reported scores) differ
    params = [k for k in rows if not k.startswith("reported.")]
    assert sorted(params) == sorted(
        ["models.optimizer.lr", "models.optimizer.weight_decay", "models.scheduler.T_max", "models.scheduler.eta_min"])


def test_diff_all_includes_equal_rows_and_needs_two():
    a = flat("baseline")
    rows = diff([("a", a), ("b", dict(a))], include_equal=True)
    assert len(rows) == len(a) and not any(r.differs for r in rows)
    assert diff([("a", a), ("b", dict(a))]) == []
    with pytest.raises(InputError):
        diff([("a", a)])


def test_pct_change_edge_cases():
    assert pct_change(0, 5) is None
    assert pct_change("adam", "adamw") is None
    assert pct_change(-2.0, -1.0) == pytest.approx(50.0)
    assert pct_change(True, False) is None


def test_flatten():
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": None}) == {"a.b": 1, "a.c": [1, 2], "d": None}


def test_blend_linear_geometric_and_integers():
    a, b = flat("baseline"), flat("run8")
    lin = {v.key: v for v in blend_values(a, b, 0.5)}
    assert lin["models.optimizer.lr"].value == pytest.approx((0.0004 + 0.0005134333170096499) / 2)
    assert lin["models.scheduler.T_max"].value == 23 and isinstance(lin["models.scheduler.T_max"].value, int)
    geo = {v.key: v for v in blend_values(a, b, 0.5, log=True)}
    assert geo["models.optimizer.lr"].value == pytest.approx(math.sqrt(0.0004 * 0.0005134333170096499))
    assert geo["models.optimizer.lr"].how == "log"
    # blending baseline and run8 at 0.5 lands near the hand-made hybrid
    hyb = flat("hybrid")
    for k in ("models.optimizer.lr", "models.optimizer.weight_decay", "models.scheduler.eta_min"):
        assert lin[k].value == pytest.approx(hyb[k], rel=0.03)
    # the reported block and seed never blend
    assert not any(k.startswith(("reported", "seed")) for k in lin)


def test_blend_rounds_integers_and_keeps_non_numeric_from_a():
    out = {v.key: v for v in blend_values({"n": 22, "s": "adam", "f": True}, {"n": 25, "s": "adamw", "f": False}, 0.5)}
    assert out["n"].value == 24  # 23.5 rounds half up
    assert out["s"].value == "adam" and out["s"].how == "from-a"
    assert out["f"].value is True
    with pytest.raises(InputError):
        blend_values({}, {}, 1.5)


@hyp_settings(deadline=None)  # a busy CI core must not fail a property on timing
@given(st.floats(1e-6, 1.0), st.floats(1e-6, 1.0), st.booleans())
def test_blend_endpoints(x, y, log):
    a, b = {"v": x}, {"v": y}
    w0 = {v.key: v.value for v in blend_values(a, b, 0.0, log)}
    w1 = {v.key: v.value for v in blend_values(a, b, 1.0, log)}
    if math.isclose(x, y, rel_tol=1e-12, abs_tol=0.0):  # the same setting: nothing to blend
        assert w0 == w1 == {}
    else:
        assert w0["v"] == pytest.approx(x) and w1["v"] == pytest.approx(y)
        mid = blend_values(a, b, 0.5, log)[0].value
        assert min(x, y) - 1e-12 <= mid <= max(x, y) + 1e-12


def test_compare_cli_table_json_markdown(cli):
    code, out, _ = cli("compare", "baseline", "run8")
    assert code == 0
    for s in ["+28.4%", "-32.0%", "+9.1%", "-36.1%", "models.optimizer.lr"]:
        assert s in out
    assert "▲" in out and "▼" in out
    code, out, _ = cli("compare", "baseline", "run8", "--json")
    data = json.loads(out)
    rows = {r["key"]: r for r in data["rows"]}
    assert round(rows["models.scheduler.eta_min"]["pct_change"]["run8"], 1) == -36.1
    assert rows["models.optimizer.lr"]["values"]["run8"] == 0.0005134333170096499
    code, out, _ = cli("compare", "baseline", "run8", "run3", "--markdown")
    assert out.splitlines()[0] == "| parameter | baseline | run8 | run3 |"
    assert "0.0005134 (▲ +28.4%)" in out
    code, out, _ = cli("compare", "baseline", "run8", "--all", "--json")
    assert len(json.loads(out)["rows"]) > 40


def test_compare_cli_errors(cli):
    code, _, err = cli("compare", "baseline", "nosuch")
    assert code == 2 and "nosuch: preset not found" in err and "Traceback" not in err
    code, _, err = cli("compare", "baseline")
    assert code == 2


# --- scores in percentage points, identifiers without a % change ---------------------------

def _fake_run(folder, preset: str, best: dict) -> str:
    """A run directory as training leaves it: the resolved preset and a summary (fractions)."""
    from ocrtune.train.fit import preset_yaml
    from ocrtune.train.rundir import RunDir

    folder.mkdir(parents=True)
    run = RunDir(folder)
    run.config.write_text(preset_yaml(load_preset(preset).preset, f"resolved from {preset}"), encoding="utf-8")
    run.write_summary({"status": "completed", "epochs_completed": 22, "best_epoch": 20, "best": best,
                       "wall_time_s": 100.0})
    return str(folder)


def test_score_units_and_pp():
    assert set(SCORE_KEYS) >= {"reported.hmean", "run.best.hmean", "run.best.iou_hmean"}
    assert "seed" in NO_PERCENT_KEYS
    assert score_fraction("reported.hmean", 96.53) == pytest.approx(0.9653)
    assert score_fraction("run.best.hmean", 0.9653) == pytest.approx(0.9653)
    assert score_fraction("models.optimizer.lr", 0.1) is None
    assert score_fraction("reported.hmean", None) is None
    assert delta_pp("reported.hmean", 96.53, 96.6) == 0.07
    # a run's fraction against a preset's percent
    assert delta_pp("run.best.hmean", 96.53, 0.9661, key_a="reported.hmean") == pytest.approx(0.08)
    assert delta_pp("seed", 1, 2) is None
    # pct_change itself stays the plain engine (the sweep report uses it)
    assert pct_change(42, 7) == pytest.approx(-83.33, abs=0.01)


def test_diff_scores_have_pp_not_percent():
    rows = {r.key: r for r in diff([("baseline", flat("baseline")), ("run8", flat("run8"))])}
    hm = rows["reported.hmean"]
    assert hm.deltas == (None, None) and hm.pp == (None, 0.07) and hm.score
    rows = {r.key: r for r in diff([("baseline", flat("baseline")), ("cpu-demo", flat("cpu-demo"))])}
    assert rows["seed"].deltas == (None, None) and rows["seed"].values == (42, 7)
    assert rows["trainer.max_epochs"].deltas[1] == pytest.approx(-27.27, abs=0.01)  # still a quantity


def test_compare_cli_reported_hmean_in_pp(cli):
    code, out, err = cli("compare", "baseline", "run8")
    assert code == 0, err
    line = next(x for x in out.splitlines() if "reported.hmean" in x)
    assert "96.53" in line and "96.60 ▲ +0.07 pp" in line and "%" not in line
    code, out, _ = cli("compare", "baseline", "run8", "--markdown")
    assert "| reported.hmean | 96.53 | 96.60 (▲ +0.07 pp) |" in out


def test_compare_cli_no_percent_on_seed(cli):
    code, out, err = cli("compare", "baseline", "cpu-demo")
    assert code == 0, err
    seed = next(x for x in out.splitlines() if x.strip("│ ").startswith("seed "))
    assert "42" in seed and "7" in seed and "%" not in seed and "▼" not in seed
    code, out, _ = cli("compare", "baseline", "cpu-demo", "--json")
    rows = {r["key"]: r for r in json.loads(out)["rows"]}
    assert rows["seed"]["pct_change"] == {"cpu-demo": None} and "delta_pp" not in rows["seed"]
    assert rows["seed"]["values"] == {"baseline": 42, "cpu-demo": 7}


def test_compare_cli_preset_against_run_in_pp(cli, tmp_path):
    run = _fake_run(tmp_path / "runs" / "2024-01-01-b", "baseline",
                    {"hmean": 0.9661, "precision": 0.97, "recall": 0.9601, "iou_hmean": 0.95})
    code, out, err = cli("compare", "run8", run)
    assert code == 0, err
    lines = {x.split("│")[1].strip(): x for x in out.splitlines() if x.startswith("│")}
    # the run's fraction 0.9661 shown in percent, measured against run8's reported 96.60
    assert "96.60 (reported.hmean)" in lines["run.best.hmean"] and "96.61 ▲ +0.01 pp" in lines["run.best.hmean"]
    assert "97.00" in lines["run.best.precision"] and "95.00" in lines["run.best.iou_hmean"]
    # the run's config reports baseline's 96.53: -0.07 pp vs run8's 96.60
    assert "96.53 ▼ -0.07 pp" in lines["reported.hmean"]
    assert "%" not in lines["run.best.hmean"] + lines["reported.hmean"]
    code, out, _ = cli("compare", "run8", run, "--json")
    name = "2024-01-01-b"
    rows = {r["key"]: r for r in json.loads(out)["rows"]}
    best = rows["run.best.hmean"]
    assert best["values"] == {"run8": None, name: 0.9661}  # raw, as each states it
    assert best["pct_change"] == {name: None}
    assert best["delta_pp"][name] == pytest.approx(0.01)
    assert best["reference"] == {"key": "reported.hmean", "value": 96.6}
    hm = rows["reported.hmean"]
    assert hm["values"] == {"run8": 96.6, name: 96.53} and hm["delta_pp"] == {name: -0.07}
    assert hm["pct_change"] == {name: None}
    assert "delta_pp" not in rows["models.optimizer.lr"]
    assert rows["models.optimizer.lr"]["pct_change"][name] == pytest.approx(-22.09, abs=0.01)


def test_compare_two_runs_scores_in_pp(cli, tmp_path):
    a = _fake_run(tmp_path / "a", "baseline", {"hmean": 0.9, "precision": 0.91, "recall": 0.89, "iou_hmean": 0.8})
    b = _fake_run(tmp_path / "b", "baseline", {"hmean": 0.925, "precision": 0.91, "recall": 0.9, "iou_hmean": 0.79})
    code, out, _ = cli("compare", a, b, "--json")
    rows = {r["key"]: r for r in json.loads(out)["rows"]}
    assert rows["run.best.hmean"]["delta_pp"] == {"b": pytest.approx(2.5)}
    assert rows["run.best.iou_hmean"]["delta_pp"] == {"b": pytest.approx(-1.0)}
    assert "run.best.precision" not in rows  # equal scores do not differ
    code, out, _ = cli("compare", a, b)
    assert "90.00" in out and "92.50 ▲ +2.50 pp" in out


def test_blend_caveats_list_what_one_side_gave():
    from ocrtune.presets.compare import BlendedValue, blend_caveats

    values = [
        BlendedValue("models.encoder.model_name", "efficientnet_b4", "resnet10t", "efficientnet_b4", "from-a"),
        BlendedValue("models.optimizer.lr", 1e-3, 2e-3, 1.5e-3, "linear"),  # a tuned number: blended, no caveat
        BlendedValue("dataloader.batch_size", 8, 4, 6, "linear"),  # sized for each encoder: mixed
        BlendedValue("dataloader.num_workers", 4, 0, 1, "--set"),  # structural, from --set
        BlendedValue("seed", 7, 9, 3, "--set"),  # a plain number from --set: not a side taken
    ]
    c = blend_caveats(values, "A", "B")
    assert c.encoder is values[0]
    assert [v.key for v in c.taken] == ["models.encoder.model_name", "dataloader.num_workers"]
    assert [v.key for v in c.mixed] == ["dataloader.batch_size"]
    assert c.lines() == [
        "warning: A and B use different encoders (efficientnet_b4, resnet10t); the blend uses A's and interpolates"
        " sizes tuned for each: dataloader.batch_size 6 (A 8, B 4)",
        "taken from A, not blended: models.encoder.model_name=efficientnet_b4 (B has resnet10t)",
        "taken from --set, not blended: dataloader.num_workers=1 (A 4, B 0)",
    ]
    same = blend_caveats(values[1:3], "A", "B")  # one encoder: sizes blend like any number
    assert same.encoder is None and same.taken == [] and same.mixed == [] and same.lines() == []
