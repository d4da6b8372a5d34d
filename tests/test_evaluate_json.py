from __future__ import annotations

import json
from pathlib import Path

import pytest

from ocrtune.data.formats import read_json, write_submission_csv

CASES = Path(__file__).resolve().parents[1].parent / "shared" / "metric-cases"
needs_cases = pytest.mark.skipif(not CASES.is_dir(), reason="shared/metric-cases not present")


@needs_cases
@pytest.mark.parametrize("case", ["06-merge-pairs", "14-no-gt-missing-pred"])
def test_cleval_cli_reproduces_reference(cli, case, tmp_path):
    d = CASES / case
    exp = json.loads((d / "expected.json").read_text())
    per = tmp_path / "per.json"
    code, out, err = cli("evaluate-json", d / "gt.json", d / "pred.json", "--json", "--per-image", per)
    assert code == 0, err
    got = json.loads(out)
    for agg in ("image_mean", "global"):
        for m in ("recall", "precision", "hmean"):
            assert got[agg][m] == pytest.approx(exp[agg][m], abs=1e-6)
    per_image = json.loads(per.read_text())
    assert set(per_image) == set(exp["per_image"])
    code, out, _ = cli("evaluate-json", d / "gt.json", d / "pred.json")
    assert code == 0 and f"{exp['image_mean']['hmean']:.4g}" in out


@needs_cases
def test_csv_predictions_score_like_json(cli, tmp_path):
    d = CASES / "10-polygons"
    csv = tmp_path / "pred.csv"
    write_submission_csv(read_json(d / "pred.json"), csv)
    _, a, _ = cli("evaluate-json", d / "gt.json", d / "pred.json", "--json")
    _, b, _ = cli("evaluate-json", d / "gt.json", csv, "--json")
    assert json.loads(a)["image_mean"] == json.loads(b)["image_mean"]


@needs_cases
def test_iou_metric_and_errors(cli, tmp_path):
    d = CASES / "01-perfect"
    code, out, _ = cli("evaluate-json", d / "gt.json", d / "pred.json", "--metric", "iou", "--json")
    assert code == 0 and json.loads(out)["image_mean"]["hmean"] == 1.0
    code, _, err = cli("evaluate-json", d / "gt.json", tmp_path / "none.json")
    assert code == 2 and "none.json: file not found" in err
    code, _, err = cli("evaluate-json", d / "gt.json", d / "pred.json", "--metric", "f1")
    assert code == 2 and "--metric: unknown metric 'f1'" in err
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": {"a.jpg": {"words": {"1": {"points": "oops"}}}}}')
    code, _, err = cli("evaluate-json", d / "gt.json", bad)
    assert code == 2 and "bad.json" in err and "Traceback" not in err


GT = '{"images": {"x.jpg": {"words": {"1": {"points": [[0, 0], [10, 0], [10, 10], [0, 10]]}}}}}'


def test_per_image_output_never_replaces_an_input(cli, tmp_path):
    gt, pred = tmp_path / "g.json", tmp_path / "p.json"
    gt.write_text(GT)
    pred.write_text(GT)
    (tmp_path / "link.json").symlink_to(gt)
    for out in (gt, tmp_path / "." / "p.json", tmp_path / "link.json"):
        code, _, err = cli("evaluate-json", gt, pred, "--per-image", out)
        assert code == 2, err
        assert len(err.strip().splitlines()) == 1 and "same file as the input" in err
    assert gt.read_text() == GT and pred.read_text() == GT


def test_per_image_unwritable_path_is_one_line(cli, tmp_path):
    gt = tmp_path / "g.json"
    gt.write_text(GT)
    code, _, err = cli("evaluate-json", gt, gt, "--per-image", "/proc/nope/x.json")
    assert code == 2
    assert err.strip() == "/proc/nope/x.json: cannot write the per-image scores: No such file or directory"


def test_per_image_is_written_whole(cli, tmp_path):
    gt, out = tmp_path / "g.json", tmp_path / "sub" / "per.json"
    gt.write_text(GT)
    out.parent.mkdir()
    out.write_text("old")
    code, _, err = cli("evaluate-json", gt, gt, "--per-image", out)
    assert code == 0, err
    assert json.loads(out.read_text())["x.jpg"]["hmean"] == 1.0
    assert [p.name for p in out.parent.iterdir()] == ["per.json"]  # no temp file left


def test_structural_errors_in_the_metric_loader_are_located(cli, tmp_path):
    gt = tmp_path / "g.json"
    gt.write_text(GT)
    bad = tmp_path / "badpt.json"
    bad.write_text(
        '{"images": {\n'
        '  "x.jpg": {"words": {\n'
        '     "1": {"points": "nope"},\n'
        '     "2": {"text": "points"}\n'
        "  }},\n"
        '  "y.jpg": {"words": []}\n'
        "}}\n"
    )
    code, _, err = cli("evaluate-json", gt, bad)
    assert code == 2
    assert err.splitlines() == [
        f"{bad}:3:12 images.x.jpg.words.1.points: expected a list of [x, y] number pairs",
        # no "points" key: the word itself is pointed at (a "points" value is not a key)
        f"{bad}:4:6 images.x.jpg.words.2.points: expected a list of [x, y] number pairs",
        f"{bad}:6:13 images.y.jpg.words: expected an object of words or null",
    ]


def test_a_file_of_bad_words_reports_the_first_twenty_located(tmp_path):
    from ocrtune.errors import InputError
    from ocrtune.metrics.cleval import load_words_json

    words = {f"{i:04d}": {"points": "oops"} for i in range(3000)}
    p = tmp_path / "bad.json"
    p.write_text(json.dumps({"images": {"a.jpg": {"words": words}, "b.jpg": {"words": words}}}, indent=1))
    with pytest.raises(InputError) as e:
        load_words_json(p)
    lines = e.value.lines
    assert len(lines) == 21 and lines[-1] == f"{p}: ... and 5980 more problems like these (not listed)"
    assert lines[0].startswith(f"{p}:6:6 ") and lines[0].endswith("images.a.jpg.words.0000.points: expected a list of [x, y] number pairs")
    assert lines[19].split(" ")[1] == "images.a.jpg.words.0019.points:"


def _word(x: int) -> dict:
    return {"points": [[x, 0], [x + 10, 0], [x + 10, 10], [x, 10]]}


def _extra_files(tmp_path):
    gt, pred = tmp_path / "g.json", tmp_path / "p.json"
    gt.write_text(json.dumps({"images": {"a.jpg": {"words": {"1": _word(0)}}, "b.jpg": {"words": {"1": _word(0)}}}}))
    images = {"a.jpg": {"words": {"1": _word(0)}}}  # b.jpg missing: scored 0
    images.update({f"val_{i}.jpg": {"words": {"1": _word(0)}} for i in range(5, 0, -1)})  # not in the GT
    pred.write_text(json.dumps({"images": images}))
    return gt, pred


@pytest.mark.parametrize("metric", ["cleval", "iou"])
def test_predictions_for_images_not_in_the_gt_are_counted_and_warned(cli, tmp_path, metric):
    gt, pred = _extra_files(tmp_path)
    code, out, err = cli("evaluate-json", gt, pred, "--metric", metric, "--json")
    assert code == 0, err
    got = json.loads(out)
    assert got["extra_predictions"] == [f"val_{i}.jpg" for i in range(1, 6)]
    assert got["images"] == 2 and got["missing_predictions"] == 1
    assert got["image_mean"]["hmean"] == pytest.approx(0.5)  # the extras change no score
    assert err.strip().splitlines() == [
        f"warning: {pred}: 5 predicted images are not in the ground truth: val_1.jpg, val_2.jpg, val_3.jpg"
        " and 2 more; not scored (--strict refuses them)"
    ]
    code, out, err = cli("evaluate-json", gt, pred, "--metric", metric)  # the table view warns the same
    assert code == 0 and "5 predicted images are not in the ground truth" in err


def test_strict_refuses_predictions_for_images_not_in_the_gt(cli, tmp_path):
    gt, pred = _extra_files(tmp_path)
    per = tmp_path / "per.json"
    code, out, err = cli("evaluate-json", gt, pred, "--strict", "--per-image", per)
    assert code == 2 and out == ""
    assert err.strip() == (f"{pred}: 5 predicted images are not in the ground truth: val_1.jpg, val_2.jpg,"
                           " val_3.jpg and 2 more (--strict)")
    assert not per.exists()
    code, out, err = cli("evaluate-json", gt, gt, "--strict", "--json")  # nothing extra: scored as ever
    assert code == 0 and err == "" and json.loads(out)["extra_predictions"] == []


def test_one_extra_prediction_reads_in_the_singular(cli, tmp_path):
    gt, pred = tmp_path / "g.json", tmp_path / "p.json"
    gt.write_text(GT)
    pred.write_text(json.dumps({"images": {"x.jpg": {"words": {"1": _word(0)}}, "y.jpg": {"words": {}}}}))
    code, _, err = cli("evaluate-json", gt, pred)
    assert code == 0
    assert err.strip() == f"warning: {pred}: 1 predicted image is not in the ground truth: y.jpg; not scored (--strict refuses them)"


def _words(*boxes: tuple[int, int, int, int]) -> dict:
    return {f"{k + 1:04d}": {"points": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]}
            for k, (x0, y0, x1, y1) in enumerate(boxes)}


def test_iou_metric_says_why_words_were_missed(cli, tmp_path):
    gt, pred = tmp_path / "gt.json", tmp_path / "pred.json"
    # a.jpg: one box over two segments, a word found; b.jpg: a word not found, a detection on nothing
    gt.write_text(json.dumps({"images": {
        "a.jpg": {"words": _words((0, 0, 40, 20), (50, 0, 90, 20), (0, 40, 100, 60))},
        "b.jpg": {"words": _words((0, 0, 100, 20))}}}))
    pred.write_text(json.dumps({"images": {
        "a.jpg": {"words": _words((0, 0, 90, 20), (0, 40, 100, 60))},
        "b.jpg": {"words": _words((300, 300, 400, 320))}}}))
    code, out, err = cli("evaluate-json", gt, pred, "--metric", "iou", "--json")
    assert code == 0, err
    got = json.loads(out)
    assert got["misses"] == {"gt_matched": 1, "gt_merged": 2, "gt_split": 0, "gt_misfit": 0, "gt_not_found": 1,
                             "det_matched": 1, "det_merged": 1, "det_duplicate": 0, "det_fragment": 0,
                             "det_misfit": 0, "det_background": 1}
    assert got["per_image"]["a.jpg"]["misses"] == {"gt_merged": 2, "det_merged": 1}
    assert got["per_image"]["b.jpg"]["misses"] == {"gt_not_found": 1, "det_background": 1}
    code, out, _ = cli("evaluate-json", gt, pred, "--metric", "iou")
    assert code == 0
    assert ("IoU misses: 3 of 4 words, -75.00 pp of the global recall: 2 merged with a neighbour (50.00 pp), "
            "1 not found (25.00 pp)") in out
    assert ("unmatched detections: 2 of 3 detections, -66.67 pp of the global precision: 1 over several words "
            "(33.33 pp), 1 on no word (33.33 pp)") in out
    code, out, _ = cli("evaluate-json", gt, pred, "--json")  # CLEval: no IoU misses
    assert code == 0 and "misses" not in json.loads(out)
    code, out, _ = cli("evaluate-json", gt, pred)
    assert code == 0 and "IoU misses" not in out
