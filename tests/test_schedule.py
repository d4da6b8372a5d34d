from __future__ import annotations

import math

import pytest
import torch

from ocrtune.train.module import lr_factor


@pytest.mark.parametrize("t_max, eta_min", [(22, 1e-5), (24, 6.388390006720873e-06), (5, 0.0)])
def test_cosine_matches_torch_closed_form(t_max, eta_min):
    lr = 4e-4
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    ref = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=t_max, eta_min=eta_min)
    for epoch in range(30):
        ours = lr * lr_factor(epoch, lr, eta_min, t_max, 0, "cosine")
        assert ours == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9, abs=1e-15), epoch
        opt.step()
        ref.step()


def test_warmup_then_cosine_and_constant():
    lr = 1e-3
    f = [lr_factor(e, lr, 0.0, 10, 2, "cosine") for e in range(5)]
    assert f[0] == pytest.approx(1 / 3) and f[1] == pytest.approx(2 / 3)
    assert f[2] == pytest.approx(1.0)
    assert f[3] == pytest.approx((1 + math.cos(math.pi / 10)) / 2)
    assert lr_factor(7, lr, 0.0, 10, 0, "constant") == 1.0
