"""DB loss: OHEM selection, masking, fp32 safety under autocast, gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ocrtune.model.loss import DBLoss, dice_loss, masked_l1, ohem_bce, top_sum
from ocrtune.presets.schema import LossConfig


def batch(b: int = 2, h: int = 16, w: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    prob_map = torch.zeros(b, h, w)
    prob_map[:, 4:8, 3:12] = 1.0
    return {
        "prob_map": prob_map,
        "prob_mask": torch.ones(b, h, w),
        "thresh_map": torch.rand(b, h, w, generator=g) * 0.4 + 0.3,
        "thresh_mask": (torch.rand(b, h, w, generator=g) > 0.5).float(),
    }


def preds(b: int = 2, h: int = 16, w: int = 16, seed: int = 1, scale: float = 3.0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    p = (torch.randn(b, 1, h, w, generator=g) * scale).requires_grad_()
    t = torch.rand(b, 1, h, w, generator=g).requires_grad_()
    return {"prob_logits": p, "thresh": t, "binary_logits": 50 * (torch.sigmoid(p) - t)}


def test_parts_and_weights() -> None:
    cfg = LossConfig(prob_weight=2.0, thresh_weight=3.0, binary_weight=4.0)
    out = DBLoss(cfg)(preds(), batch())
    assert set(out) == {"loss", "prob", "thresh", "binary"}
    for k in ("prob", "thresh", "binary"):
        assert out[k].dtype == torch.float32 and out[k] > 0
    expected = 2 * out["prob"] + 3 * out["thresh"] + 4 * out["binary"]
    torch.testing.assert_close(out["loss"].detach(), expected)


def test_thresh_l1_only_under_mask() -> None:
    pred = torch.tensor([[[0.0, 1.0], [0.5, 0.2]]])
    target = torch.tensor([[[1.0, 1.0], [0.0, 0.2]]])
    mask = torch.tensor([[[0.0, 1.0], [1.0, 1.0]]])
    assert masked_l1(pred, target, mask).item() == pytest.approx(0.5 / 3, rel=1e-5)


def test_ohem_picks_hardest_negatives() -> None:
    # one positive, ratio 3: exactly the three most confident false positives count
    logits = torch.tensor([[2.0, -5.0, 4.0, -1.0, 3.0, 0.5, -3.0, 6.0]]).requires_grad_()
    target = torch.tensor([[1.0, 0, 0, 0, 0, 0, 0, 0]])
    mask = torch.ones_like(target)
    loss = ohem_bce(logits, target, mask, negative_ratio=3.0)
    bce = F.binary_cross_entropy_with_logits(logits.detach(), target, reduction="none")[0]
    expected = (bce[0] + bce[7] + bce[2] + bce[4]) / 4
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    chosen = {0, 2, 4, 7}
    for i, g in enumerate(logits.grad[0].tolist()):
        assert (g != 0) == (i in chosen), (i, g)


def test_ohem_ignores_masked_pixels() -> None:
    logits = torch.tensor([[2.0, 9.0, 4.0, 3.0]])
    target = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 0.0, 1.0, 1.0]])  # the worst negative is masked out
    loss = ohem_bce(logits, target, mask, negative_ratio=1.0)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")[0]
    assert loss.item() == pytest.approx(((bce[0] + bce[2]) / 2).item(), rel=1e-5)


def test_zero_positives_still_penalises_false_positives() -> None:
    b = batch()
    b["prob_map"].zero_()
    loud = preds(scale=3.0)
    out = DBLoss()(loud, b)
    assert torch.isfinite(out["loss"]) and out["prob"] > 0.1
    out["loss"].backward()
    assert loud["prob_logits"].grad.abs().sum() > 0
    quiet = {k: v.detach().clone() for k, v in loud.items()}
    quiet["prob_logits"] = torch.full_like(quiet["prob_logits"], -20.0)
    assert DBLoss()(quiet, b)["prob"] < 1e-6


def test_all_masked_is_finite_zero() -> None:
    b = batch()
    b["prob_mask"].zero_()
    b["thresh_mask"].zero_()
    p = preds()
    out = DBLoss()(p, b)
    for v in out.values():
        assert torch.isfinite(v)
    assert out["loss"].item() == pytest.approx(0.0, abs=1e-6)
    out["loss"].backward()
    assert torch.isfinite(p["prob_logits"].grad).all()


@pytest.mark.parametrize("extreme", [1e4, -1e4])
def test_finite_under_bf16_autocast_with_extreme_logits(extreme: float) -> None:
    b = batch()
    p = torch.full((2, 1, 16, 16), extreme, dtype=torch.bfloat16, requires_grad=True)
    t = torch.full((2, 1, 16, 16), 0.5, dtype=torch.bfloat16, requires_grad=True)
    binary = torch.full((2, 1, 16, 16), extreme, dtype=torch.bfloat16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = DBLoss()({"prob_logits": p, "thresh": t, "binary_logits": binary}, b)
    assert out["loss"].dtype == torch.float32
    assert all(torch.isfinite(v) for v in out.values())
    # all-positive logits are maximally wrong on the 3x background; the BCE is large, not inf
    if extreme > 0:
        assert out["prob"].item() > 1000
    out["loss"].backward()
    for x in (p, t, binary):
        assert torch.isfinite(x.grad.float()).all()


def test_same_value_with_and_without_autocast() -> None:
    p, b = preds(), batch()
    ref = DBLoss()(p, b)["loss"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = DBLoss()(p, b)["loss"]
    assert got.item() == ref.item()


def test_gradients_reach_all_predictions() -> None:
    p = preds()
    DBLoss()(p, batch())["loss"].backward()
    assert p["prob_logits"].grad.abs().sum() > 0
    assert p["thresh"].grad.abs().sum() > 0


def test_dice_perfect_and_worst() -> None:
    target = torch.zeros(1, 8, 8)
    target[0, 2:6, 2:6] = 1
    mask = torch.ones_like(target)
    perfect = torch.where(target > 0, 30.0, -30.0)
    assert dice_loss(perfect, target, mask).item() == pytest.approx(0.0, abs=1e-5)
    worst = -perfect
    assert dice_loss(worst, target, mask).item() == pytest.approx(1 - 1 / (48 + 16 + 1), rel=1e-4)


def test_accepts_channel_dim_or_not() -> None:
    p, b = preds(), batch()
    squeezed = {k: v.squeeze(1) for k, v in p.items()}
    a, c = DBLoss()(p, b)["loss"], DBLoss()(squeezed, b)["loss"]
    assert math.isclose(a.item(), c.item(), rel_tol=1e-6)


@pytest.mark.parametrize("k", [0, 1, 7, 64])
def test_top_sum_sort_and_topk_agree(k: int) -> None:
    values = torch.rand(64, generator=torch.Generator().manual_seed(k))
    expected = values.sort(descending=True).values[:k].sum()
    kt = torch.tensor(float(k), dtype=torch.float64)
    for mode in (True, False):
        assert top_sum(values, kt, sort=mode).item() == pytest.approx(expected.item(), rel=1e-6, abs=1e-7)
