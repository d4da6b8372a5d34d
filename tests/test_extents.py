"""Inference on each image's own extent (``ocrtune.train.extents``): only padding is cut, an
image's map does not depend on the batch it came in, validation (with or without its loss) and
``evaluate``/``predict``/the tuning cache (``infer._prob_maps``) score those maps. Ensembles:
tests/test_ensemble.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ocrtune.data.transforms import normalize, resize_and_pad
from ocrtune.presets.load import load_preset
from ocrtune.train.datamodule import DetectionDataset, collate, load_split
from ocrtune.train.extents import CPU_GROUP_PIXELS, PAD_STEP, by_extent, group_pixels, padded_extent, prob_maps
from ocrtune.train.infer import _prob_maps
from ocrtune.train.module import DBNetModule
from tests._pages import receipt_pages

SIZE = 256
# (width, height): resized to 256 px on the long side: 64 and 100 px wide, 64 px high, square
SHAPES = [(100, 400), (250, 640), (400, 100), (500, 500)]


@pytest.mark.parametrize("extent, limit, expected", [
    ((256, 64), (256, 256), (256, 128)), ((256, 128), (256, 256), (256, 128)), ((256, 129), (256, 256), (256, 256)),
    ((1, 1), (256, 256), (128, 128)), ((1000, 300), (1000, 1000), (1000, 384)), ((90, 90), (96, 96), (96, 96)),
    ((1024, 300), (1024, 384), (1024, 384)),  # a non-square input: each side its own limit
])
def test_the_extent_is_rounded_up_to_the_step_and_stays_in_the_input(extent, limit, expected):
    assert padded_extent(extent, limit) == expected


def _inputs(shapes: list[tuple[int, int]]) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    rng = np.random.default_rng(0)
    tensors, extents = [], []
    for w, h in shapes:
        square, _, inv = resize_and_pad(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), [], SIZE)
        tensors.append(torch.from_numpy(normalize(square)))
        extents.append(inv.extent)
    return torch.stack(tensors), extents


def test_images_of_one_extent_run_together_and_only_padding_is_cut():
    images, extents = _inputs(SHAPES)
    assert extents == [(256, 64), (256, 100), (64, 256), (256, 256)]
    parts = list(by_extent(images, extents))
    assert [(idx, tuple(p.shape)) for idx, p in parts] == [
        ([0, 1], (2, 3, 256, 128)), ([2], (1, 3, 128, 256)), ([3], (1, 3, 256, 256))]
    pad = images[0, :, -1, -1].view(3, 1, 1)  # resize_and_pad's black, normalised
    for idx, part in parts:
        for k, i in enumerate(idx):
            h, w = part.shape[-2:]
            assert torch.equal(part[k], images[i, :, :h, :w])
            outside = torch.cat([images[i, :, h:, :].flatten(1), images[i, :, :, w:].flatten(1)], 1)
            assert torch.equal(outside, pad.view(3, 1).expand_as(outside))  # nothing but padding left out


def test_a_map_comes_back_in_batch_order_over_its_padded_extent():
    images, extents = _inputs(SHAPES)
    calls: list[tuple[int, ...]] = []

    def model(x: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(x.shape))
        return x[:, :1] * 0 + x.shape[-1]  # each map says how wide its input was

    maps = prob_maps(model, images, extents)
    assert [m.shape for m in maps] == [(256, 128), (256, 128), (128, 256), (256, 256)]
    assert [float(m[0, 0]) for m in maps] == [128, 128, 256, 256]
    assert calls == [(2, 3, 256, 128), (1, 3, 128, 256), (1, 3, 256, 256)]
    with pytest.raises(ValueError, match="3 extents for a batch of 4"):
        list(by_extent(images, extents[:3]))


def test_a_pixel_budget_splits_an_extents_images_and_a_gpu_runs_them_one_at_a_time():
    images, extents = _inputs(SHAPES)
    one_at_a_time = [(idx, tuple(p.shape)) for idx, p in by_extent(images, extents, max_pixels=0)]
    assert one_at_a_time == [([0], (1, 3, 256, 128)), ([1], (1, 3, 256, 128)), ([2], (1, 3, 128, 256)),
                             ([3], (1, 3, 256, 256))]
    # two 256 x 128 images need 65536 pixels: one pixel less splits them
    assert [idx for idx, _ in by_extent(images, extents, max_pixels=2 * 256 * 128)] == [[0, 1], [2], [3]]
    assert [idx for idx, _ in by_extent(images, extents, max_pixels=2 * 256 * 128 - 1)] == [[0], [1], [2], [3]]
    assert group_pixels("cuda") == 0 and group_pixels(torch.device("cuda", 1)) == 0
    assert group_pixels("cpu") == CPU_GROUP_PIXELS > 256 * 256  # the CPU default groups these pages
    maps = prob_maps(lambda x: x[:, :1] * 0 + x.shape[0], images, extents, max_pixels=0)
    assert [float(m[0, 0]) for m in maps] == [1, 1, 1, 1]  # each forward saw one image


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pages")
    receipt_pages(root, "val", SHAPES)
    return root


@pytest.fixture(scope="module", params=["nchw", "channels_last"])
def module(request: pytest.FixtureRequest) -> DBNetModule:
    """The model both ways it runs: NCHW, and channels-last as on the CPU (train/precision.py)."""
    torch.manual_seed(0)
    preset = load_preset("cpu-demo", [f"datasets.image_size={SIZE}"]).preset
    module = DBNetModule(preset.model_dump(mode="json")).eval()
    return module.to(memory_format=torch.channels_last) if request.param == "channels_last" else module


def _loader(pages: Path, batch_size: int, targets: bool = False):
    from torch.utils.data import DataLoader

    items, _ = load_split(pages, "val")
    preset = load_preset("cpu-demo", [f"datasets.image_size={SIZE}"]).preset
    ds = DetectionDataset(items, preset.datasets, train=False, with_targets=targets)
    return DataLoader(ds, batch_size=batch_size, collate_fn=collate)


def test_an_images_map_does_not_depend_on_its_batch(pages, module):
    def maps(batch_size: int) -> dict:
        found = _prob_maps(module, module.preset, _loader(pages, batch_size), None)
        return {n: m for b, maps in found for n, m in zip(b["name"], maps)}

    one, four = maps(1), maps(4)
    assert sorted(one) == sorted(four) == [f"r{i}.png" for i in range(4)]
    for name in one:
        assert one[name].shape == four[name].shape
        np.testing.assert_allclose(one[name], four[name], atol=1e-5)
    assert one["r0.png"].shape == (SIZE, PAD_STEP)  # 64 px wide: not the 256 px square


def _validate(module: DBNetModule, pages: Path, batch_size: int, val_loss: bool) -> tuple[dict, list, list]:
    """Per-image scores, the losses, and the shapes of the maps scored."""
    module.val_loss = val_loss
    module.on_validation_epoch_start()
    shapes: list[tuple[int, ...]] = []
    add = module._scores.add
    module._scores.add = lambda maps, batch: (shapes.extend(m.shape for m in maps), add(maps, batch))
    with torch.no_grad():
        for i, batch in enumerate(_loader(pages, batch_size, targets=val_loss)):
            module.validation_step(batch, i)
    return module._scores.cleval.summary()["per_image"], list(module._val_losses.values()), shapes


def test_validation_scores_each_image_on_its_own_extent(pages, module):
    _, _, shapes = _validate(module, pages, 4, val_loss=False)
    assert shapes == [(256, 128), (256, 128), (128, 256), (256, 256)]


def test_the_validation_loss_is_each_images_own_whatever_the_batch(pages, module):
    _, one, _ = _validate(module, pages, 1, val_loss=True)
    _, four, _ = _validate(module, pages, 4, val_loss=True)
    assert len(one) == len(four) == 4 and np.isfinite(four).all()
    np.testing.assert_allclose(four, one, rtol=1e-5)


def test_validation_scores_the_same_maps_with_and_without_its_loss(pages, module):
    plain, no_loss, plain_shapes = _validate(module, pages, 4, val_loss=False)
    with_loss, losses, loss_shapes = _validate(module, pages, 4, val_loss=True)
    assert no_loss == [] and len(losses) == 4
    assert plain == with_loss and plain_shapes == loss_shapes


def test_ddp_ranks_scores_and_losses_merge_by_image(monkeypatch):
    """Each rank validates its share; an image the sampler gave two ranks (to even them out)
    counts once in the scores and in ``val/loss``."""
    import torch.distributed as dist

    from ocrtune.train.module import _gather_summaries

    def summary(names: list[str], hmean: float) -> dict:
        counts = {"num_char_gt": 4, "num_char_det": 4, "tp": 4}
        return {"per_image": {n: {"recall": hmean, "precision": hmean, "hmean": hmean, "counts": counts}
                              for n in names}}

    theirs = summary(["b", "c"], 0.5)["per_image"]
    other_rank = (theirs, theirs, {"b": 3.0, "c": 3.0})
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(dist, "all_gather_object",
                        lambda parts, mine: parts.__setitem__(slice(None), [mine, other_rank]))
    cle, iou, losses = _gather_summaries(summary(["a", "b"], 1.0), summary(["a", "b"], 1.0), {"a": 1.0, "b": 3.0})
    assert losses == {"a": 1.0, "b": 3.0, "c": 3.0}  # b once, as the other rank had it
    assert sorted(cle["per_image"]) == ["a", "b", "c"] and cle["image_mean"]["hmean"] == pytest.approx(2 / 3)
    assert iou["image_mean"]["hmean"] == pytest.approx(2 / 3)
