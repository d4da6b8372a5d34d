from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from ocrtune.errors import InputError
from ocrtune.presets.compare import blend_values, diff, flatten, pct_change, settings
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
