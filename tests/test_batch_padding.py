"""Training batches padded only as far as their largest image needs (``dataloader.pad: batch``):
the cut removes padding and nothing else."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ocrtune.data.transforms import resize_and_pad
from ocrtune.model.dbnet import build_dbnet
from ocrtune.model.loss import DBLoss
from ocrtune.presets.load import load_preset
from ocrtune.presets.schema import DatasetsConfig
from ocrtune.train.datamodule import TARGET_KEYS, DetectionDataModule, DetectionDataset, collate, load_split
from tests._pages import receipt_pages

SIZE = 512
# (width, height) of tall receipts: resized to 512 px high they are 128, 200 and 282 px wide
SHAPES = [(100, 400), (250, 640), (330, 600)]


@pytest.fixture(scope="module")
def tall(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tall")
    receipt_pages(root, "train", SHAPES)
    receipt_pages(root, "val", SHAPES)
    return root


@pytest.mark.parametrize("h, w", [(400, 100), (100, 400), (300, 300), (1, 900), (1283, 517)])
def test_extent_is_the_resized_image(h, w):
    image = np.full((h, w, 3), 255, np.uint8)
    out, _, inv = resize_and_pad(image, [], SIZE)
    eh, ew = inv.extent
    assert out[:eh, :ew].min() == 255  # all image
    assert out[eh:].max(initial=0) == 0 and out[:, ew:].max(initial=0) == 0  # all padding


def test_batch_padding_cuts_only_padding(tall):
    items, _ = load_split(tall, "train")
    ds = DetectionDataset(items, DatasetsConfig(image_size=SIZE), with_targets=True)
    samples = [ds[i] for i in range(len(items))]
    square, cut = collate(samples), collate(samples, pad="batch")
    widest = max(s["extent"][1] for s in samples)
    assert widest == 282 and cut["image"].shape == (3, 3, SIZE, 384)  # rounded up to 128 px (PAD_STEP)
    assert square["image"].shape == (3, 3, SIZE, SIZE)
    for k in ("image", *TARGET_KEYS):
        assert torch.equal(cut[k], square[k][..., :SIZE, :384]), k
    pad_value = square["image"][0, :, -1, -1]
    assert torch.equal(square["image"][..., 384:], pad_value.view(1, 3, 1, 1).expand(3, 3, SIZE, SIZE - 384))
    assert square["prob_map"][..., 384:].max() == 0 and square["thresh_mask"][..., 384:].max() == 0
    assert cut["name"] == square["name"] and cut["scale"] == square["scale"]


def test_threshold_borders_reaching_into_the_padding_are_kept(tmp_path):
    """Text at the image's right edge has a threshold border drawn past it, into the padding: the
    cut keeps it whole, even when the image's own width is a whole multiple of 128 px."""
    receipt_pages(tmp_path, "train", [(200, 400)])  # 256 px wide at 512 px, its text up to the right edge
    items, _ = load_split(tmp_path, "train")
    sample = DetectionDataset(items, DatasetsConfig(image_size=SIZE), with_targets=True)[0]
    assert sample["extent"] == (SIZE, 256)
    square, cut = collate([sample]), collate([sample], pad="batch")
    assert square["thresh_mask"][..., 256:].max() > 0  # the border reaches past the image
    assert cut["image"].shape[-1] == 384
    assert square["thresh_mask"][..., 384:].max() == 0 and torch.equal(cut["thresh_mask"],
                                                                         square["thresh_mask"][..., :384])


def test_a_cut_batch_trains(tall):
    """The network takes the non-square batch and its maps line up with the cut targets."""
    items, _ = load_split(tall, "train")
    ds = DetectionDataset(items, DatasetsConfig(image_size=SIZE), with_targets=True)
    batch = collate([ds[i] for i in range(len(items))], pad="batch")
    net = build_dbnet(load_preset("cpu-demo").preset.models).train()
    out = net(batch["image"])
    assert out["prob_logits"].shape[-2:] == batch["prob_map"].shape[-2:] == (SIZE, 384)
    loss = DBLoss()(out, batch)["loss"]
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in net.parameters() if p.requires_grad)


@pytest.mark.parametrize("pad, width", [("square", SIZE), ("batch", 384)])
def test_training_batches_follow_the_setting_and_validation_batches_keep_each_extent(tall, pad, width):
    cfg = load_preset("cpu-demo", [f"datasets.image_size={SIZE}", f"dataloader.pad={pad}",
                                    "datasets.augment.enabled=false"]).preset
    dm = DetectionDataModule(tall, cfg.datasets, batch_size=3, num_workers=0, seed=1, pad=cfg.dataloader.pad)
    train = next(iter(dm.train_dataloader()))
    val = next(iter(dm.val_dataloader()))
    assert train["image"].shape[-2:] == train["prob_map"].shape[-2:] == (SIZE, width)
    assert val["image"].shape[-2:] == (SIZE, SIZE)  # the model cuts each image (extents.py)
    assert val["extent"] == [(SIZE, 128), (SIZE, 200), (SIZE, 282)]


def test_the_run_header_says_how_batches_are_padded(tmp_path):
    from ocrtune.train.resources import RunHeader

    common = dict(run_dir=tmp_path, device="cpu", precision="32-true", n_train=8, n_val=2, batch_size=4,
                  steps_per_epoch=2, epochs=3)
    assert "2 steps/epoch (batch 4, padded to the batch)" in RunHeader(**common, pad="batch").line()
    assert "2 steps/epoch (batch 4)  |" in RunHeader(**common).line()
