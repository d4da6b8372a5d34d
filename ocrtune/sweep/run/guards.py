"""Guards on a running trial: store calls that may fail for a while (``Patient``) and the
time limits that stop a trial nobody else would stop (``Limits``). No Optuna, no torch."""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ocrtune.errors import OcrtuneError
from ocrtune.sweep.types import finite

if TYPE_CHECKING:
    from ocrtune.sweep.store import StoredTrial

STALL_FACTOR = 5.0  # no new epoch for this many median epoch times ...
STALL_FLOOR_S = 1800.0  # ... and at least this long: the trial hangs
FAILED: Any = object()  # what ``Patient.call`` returns when the store call failed


class StoreUnreachable(OcrtuneError):
    """The sweep store kept failing for ``grace_s``: the trial was stopped."""


class Patient:
    """Store calls made while a trial runs. A failing call (a database restarting, SQLite
    locked past its timeout) returns ``FAILED`` and the caller tries again on its next poll;
    only a store that has failed for ``grace_s`` in a row raises ``StoreUnreachable``, since by
    then other processes have declared the trial lost anyway."""

    def __init__(self, grace_s: float, poll_s: float) -> None:
        self.grace_s, self.poll_s = grace_s, poll_s
        self._since: float | None = None

    def call(self, fn: Callable[[], Any]) -> Any:
        try:
            out = fn()
        except OcrtuneError:
            raise  # not the store hiccuping: something the user must act on
        except Exception as e:
            now = time.monotonic()
            self._since = now if self._since is None else self._since
            if now - self._since >= self.grace_s:
                raise StoreUnreachable(f"the sweep store failed for {self.grace_s:g}s: {type(e).__name__}: "
                                       f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}") from e
            return FAILED
        self._since = None
        return out

    def until_ok(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` once it succeeds, retrying every poll (raises after ``grace_s``)."""
        while (out := self.call(fn)) is FAILED:
            time.sleep(max(self.poll_s, 0.05))
        return out


class Limits:
    """When a running trial is stopped as failed: past ``--trial-timeout``, or stalled (no
    new epoch for ``factor`` x the median epoch time of finished trials, at least
    ``floor_s``; no stall rule before a trial has finished). The heartbeat cannot tell: it
    comes from the worker, which is fine while the trial hangs."""

    def __init__(self, timeout_s: float | None, factor: float = STALL_FACTOR, floor_s: float = STALL_FLOOR_S) -> None:
        self.timeout_s, self.factor, self.floor_s = timeout_s, factor, floor_s
        self.stall_s: float | None = None

    def learn(self, finished: Sequence[StoredTrial]) -> None:
        times = [v for v in (_epoch_time(t) for t in finished) if v is not None]
        self.stall_s = max(self.factor * statistics.median(times), self.floor_s) if times else None

    def check(self, elapsed_s: float, quiet_s: float) -> tuple[str, str] | None:
        if self.timeout_s is not None and elapsed_s > self.timeout_s:
            return "timeout", f"timed out: still running after {elapsed_s:.0f}s (--trial-timeout {self.timeout_s:g})"
        if self.stall_s is not None and quiet_s > self.stall_s:
            return "stalled", (f"stalled: no progress for {quiet_s:.0f}s (limit {self.stall_s:.0f}s: {self.factor:g} x the "
                               f"median epoch time of finished trials, at least {self.floor_s:.0f}s)")
        return None


def _epoch_time(t: StoredTrial) -> float | None:
    if t.status not in ("completed", "pruned"):
        return None
    v = finite(t.attrs.get("time_per_epoch_s"))
    epochs = t.attrs.get("epochs")
    if v is None and t.duration_s and isinstance(epochs, int) and epochs > 0:
        v = t.duration_s / epochs
    return v if v and v > 0 else None
