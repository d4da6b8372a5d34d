"""The learning-rate schedule as pure functions: warm-up, then cosine or constant.

``epoch`` stepping (the default) is PyTorch's closed-form ``CosineAnnealingLR`` stepped once an
epoch, exactly as the baseline's scheduler behaved: a run of a few epochs changes its rate only a
few times, and one shorter than the cosine ends at a high rate. ``step`` stepping follows the
same curve after every optimizer step and stays at ``eta_min`` past ``T_max``, so a two-epoch
pretraining can warm up and anneal.
"""

from __future__ import annotations

import math

from ocrtune.presets.schema import SchedulerConfig


def lr_factor(epoch: int, lr: float, eta_min: float, t_max: int, warmup: int, name: str) -> float:
    """Multiplier of the base lr at ``epoch`` (0-based), epoch stepping.

    Linear warm-up over ``warmup`` epochs, then PyTorch's closed-form ``CosineAnnealingLR``
    (periodic past ``T_max``, exactly as the baseline's scheduler behaved).
    """
    if epoch < warmup:
        return (epoch + 1) / (warmup + 1)
    if name == "constant":
        return 1.0
    t = epoch - warmup
    return _cosine(t, lr, eta_min, t_max)


def step_lr_factor(step: int, steps_per_epoch: int, lr: float, eta_min: float, t_max: int, warmup: int,
                   name: str) -> float:
    """Multiplier of the base lr at optimizer ``step`` (0-based), step stepping.

    The warm-up rises linearly over ``warmup`` epochs' steps (the epoch formula with one step an
    epoch); the cosine then runs ``T_max`` epochs of steps and holds ``eta_min`` after them.
    """
    warm = warmup * steps_per_epoch
    if step < warm:
        return (step + 1) / (warm + 1)
    if name == "constant":
        return 1.0
    t = min((step - warm) / steps_per_epoch, float(t_max))
    return _cosine(t, lr, eta_min, t_max)


def _cosine(t: float, lr: float, eta_min: float, t_max: int) -> float:
    return (eta_min + (lr - eta_min) * (1 + math.cos(math.pi * t / t_max)) / 2) / lr


def last_factor(s: SchedulerConfig, lr: float, epochs: int, steps_per_epoch: int) -> float:
    """The multiplier the run's last optimizer step trains at."""
    if s.interval == "step":
        return step_lr_factor(max(epochs * steps_per_epoch - 1, 0), steps_per_epoch, lr, s.eta_min, s.T_max,
                              s.warmup_epochs, s.name)
    return lr_factor(epochs - 1, lr, s.eta_min, s.T_max, s.warmup_epochs, s.name)


#: A run whose last step trains above this fraction of its lr has not annealed (the note says so).
UNANNEALED = 0.1


def schedule_note(s: SchedulerConfig, lr: float, epochs: int, steps_per_epoch: int, resumed: bool = False,
                  subject: str = "this run", lr_name: str | None = None, lead: str = "",
                  consequence: str = "") -> str | None:
    """One line when a cosine run stops before it anneals (its last step more than 10 % of the way
    from eta_min up to the lr) or epoch stepping takes it past the cosine, where the rate rises
    again; with the settings that fit it, unless the run is resumed (its schedule is kept). Else None.

    Weights taken at a high rate are noisy: two epochs of a 16-epoch cosine end at the full rate.
    A sweep words it for its trials: ``subject`` ("each trial"), ``lr_name`` the rate (default
    ``lr <value>``; "its lr" where the lr is swept), ``lead`` after "schedule: ", and
    ``consequence`` after "(not annealed)".
    """
    if s.name != "cosine" or epochs <= 0:
        return None
    rate = lr_name or f"lr {lr:g}"
    end = last_factor(s, lr, epochs, steps_per_epoch)
    floor = s.eta_min / lr
    high = end - floor > UNANNEALED * (1 - floor)
    ends = s.warmup_epochs + s.T_max
    rises = s.interval == "epoch" and epochs > ends + 1  # epoch ends + 1 trains at eta_min, later ones rise
    if not (high or rises):
        return None
    if epochs <= s.warmup_epochs:
        return (f"schedule: {lead}{subject} ends inside its warm-up ({_epochs(s.warmup_epochs)}), at {end:.0%} "
                f"of {rate}: it never reaches the cosine")
    fit = fitted_sets(s, epochs)
    if not fit:
        return None  # fitted: with few steps an epoch the last one sits a step short of eta_min
    how = " ".join(f"--set {x}" for x in fit)
    how = "a resumed run keeps its schedule" if resumed else f"{how} fits it to {_epochs(epochs)}"
    return (f"schedule: {lead}the cosine reaches eta_min after epoch {ends}"
            + (f" ({s.warmup_epochs} warm-up + T_max {s.T_max})" if s.warmup_epochs else f" (T_max {s.T_max})")
            + (", then rises again (epoch stepping is periodic)" if rises else "")
            + f"; {subject}'s last step trains at {end:.0%} of {rate}" + (f" (not annealed){consequence}" if high else "")
            + f"; {how}")


def fitted_sets(s: SchedulerConfig, epochs: int) -> list[str]:
    """The ``--set`` values that fit the cosine to ``epochs`` (none when it already is): T_max the
    epochs after the warm-up (at least 1), stepped every step (epoch stepping cannot anneal: its
    last epoch trains at t = T_max - 1)."""
    t_max = max(epochs - s.warmup_epochs, 1)
    if s.interval == "step":
        return [] if s.T_max == t_max else [f"models.scheduler.T_max={t_max}"]
    return [f"models.scheduler.T_max={t_max}", "models.scheduler.interval=step"]


def _epochs(n: int) -> str:
    return f"{n} epoch{'' if n == 1 else 's'}"
