"""Ensembles and test-time views in ``evaluate``/``predict`` (ocrtune.train.ensemble).

Two kinds of model: a model-free "model" that sees the grey words of drawn test images exactly,
so where boxes land is known (views, input sizes, copies, weights); and a briefly trained
DBNet driven through the CLI (copies, other input sizes, another encoder, k-fold folders, bad
input)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from ocrtune.data.formats import read_submission_csv, write_json
from ocrtune.data.formats.records import Annotations, ImageAnnotation, Word
from ocrtune.model.postprocess import DBPostProcessor
from ocrtune.presets.load import load_preset
from ocrtune.train import ensemble as ens
from ocrtune.train.ensemble import Ensemble, Member
from ocrtune.train.infer import Loaded, evaluate, predict
from ocrtune.train.views import PLAIN, View
from tests._runs import TINY, train

# one xdist worker runs this file, so the module's trained model is built once
pytestmark = pytest.mark.xdist_group("ensemble")

# --------------------------------------------------------------------------- a model that sees the words

GREY = 90  # words are drawn this grey on white; resize_and_pad's padding is black and is no word


def _box(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


# Every word in the left half: a mirrored map would put its boxes where no word is.
PAGES = {
    "a.png": ((300, 420), [_box(20, 20, 160, 50), _box(30, 100, 120, 128), _box(24, 200, 190, 236)]),
    "b.png": ((360, 240), [_box(10, 30, 100, 60), _box(16, 150, 110, 175), _box(20, 280, 90, 330)]),
}


class SeesWords(torch.nn.Module):
    """Probability 1 on grey input pixels: the words of the drawn pages, at any input size."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))  # tells the ensemble the device

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        v = images[:, :1] * 0.229 + 0.485  # the red channel back in [0, 1]
        return {"prob": ((v > 0.15) & (v < 0.6)).float()}


def _model(image_size: int) -> Loaded:
    preset = load_preset("cpu-demo", [f"datasets.image_size={image_size}", "dataloader.batch_size=2"]).preset
    # boxes as found, not unclipped: the map covers the whole word, not a shrunk kernel
    post = DBPostProcessor(thresh=0.3, box_thresh=0.5, box_unclip_ratio=0, min_size=1)
    module = SimpleNamespace(model=SeesWords(), post=post)
    module.parameters = module.model.parameters
    return Loaded(module, preset, Path(f"sees-words-{image_size}.ckpt"), None)


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pages")
    (root / "images" / "val").mkdir(parents=True)
    (root / "jsons").mkdir()
    anns = []
    for name, ((h, w), words) in PAGES.items():
        image = np.full((h, w, 3), 255, np.uint8)
        for b in words:
            cv2.rectangle(image, tuple(int(v) for v in b[0]), tuple(int(v) - 1 for v in b[2]), (GREY,) * 3, -1)
        cv2.imwrite(str(root / "images" / "val" / name), image)
        anns.append(ImageAnnotation(name, [Word(f"{i + 1:04d}", b) for i, b in enumerate(words)], width=w, height=h))
    write_json(Annotations(anns), root / "jsons" / "val.json")
    return root


def _hmean(result: dict) -> float:
    return result["cleval"]["image_mean"]["hmean"]


@pytest.mark.parametrize(
    "sizes, views",
    [([256], [PLAIN, View(flip=True)]), ([256], [PLAIN, View(scale=1.5), View(flip=True, scale=0.75)]),
     ([256, 320], [PLAIN]), ([320, 224], [PLAIN, View(flip=True)])],
    ids=["flip", "scales", "two-input-sizes", "sizes-and-flip"],
)
def test_views_and_input_sizes_average_onto_the_words(pages, tmp_path, sizes, views):
    members = [Member(_model(s), 1 / len(sizes), f"m{s}") for s in sizes]
    result = evaluate(Ensemble(members, views), pages, "val", out=tmp_path / "e.json")
    assert _hmean(result) > 0.97, result["cleval"]
    assert result["iou"]["image_mean"]["hmean"] == 1.0
    assert result["ensemble"]["views"] == [v.name for v in views]


def test_a_flipped_map_not_flipped_back_misses_every_word(pages, tmp_path, monkeypatch):
    """The test above fails when the ensemble forgets to mirror a flipped view's map back."""
    invert = View.invert
    monkeypatch.setattr(View, "invert", lambda self, prob, frame: invert(View(scale=self.scale), prob, frame))
    one = Ensemble([Member(_model(256), 1.0, "m")], [PLAIN, View(flip=True)])
    result = evaluate(one, pages, "val", out=tmp_path / "e.json")
    assert result["iou"]["image_mean"]["precision"] < 0.6  # the mirrored boxes are false detections


def test_two_copies_of_a_model_equal_the_model(pages, tmp_path):
    single = _model(256)
    alone = evaluate(single, pages, "val", out=tmp_path / "a.json")
    pair = evaluate(Ensemble([Member(single, 0.5, "a"), Member(single, 0.5, "b")], [PLAIN]), pages, "val",
                    out=tmp_path / "b.json")
    assert pair["cleval"] == alone["cleval"] and pair["iou"] == alone["iou"] and _hmean(alone) > 0.97
    p1 = predict(single, pages / "images" / "val", tmp_path / "a.csv", maps_dir=tmp_path / "ma")
    p2 = predict(Ensemble([Member(single, 0.5, "a"), Member(single, 0.5, "b")], [PLAIN]),
                 pages / "images" / "val", tmp_path / "b.csv", maps_dir=tmp_path / "mb")
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()
    assert p1["detections"] == p2["detections"] == 6
    for name in PAGES:  # the saved map is the model's own, cropped to the image
        a, b = np.load(tmp_path / "ma" / f"{name}.npz"), np.load(tmp_path / "mb" / f"{name}.npz")
        assert np.array_equal(a["prob"], b["prob"]) and np.array_equal(a["scale"], b["scale"])


def test_every_view_runs_on_the_images_own_extent(pages, tmp_path):
    """Not on the padded square (``train/extents.py``): at a 1.5x view (384 px) the 240 px wide
    page b is 256 px wide, so it runs apart from the square-filling page a."""
    seen: list[tuple[int, ...]] = []

    class Records(SeesWords):
        def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
            seen.append(tuple(images.shape))
            return super().forward(images)

    member = _model(256)
    member.module.model = Records()
    evaluate(Ensemble([Member(member, 1.0, "m")], [PLAIN, View(scale=1.5)]), pages, "val", out=tmp_path / "e.json")
    assert sorted(seen) == [(1, 3, 384, 256), (1, 3, 384, 384), (2, 3, 256, 256)]


def test_a_weight_of_zero_leaves_a_model_out(pages, tmp_path):
    class Blind(SeesWords):
        def forward(self, images):
            return {"prob": torch.zeros_like(images[:, :1])}

    blind = _model(320)
    blind.module.model = Blind()
    good = _model(256)
    only_good = Ensemble([Member(good, 1.0, "g"), Member(blind, 0.0, "b")], [PLAIN])
    assert _hmean(evaluate(only_good, pages, "val", out=tmp_path / "a.json")) > 0.97
    # a quarter of the weight leaves the words at probability 0.25, below thresh 0.3
    outweighed = Ensemble([Member(good, 0.25, "g"), Member(blind, 0.75, "b")], [PLAIN])
    assert _hmean(evaluate(outweighed, pages, "val", out=tmp_path / "b.json")) == 0.0


# --------------------------------------------------------------------------- a trained model, through the CLI

# A few epochs of a real DBNet: detections are rough, so postprocess thresholds are lowered to
# have plenty of them (copies must agree on every one), and none is cut off by max_candidates.
LOW = ["--set", "models.head.postprocess.thresh=0.1", "--set", "models.head.postprocess.box_thresh=0.1",
       "--set", "models.head.postprocess.max_candidates=1000"]


@pytest.fixture(scope="module")
def trained(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Three epochs on the two receipts of ``tiny_data`` (val is train), at twice TINY's lr."""
    from ocrtune.train.module import DBNetModule

    root, data = tmp_path_factory.mktemp("ens"), tiny_data
    tiny = [*TINY, "models.optimizer.lr=0.006"]
    run = Path(train(data, root / "runs", tiny, epochs=3, name="tiny").run_dir)
    # the same weights shown 320 px inputs: a model with another input size
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    state["hyper_parameters"]["preset"]["datasets"]["image_size"] = 320
    bigger = root / "bigger.ckpt"
    torch.save(state, bigger)
    # another encoder (untrained): its maps are in the same image pixels
    other = load_preset("cpu-demo", [*tiny, "models.encoder.model_name=resnet18", "datasets.image_size=288"])
    module = DBNetModule(other.preset.model_dump(mode="json"))
    resnet18 = root / "resnet18.ckpt"
    torch.save({"state_dict": module.state_dict(),
                "hyper_parameters": {"preset": other.preset.model_dump(mode="json")}}, resnet18)
    return SimpleNamespace(root=root, data=data, run=run, last=run / "checkpoints" / "last.ckpt",
                           bigger=bigger, resnet18=resnet18)


@pytest.mark.slow
def test_cli_two_copies_of_a_trained_model_give_its_map_and_the_boxes_of_that_map(trained, cli, tmp_path):
    """Exactly the model's map on the image, and the boxes the postprocess finds on it. (The
    model alone postprocesses its whole padded input: what a barely trained model sees in the
    black padding can add or join regions there; an ensemble averages over the image only.)"""
    from ocrtune.train.module import postprocessor

    t = trained
    images = t.data / "images" / "val"
    for name, extra in (("alone", []), ("pair", ["--ensemble", t.last])):
        code, _, err = cli("predict", t.last, *extra, "--images", images, "--out", tmp_path / f"{name}.csv",
                           "--save-maps", tmp_path / name, *LOW)
        assert code == 0, err
    pair = read_submission_csv(tmp_path / "pair.csv")
    post = postprocessor(load_preset(t.run / "config.yaml", LOW[1::2]).preset.models.head.postprocess)
    found = 0
    for name, ann in pair.items():
        a, b = np.load(tmp_path / "alone" / f"{name}.npz"), np.load(tmp_path / "pair" / f"{name}.npz")
        assert np.array_equal(a["prob"], b["prob"]) and np.array_equal(a["scale"], b["scale"])
        expected = post(a["prob"], scale=tuple(a["scale"]), original_size=tuple(a["orig_size"]))
        assert len(ann.words) == len(expected)
        for word, det in zip(ann.words, expected):
            np.testing.assert_allclose(word.points, det.polygon, atol=0.006)  # the CSV keeps 2 decimals
        found += len(expected)
    assert found >= 10  # it finds things (20 here, a count float rounding moves), so the comparison means something

    code, out, err = cli("evaluate", t.last, "--ensemble", t.last, "--data", t.data, *LOW, "--json")
    assert code == 0, err
    scores = json.loads(out)
    assert [m["weight"] for m in scores["ensemble"]["models"]] == [0.5, 0.5]
    assert "ensemble of 2 models, views plain;" in err
    # the ensemble's scores go beside the model's own, which stay
    assert scores["saved"] == str(t.run / "eval-val.ensemble.json")
    code, out, err = cli("evaluate", t.last, "--data", t.data, *LOW, "--json")
    assert code == 0 and json.loads(out)["saved"] == str(t.run / "eval-val.json")
    assert json.loads((t.run / "eval-val.ensemble.json").read_text())["ensemble"] == scores["ensemble"]


@pytest.mark.slow
def test_cli_models_of_other_input_sizes_and_encoders_with_views(trained, cli, tmp_path):
    t = trained
    code, out, err = cli("predict", t.run, "--ensemble", t.bigger, "--ensemble", t.resnet18, "--weights", "2,1,1",
                         "--tta", "flip,scale:1.25", "--images", t.data / "images" / "val", "--out",
                         tmp_path / "s.csv", *LOW, "--json", tmp_path / "p.json", "--save-maps", tmp_path / "maps")
    assert code == 0, err
    assert sorted(read_submission_csv(tmp_path / "s.csv")) == ["receipt_00000.jpg", "receipt_00001.jpg"]
    lines = err.splitlines()
    assert lines[0] == "ensemble of 3 models, views plain, flip, scale:1.25; postprocess settings of model 1"
    assert lines[1].endswith("weight 0.5  resnet10t  input 256, 320 px") and lines[1].startswith(f"  1. {t.run}")
    assert lines[2] == f"  2. {t.bigger}  weight 0.25  resnet10t  input 320, 416 px"
    assert lines[3] == f"  3. {t.resnet18}  weight 0.25  resnet18  input 288, 352 px"
    m = np.load(tmp_path / "maps" / "receipt_00000.jpg.npz")
    h, w = (int(x) for x in m["orig_size"])
    assert m["prob"].shape == (round(h * m["scale"][1]), round(w * m["scale"][0]))  # the image, first model's pixels
    code, out, err = cli("evaluate", t.run, "--ensemble", t.bigger, "--tta", "flip", "--data", t.data, *LOW)
    assert code == 0, err
    assert "val: 2 images, 2 models x 2 views" in out
    assert "ensemble of 2 models, views plain, flip; postprocess settings of model 1" in err


@pytest.mark.slow
def test_cli_a_kfold_folder_is_its_completed_folds(trained, cli, tmp_path, monkeypatch):
    t = trained
    kdir, empty = tmp_path / "kfold-x", tmp_path / "kfold-empty"
    kdir.mkdir()
    empty.mkdir()
    folds = {kdir: [t.run, t.run], empty: []}
    fake = SimpleNamespace(is_kfold_dir=lambda p: Path(p) in folds, fold_runs=lambda p: folds[Path(p)])
    monkeypatch.setattr(ens, "_kfold_layout", lambda: fake)
    code, out, err = cli("evaluate", kdir, "--ensemble", t.last, "--weights", "1,1", "--data", t.data, *LOW, "--json")
    assert code == 0, err
    result = json.loads(out)
    models = result["ensemble"]["models"]
    assert [(m["source"], m["weight"]) for m in models] == [(str(t.run), 0.25), (str(t.run), 0.25), (str(t.last), 0.5)]
    assert result["saved"] == str(kdir / "eval-val.ensemble.json")  # the k-fold's scores, in its folder
    code, _, err = cli("evaluate", kdir, "--weights", "1,2", "--data", t.data)
    assert code == 2 and err.startswith("--weights: 2 weights for 1 model; give one for REF and one per --ensemble")
    code, _, err = cli("evaluate", empty, "--data", t.data)
    assert code == 2 and err == f"{empty}: k-fold run has no completed fold yet (see `ocrtune kfold status`)\n"


@pytest.mark.slow
def test_cli_bad_ensemble_input_is_one_located_line(trained, cli, tmp_path):
    t = trained
    bare = tmp_path / "bare-run"
    bare.mkdir()
    shutil.copy(t.run / "config.yaml", bare / "config.yaml")  # a run that saved no checkpoint
    images = ["--images", t.data / "images" / "val", "--out", tmp_path / "s.csv"]
    cases = [
        (["--ensemble", bare], f"{bare / 'checkpoints'}: run has no checkpoint (best.ckpt or last.ckpt)"),
        (["--ensemble", t.last, "--weights", "1,2,3"], "--weights: 3 weights for 2 models"),
        (["--weights", "1,x", "--ensemble", t.last], "--weights: not a number: 'x'"),
        (["--ensemble", t.last, "--weights", "-1,2"], "--weights: weights must be >= 0, got -1"),
        (["--tta", "rotate"], "--tta: unknown view 'rotate'; known: flip, scale:S"),
        (["--tta", "scale:0"], "--tta: scale must be > 0, got 0 in 'scale:0'"),
        (["--tta", "flip,scale:-2"], "--tta: scale must be > 0, got -2 in 'scale:-2'"),
    ]
    for extra, message in cases:
        for command in (["predict", t.run, *images], ["evaluate", t.run, "--data", t.data]):
            code, out, err = cli(*command, *extra)
            assert code == 2, (extra, out, err)
            assert err.startswith(message) and len(err.splitlines()) == 1, (extra, err)
    assert not (tmp_path / "s.csv").exists()
    code, _, err = cli("evaluate", t.run, "--ensemble", t.bigger, "--data", t.data, "--out", t.bigger)
    assert code == 2 and err == f"{t.bigger} --out: is the checkpoint being evaluated\n"
