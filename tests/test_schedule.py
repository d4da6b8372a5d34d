from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from ocrtune.train.schedule import last_factor, lr_factor, schedule_note, step_lr_factor


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


# --- stepping after every optimizer step ------------------------------------------------------

def test_step_schedule_with_one_step_an_epoch_is_the_epoch_schedule():
    lr, eta = 2e-3, 1e-6
    for warmup in (0, 1, 3):
        for e in range(warmup + 10):
            assert step_lr_factor(e, 1, lr, eta, 10, warmup, "cosine") == pytest.approx(
                lr_factor(e, lr, eta, 10, warmup, "cosine"), rel=1e-12), (warmup, e)


def test_step_schedule_warms_up_anneals_within_epochs_and_holds_eta_min():
    lr, eta, spe = 2e-3, 1e-6, 50
    f = [step_lr_factor(i, spe, lr, eta, 2, 1, "cosine") for i in range(5 * spe)]
    warm, cosine, after = f[:spe], f[spe:3 * spe], f[3 * spe:]
    assert warm[0] == pytest.approx(1 / (spe + 1)) and all(a < b for a, b in zip(warm, warm[1:]))
    assert cosine[0] == 1.0 and all(a > b for a, b in zip(cosine, cosine[1:]))
    assert cosine[spe] == pytest.approx((1 + eta / lr) / 2)  # half-way through T_max
    assert cosine[-1] < 0.001 and after == [pytest.approx(eta / lr)] * len(after)  # held, never rising again
    assert step_lr_factor(7 * spe, spe, lr, eta, 2, 1, "constant") == 1.0


def _sched(**kw):
    from ocrtune.presets.schema import SchedulerConfig

    return SchedulerConfig(**{"T_max": 16, "eta_min": 1e-6, "warmup_epochs": 1, **kw})


def test_a_run_cut_short_of_its_cosine_is_told_the_settings_that_fit_it():
    note = schedule_note(_sched(), 2e-3, 2, 135)
    assert note == ("schedule: the cosine reaches eta_min after epoch 17 (1 warm-up + T_max 16); this run's last "
                    "step trains at 100% of lr 0.002 (not annealed); --set models.scheduler.T_max=1 "
                    "--set models.scheduler.interval=step fits it to 2 epochs")
    # the suggested settings anneal it: no note then, and the last step trains near eta_min
    fitted = _sched(T_max=1, interval="step")
    assert schedule_note(fitted, 2e-3, 2, 135) is None and last_factor(fitted, 2e-3, 2, 135) < 0.01
    # a step schedule only needs T_max; epoch stepping cannot anneal by T_max alone (it ends at t = T_max - 1)
    assert schedule_note(_sched(interval="step"), 2e-3, 8, 10).endswith("--set models.scheduler.T_max=7 fits it to 8 epochs")
    assert last_factor(_sched(T_max=7), 2e-3, 8, 10) == pytest.approx(lr_factor(7, 2e-3, 1e-6, 7, 1, "cosine"))


@pytest.mark.parametrize("kw, epochs", [({}, 16), ({"T_max": 7}, 8), ({"name": "constant"}, 2), ({"interval": "step"}, 40),
                                        ({"interval": "step", "T_max": 1}, 2)])
@pytest.mark.parametrize("steps", [135, 2])
def test_no_note_for_runs_that_anneal_or_never_meant_to(kw, epochs, steps):
    # 2 steps an epoch: a fitted step schedule's last step trains at 50% (one step short of
    # eta_min), and the note has nothing better to suggest
    assert schedule_note(_sched(**kw), 2e-3, epochs, steps) is None


def test_epoch_stepping_past_its_cosine_rises_again_and_says_so():
    note = schedule_note(_sched(), 2e-3, 40, 135)
    assert note.startswith("schedule: the cosine reaches eta_min after epoch 17 (1 warm-up + T_max 16), then rises "
                           "again (epoch stepping is periodic); this run's last step trains at 69% of lr 0.002")


def test_a_rise_past_the_cosine_is_told_even_when_the_last_rate_is_low():
    s = _sched(warmup_epochs=0)
    assert last_factor(s, 2e-3, 20, 135) < 0.1  # epoch 20 is back at 8 %
    note = schedule_note(s, 2e-3, 20, 135)
    assert "then rises again" in note and "(not annealed)" not in note
    assert schedule_note(s, 2e-3, 17, 135) is None  # epoch 17 trains at eta_min: not yet rising


def test_a_high_eta_min_reached_is_annealed():
    s = _sched(warmup_epochs=0, T_max=3, eta_min=1e-3)  # half the lr
    assert last_factor(s, 2e-3, 4, 135) == pytest.approx(0.5) and schedule_note(s, 2e-3, 4, 135) is None
    assert "trains at 63% of lr 0.002 (not annealed)" in schedule_note(s, 2e-3, 3, 135)  # 0.5 + 0.5 x 0.25


def test_a_resumed_run_is_not_told_a_set_it_cannot_use():
    note = schedule_note(_sched(), 2e-3, 2, 135, resumed=True)
    assert note.endswith("trains at 100% of lr 0.002 (not annealed); a resumed run keeps its schedule")


def test_a_run_inside_its_warmup_says_it_never_reaches_the_cosine():
    note = schedule_note(_sched(warmup_epochs=2), 2e-3, 1, 135)
    assert note == "schedule: this run ends inside its warm-up (2 epochs), at 33% of lr 0.002: it never reaches the cosine"


def test_training_with_a_step_schedule_records_each_epochs_mean_rate_and_ends_annealed(cli, tmp_path):
    """2 train images, batch 1: 2 steps an epoch; warm-up 1 epoch, cosine T_max 1 stepped per step."""
    from ocrtune.data.synthetic import synthesize

    data = tmp_path / "tiny"
    synthesize(data, n=4, seed=3, size=192, val_fraction=0.5)
    lr, eta = 2e-3, 1e-6
    code, out, err = cli("train", "--preset", "cpu-demo", "--data", data, "--runs-dir", tmp_path / "runs",
                         "--epochs", "2", "--set", "datasets.image_size=192", "--set", "dataloader.batch_size=1",
                         "--set", "models.scheduler.interval=step", "--set", "models.scheduler.T_max=1", "--json")
    assert code == 0, err
    assert "schedule:" not in err, err  # fitted: nothing to say
    run = Path(json.loads(out)["run_dir"])
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    steps = [lr * step_lr_factor(i, 2, lr, eta, 1, 1, "cosine") for i in range(4)]
    assert float(rows[0]["lr"]) == pytest.approx((steps[0] + steps[1]) / 2, rel=1e-7)
    assert float(rows[1]["lr"]) == pytest.approx((steps[2] + steps[3]) / 2, rel=1e-7)
    opt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["optimizer_states"][0]
    assert opt["param_groups"][0]["lr"] == pytest.approx(eta, rel=1e-6)  # after the 4th step: held at eta_min


def test_a_resumed_step_schedule_goes_on_from_its_epoch_when_the_steps_an_epoch_change(cli, tmp_path):
    """1 epoch at 2 steps an epoch, resumed on 4 train images (4 steps an epoch) to 3 epochs: the
    second epoch starts the cosine (its first step at the full rate), not half-way through the
    warm-up, where the saved step count (2) would put it against 4 steps an epoch."""
    from ocrtune.data.synthetic import synthesize

    small, big = tmp_path / "small", tmp_path / "big"
    synthesize(small, n=4, seed=3, size=192, val_fraction=0.5)
    synthesize(big, n=6, seed=3, size=192, val_fraction=0.34)
    lr, eta, runs = 2e-3, 1e-6, tmp_path / "runs"
    code, out, err = cli("train", "--preset", "cpu-demo", "--data", small, "--runs-dir", runs, "--epochs", "1",
                         "--set", "datasets.image_size=192", "--set", "dataloader.batch_size=1",
                         "--set", "models.scheduler.interval=step", "--set", "models.scheduler.T_max=2", "--json")
    assert code == 0, err
    run = Path(json.loads(out)["run_dir"])
    code, out, err = cli("train", "--resume", run, "--data", big, "--epochs", "3", "--runs-dir", runs, "--json")
    assert code == 0, err
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    rates = [lr * step_lr_factor(i, 4, lr, eta, 2, 1, "cosine") for i in range(12)]
    assert float(rows[1]["lr"]) == pytest.approx(sum(rates[4:8]) / 4, rel=1e-7)  # metrics.csv keeps 8 digits
    assert float(rows[2]["lr"]) == pytest.approx(sum(rates[8:12]) / 4, rel=1e-7)
