"""The line a sweep prints when its trials stop before the preset's cosine anneals."""

from __future__ import annotations

import pytest

from ocrtune.presets.load import load_preset
from ocrtune.sweep.plan.trial_schedule import trial_schedule_note
from ocrtune.sweep.types import SweepConfig
from tests.sweep.helpers import LR


def _cfg(sets=(), epochs=3, keys=(LR,), objective=None, preset="cpu-demo") -> SweepConfig:
    base = load_preset(preset, list(sets)).preset.model_dump(mode="json")
    return SweepConfig(name="s", base=base, epochs=epochs, dims=tuple({"key": k} for k in keys), objective=objective)


def test_short_trials_of_a_long_cosine_are_named_with_the_fitting_sets():
    note = trial_schedule_note(_cfg())
    assert note == ("schedule: trials train 3 epoch(s); the cosine reaches eta_min after epoch 17 (1 warm-up + "
                    "T_max 16); each trial's last step trains at 99% of its lr (not annealed), so the sweep ranks "
                    "weights taken at a high rate; --set models.scheduler.T_max=2 --set "
                    "models.scheduler.interval=step fits it to 3 epochs")


def test_the_lr_is_named_when_it_is_not_swept():
    note = trial_schedule_note(_cfg(keys=("models.optimizer.weight_decay",)))
    assert "each trial's last step trains at 99% of lr 0.002 (not annealed)" in note


@pytest.mark.parametrize("sets, epochs", [
    (["models.scheduler.interval=step", "models.scheduler.T_max=2"], 3),  # fitted as the note says
    (["models.scheduler.name=constant"], 3),  # nothing to anneal
    ([], 17),  # cpu-demo's own length: its last epoch trains at eta_min
])
def test_no_line_when_the_trials_anneal_or_cannot(sets, epochs):
    assert trial_schedule_note(_cfg(sets, epochs)) is None


def test_no_line_when_the_space_sets_the_schedule_or_nothing_is_trained():
    assert trial_schedule_note(_cfg(keys=(LR, "models.scheduler.T_max"))) is None
    assert trial_schedule_note(_cfg(objective="tests.sweep_objectives:curve")) is None


def test_trials_shorter_than_the_warm_up_are_named_as_trials():
    assert trial_schedule_note(_cfg(epochs=1)) == (
        "schedule: trials train 1 epoch(s); each trial ends inside its warm-up (1 epoch), at 50% of its lr: "
        "it never reaches the cosine")
