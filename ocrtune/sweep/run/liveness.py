"""Who runs a trial, and whether that process still exists (no Optuna, no torch).

A trial's owner is identified by ``host_id()`` plus pid and process start time, so a resumed
coordinator can tell at once that a RUNNING trial's process is gone (pid reuse does not fool
it, and two containers with the same host name do not either). The store reaps by this rule
and ``sweep status`` shows trials lost by it. The process checks themselves live in
``ocrtune.procs``, shared with training runs.
"""

from __future__ import annotations

from typing import Any, Mapping

from ocrtune.procs import Owner, host_id, pid_alive, process_start

__all__ = ["host_id", "process_start", "pid_alive", "gone_here", "me"]


def gone_here(attrs: Mapping[str, Any]) -> bool:
    """A worker recorded (``me()``) on this host whose process no longer exists: the one rule
    by which the store reaps its trials and ``sweep status`` shows them lost."""
    owner = Owner.from_json(attrs)
    return owner is not None and owner.gone_here()


def me() -> dict[str, object]:
    """This process's identity as stored with the trials it runs."""
    return Owner.me().to_json()
