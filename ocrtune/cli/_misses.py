"""The IoU misses by kind, as two lines under a score table (evaluate, evaluate-json --metric iou)."""

from __future__ import annotations

from typing import Any

from ocrtune.metrics.iou_misses import IoUMisses

_GT_KINDS = (
    ("gt_merged", "merged with a neighbour"),
    ("gt_not_found", "not found"),
    ("gt_misfit", "too loose, tight or shifted"),
    ("gt_split", "split"),
)
_DET_KINDS = (
    ("det_merged", "over several words"),
    ("det_duplicate", "a second box on a matched word"),
    ("det_background", "on no word"),
    ("det_fragment", "a piece of one word"),
    ("det_misfit", "too loose or shifted"),
)


def misses_lines(counts: dict[str, Any] | IoUMisses, label: str = "") -> list[str]:
    """``IoU misses: 384 of 3668 words, -10.47 pp of the global recall: 210 merged with a neighbour
    (5.73 pp), ...`` and the same for the unmatched detections against the global precision (counts
    pooled over the images); kinds by count, largest first. ``label`` names the setting, in
    brackets after each title, when several are shown."""
    m = counts if isinstance(counts, IoUMisses) else IoUMisses(**counts)
    tag = f" ({label})" if label else ""
    return [
        _line("IoU misses" + tag, "words", "recall", m.gt_total, m.gt_total - m.gt_matched,
              [(getattr(m, k), text) for k, text in _GT_KINDS]),
        _line("unmatched detections" + tag, "detections", "precision", m.det_total, m.det_total - m.det_matched,
              [(getattr(m, k), text) for k, text in _DET_KINDS]),
    ]


def _line(title: str, noun: str, score: str, total: int, missed: int, kinds: list[tuple[int, str]]) -> str:
    if not total:
        return f"{title}: no {noun}"
    head = f"{title}: {missed} of {total} {noun}, -{100 * missed / total:.2f} pp of the global {score}"
    parts = [f"{n} {text} ({100 * n / total:.2f} pp)" for n, text in sorted(kinds, key=lambda k: -k[0]) if n]
    return head + (": " + ", ".join(parts) if parts else "")
