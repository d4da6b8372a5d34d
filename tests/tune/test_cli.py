"""`ocrtune tune-postprocess` on a tiny trained run: the cached search scores exactly what a fresh
`evaluate` scores, the cache is reused until the checkpoint changes, the best preset extends the
run's preset, bad input is one located line with exit 2."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest

from ocrtune.presets.load import load_preset
from ocrtune.tune.settings import PostSettings
from tests._runs import TINY, train

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("tune")]

# Box and polygon mode, a cut by max_candidates and min_size: every stage of the search.
SPACE = """\
thresh: {values: [0.2, 0.3]}
box_thresh: {values: [0.2, 0.4, 0.6]}
box_unclip_ratio: {values: [1.2, 1.8]}
polygon_unclip_ratio: {values: [1.6]}
use_polygon: {values: [false, true]}
max_candidates: {values: [6, 300]}
min_size: {values: [2.0, 4.0]}
"""


@pytest.fixture(scope="module")
def tiny(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(data, runs, run): two receipts (val is train), a cpu-demo model trained until it finds words
    (22 epochs: on some CPUs the first words appear only after epoch 14; the best epoch is kept)."""
    runs = tmp_path_factory.mktemp("runs")
    return tiny_data, runs, Path(train(tiny_data, runs, TINY, epochs=22, name="tiny").run_dir)


def _tune(cli, run: Path | str, data: Path, tmp: Path, *extra: str) -> tuple[int, dict, str]:
    space = tmp / "space.yaml"
    space.write_text(SPACE)
    code, out, err = cli("tune-postprocess", run, "--data", data, "--space", space, "--out-dir", tmp / "presets",
                         "--jobs", "2", "--json", *extra)
    return code, (json.loads(out) if code == 0 else {}), err


def _fresh(run: Path, data: Path, settings: dict, out: Path) -> dict:
    from ocrtune.train.infer import evaluate, load_checkpoint

    loaded = load_checkpoint(run, PostSettings(**settings).overrides())
    return evaluate(loaded, data, "val", out=out)


def test_cached_search_scores_exactly_what_a_fresh_evaluate_scores(tiny, cli, tmp_path):
    data, runs, run = tiny
    code, res, err = _tune(cli, run, data, tmp_path, "--name", "tiny-post")
    assert code == 0, err
    assert res["trials"] == 96 and res["images"] == 2 and not res["cache"]["reused"]
    best = res["best"]
    assert res["improved"] and best["cleval"]["image_mean"]["hmean"] > res["current"]["cleval"]["image_mean"]["hmean"]
    scores = {round(t["cleval"]["image_mean"]["hmean"], 9) for t in res["top"]}
    assert len(scores) > 3, scores  # the model finds words and the settings matter
    polygon = next(t for t in res["top"] if t["settings"]["use_polygon"])
    for tried in (best, res["current"], polygon):
        fresh = _fresh(run, data, tried["settings"], tmp_path / "eval.json")
        assert fresh["cleval"]["image_mean"] == tried["cleval"]["image_mean"]
        assert fresh["cleval"]["global"] == tried["cleval"]["global"]
        assert fresh["iou"]["image_mean"] == tried["iou"]["image_mean"]
        assert fresh["iou"]["global"]["hmean"] == tried["iou"]["global"]["hmean"]
    # the misses of the checkpoint's own and the picked setting, as evaluate counts them
    for key, tried in (("current", res["current"]), ("best", best)):
        assert res["misses"][key] == _fresh(run, data, tried["settings"], tmp_path / "eval.json")["iou"]["misses"]
    pp = res["difference_pp"]["hmean"]
    assert pp == pytest.approx(100 * (best["cleval"]["image_mean"]["hmean"] - res["current"]["cleval"]["image_mean"]["hmean"]))

    # the best settings as a preset extending the run's preset, loadable, commented
    path = Path(res["preset"]["path"])
    assert path == tmp_path / "presets" / "tiny-post.yaml" and res["preset"]["extends"] == "cpu-demo"
    written = load_preset(path).preset
    assert PostSettings.of(written.models.head.postprocess).values() == best["settings"]
    assert written.datasets.image_size == 256  # what the run trained with, so the preset reproduces it
    text = path.read_text()
    assert text.startswith("# Created ") and "extends: cpu-demo" in text and "# tuned; was" in text
    assert json.loads((run / "tune-postprocess-val.json").read_text())["best"] == best


def test_the_cache_is_reused_until_the_checkpoint_changes(tiny, cli, tmp_path):
    import torch

    data, runs, run = tiny
    code, first, err = _tune(cli, run, data, tmp_path, "--no-preset")
    assert code == 0, err
    manifest = json.loads((run / "maps-val" / "manifest.json").read_text())
    assert manifest["images"] == 2 and manifest["inputs"]["dtype"] == "float16"
    assert (run / "maps-val" / "maps.f16").stat().st_size == 2 * 256 * 256 * 2  # whole padded maps, 2 bytes a pixel
    code, again, err = _tune(cli, run, data, tmp_path, "--no-preset")
    assert code == 0 and again["cache"]["reused"], err
    assert again["best"] == first["best"]

    copy = tmp_path / "run-copy"
    shutil.copytree(run, copy)
    ckpt = copy / "checkpoints" / "best.ckpt"
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    state["state_dict"] = {k: v + 0.01 if v.is_floating_point() else v for k, v in state["state_dict"].items()}
    torch.save(state, ckpt)
    code, changed, err = _tune(cli, copy, data, tmp_path, "--no-preset")
    assert code == 0 and not changed["cache"]["reused"], err
    assert "computing the val probability maps" in err


def test_tuning_last_ckpt_keeps_best_ckpts_maps(tiny, cli, tmp_path):
    """Each checkpoint of a run has its own maps: tuning last.ckpt, then the run (best.ckpt)
    again, reuses best's maps instead of rebuilding them over last's."""
    data, runs, run = tiny
    code, best, err = _tune(cli, run, data, tmp_path, "--no-preset")
    assert code == 0, err
    code, last, err = _tune(cli, run / "checkpoints" / "last.ckpt", data, tmp_path, "--no-preset")
    assert code == 0, err
    manifest = json.loads((run / "maps-last-val" / "manifest.json").read_text())
    assert manifest["checkpoint"]["path"].endswith("last.ckpt")
    assert last["saved"] == str(run / "tune-postprocess-last-val.json")
    assert json.loads((run / "tune-postprocess-val.json").read_text())["best"] == best["best"]  # best's record kept
    # the command that reproduces each score loads the checkpoint tuned: the run only for best.ckpt
    assert shlex.split(best["evaluate_command"])[2] == str(run)
    assert shlex.split(last["evaluate_command"])[2] == str(run / "checkpoints" / "last.ckpt")
    code, again, err = _tune(cli, run, data, tmp_path, "--no-preset")
    assert code == 0 and again["cache"]["reused"], err
    assert json.loads((run / "maps-val" / "manifest.json").read_text())["checkpoint"]["path"].endswith("best.ckpt")


def test_a_checkpoint_outside_a_run_caches_beside_it(tiny, cli, tmp_path):
    data, runs, run = tiny
    ckpt = tmp_path / "model.ckpt"
    shutil.copy(run / "checkpoints" / "best.ckpt", ckpt)
    code, res, err = _tune(cli, ckpt, data, tmp_path, "--name", "model-post", "--trials", "10")
    assert code == 0, err
    assert res["trials"] == 10 and (tmp_path / "model.maps-val" / "maps.f16").is_file()
    assert (tmp_path / "model.tune-postprocess-val.json").is_file()
    assert res["improved"] and res["preset"]["extends"] is None  # no run: every setting is written
    assert load_preset(Path(res["preset"]["path"])).preset.datasets.image_size == 256


def test_the_iou_objective_ranks_by_the_iou_hmean(tiny, cli, tmp_path):
    data, runs, run = tiny
    code, by_iou, err = _tune(cli, run, data, tmp_path, "--objective", "iou", "--no-preset", "--top", "96")
    assert code == 0, err
    code, by_cleval, err = _tune(cli, run, data, tmp_path, "--no-preset", "--top", "96")
    assert code == 0, err
    assert by_iou["objective"] == "iou" and by_cleval["objective"] == "cleval"

    def iou(t: dict) -> float:
        return t["iou"]["image_mean"]["hmean"]

    ranked = [iou(t) for t in by_iou["top"]]
    assert ranked == sorted(ranked, reverse=True) and len(set(ranked)) > 3
    assert iou(by_iou["best"]) == max(iou(t) for t in by_cleval["top"])  # the same 96 settings, scored alike
    assert iou(by_iou["best"]) >= iou(by_cleval["best"])
    by_cleval_ious = [iou(t) for t in by_cleval["top"]]
    assert by_cleval_ious != sorted(by_cleval_ious, reverse=True)  # on this model the two rankings differ
    assert by_iou["difference_pp"]["iou_hmean"] == pytest.approx(100 * (iou(by_iou["best"]) - iou(by_iou["current"])))
    # each objective keeps its own summary
    assert json.loads((run / "tune-postprocess-val-iou.json").read_text())["best"] == by_iou["best"]
    assert json.loads((run / "tune-postprocess-val.json").read_text())["best"] == by_cleval["best"]


def test_the_table_is_followed_by_the_misses_of_the_own_and_the_best_setting(tiny, cli, tmp_path):
    data, runs, run = tiny
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    code, out, err = cli("tune-postprocess", run, "--data", data, "--space", space, "--no-preset", "--jobs", "1")
    assert code == 0, err
    saved = json.loads((run / "tune-postprocess-val.json").read_text())
    text = " ".join(out.split())  # rich wraps long lines
    for key, label in (("current", "own settings"), ("best", "best")):
        m = saved["misses"][key]
        words = sum(v for k, v in m.items() if k.startswith("gt_"))
        missed = words - m["gt_matched"]
        assert f"IoU misses ({label}): {missed} of {words} words, -{100 * missed / words:.2f} pp of the global recall" in text
        assert f"unmatched detections ({label}): " in text


def test_bad_inputs_are_one_located_line_and_exit_2(tiny, cli, tmp_path):
    data, runs, run = tiny
    empty = tmp_path / "no-ckpt"
    (empty / "checkpoints").mkdir(parents=True)
    shutil.copy(run / "config.yaml", empty / "config.yaml")
    code, out, err = cli("tune-postprocess", empty, "--data", data)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [f"{empty / 'checkpoints'}: run has no checkpoint (best.ckpt or last.ckpt)"]

    space = tmp_path / "typo.yaml"
    space.write_text("thresh: {values: [0.2, 0.3]}\nbox_thres: {min: 0.2, max: 0.4}\n")
    code, out, err = cli("tune-postprocess", run, "--data", data, "--space", space)
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.endswith("typo.yaml:2:1 models.head.postprocess.box_thres: unknown key 'box_thres' in "
                         "models.head.postprocess (did you mean 'box_thresh'?)")

    # a preset name that is taken is refused before the network runs
    ckpt = tmp_path / "other.ckpt"
    shutil.copy(run / "checkpoints" / "best.ckpt", ckpt)
    code, out, err = cli("tune-postprocess", ckpt, "--data", data, "--name", "cpu-demo", "--out-dir", tmp_path)
    assert code == 2
    assert err.strip().splitlines() == ["--name: a preset of that name already exists: presets/cpu-demo.yaml (pass "
                                        "--name another, or --force)"]
    assert not (tmp_path / "other.maps-val").exists()

    code, out, err = cli("tune-postprocess", run, "--data", data, "--strategy", "annealing")
    assert code == 2 and err.strip().splitlines() == ["--strategy: must be one of grid, random, tpe (got 'annealing')"]
    code, out, err = cli("tune-postprocess", run, "--data", data, "--objective", "map")
    assert code == 2 and err.strip().splitlines() == ["--objective: must be one of cleval, iou (got 'map')"]
