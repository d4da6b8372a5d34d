"""The simulated sweep benchmark's reference figures, and how a hierarchical sweep reads
against them.

``bench/bench_sweep.py --write-reference`` measures, on the bench's simulated noisy
learning-rate curves (docs/sweep-benchmark.md), how far each strategy's pick lands from the
optimum after 5..25 evaluations, and writes ``sweep_benchmark.json`` beside this module
(package data: an installed ocrtune reads it too). The report quotes it where it applies, a
hierarchical sweep over one log-scale parameter, as what the benchmark measured: never as
this sweep's own numbers. Pure apart from ``load_reference``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Mapping

from ocrtune.sweep.report.model import Report

REFERENCE_FILE = "sweep_benchmark.json"
HIERARCHICAL = "hierarchical"
DOC = "docs/sweep-benchmark.md"


@dataclass(frozen=True)
class RefPoint:
    """One strategy after ``evaluations`` evaluations: the distance of its pick from the true
    optimum, |log10(pick) - x_opt| in decades, over the benchmark's repeats."""

    evaluations: int
    median: float
    p90: float
    within_0_1: float  # share (0..1) of repeats whose pick is within 0.1 decade


@dataclass(frozen=True)
class RefStrategy:
    name: str  # "hierarchical", "log grid", "random", "TPE"
    how: str  # how it ran and how it picked
    points: tuple[RefPoint, ...]  # by evaluations, ascending

    def at(self, evaluations: int) -> RefPoint | None:
        return next((p for p in self.points if p.evaluations == evaluations), None)


@dataclass(frozen=True)
class SweepBenchmark:
    """The reference file, as written by the bench (``to_json``) and read back (``from_json``)."""

    noise: float  # sd of the Gaussian noise on every evaluation, H-mean units
    low: float  # the simulated learning-rate range
    high: float
    x_opt: tuple[float, float]  # the optimum's log10 is drawn uniformly from this
    repeats: int  # curves per strategy and count
    optuna: str | None  # the Optuna version TPE ran with
    date: str
    command: str
    strategies: tuple[RefStrategy, ...]

    @property
    def counts(self) -> list[int]:
        """Evaluation counts every strategy was measured at."""
        common = set.intersection(*(set(p.evaluations for p in s.points) for s in self.strategies))
        return sorted(common)

    @property
    def decades(self) -> float:
        return math.log10(self.high) - math.log10(self.low)

    def strategy(self, name: str) -> RefStrategy:
        for s in self.strategies:
            if s.name == name:
                return s
        raise KeyError(f"{name!r} is not in the sweep benchmark reference ({[s.name for s in self.strategies]})")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SweepBenchmark:
        """Checks the shape: a malformed file says what is wrong instead of drawing nonsense."""
        try:
            strategies = tuple(
                RefStrategy(str(s["name"]), str(s["how"]),
                            tuple(sorted((RefPoint(int(p["evaluations"]), float(p["median"]), float(p["p90"]),
                                                   float(p["within_0_1"])) for p in s["points"]),
                                         key=lambda p: p.evaluations)))
                for s in data["strategies"])
            ref = cls(float(data["noise"]), float(data["low"]), float(data["high"]),
                      (float(data["x_opt"][0]), float(data["x_opt"][1])), int(data["repeats"]),
                      None if data.get("optuna") is None else str(data["optuna"]), str(data["date"]),
                      str(data["command"]), strategies)
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise ValueError(f"malformed sweep benchmark reference ({type(e).__name__}: {e})") from None
        if not strategies or not all(s.points for s in strategies):
            raise ValueError("malformed sweep benchmark reference (a strategy without points)")
        ref.strategy(HIERARCHICAL)
        if not ref.counts:
            raise ValueError("malformed sweep benchmark reference (no evaluation count common to every strategy)")
        return ref


@lru_cache(maxsize=1)
def load_reference() -> SweepBenchmark:
    """The reference shipped with ocrtune (``sweep_benchmark.json`` in this package)."""
    text = resources.files(__package__).joinpath(REFERENCE_FILE).read_text(encoding="utf-8")
    return SweepBenchmark.from_json(json.loads(text))


@dataclass(frozen=True)
class Match:
    """The fewest evaluations at which ``strategy`` picks as close (median) as hierarchical
    search does at the sweep's count; None: not within the benchmark's counts."""

    strategy: str
    evaluations: int | None

    def shown(self, most: int) -> str:
        return str(self.evaluations) if self.evaluations is not None else f">{most}"


@dataclass(frozen=True)
class BenchmarkComparison:
    """The benchmark read at this sweep's evaluation count, or why it does not apply."""

    reference: SweepBenchmark
    evaluations: int  # this sweep's explore evaluations
    reason: str | None = None  # why the benchmark does not apply; None when it does
    at: int | None = None  # the benchmark count read: the largest one not above the sweep's
    hierarchical: RefPoint | None = None
    matches: tuple[Match, ...] = ()
    range_decades: float | None = None  # this sweep's range width in decades (log sweeps)

    @property
    def applies(self) -> bool:
        return self.reason is None

    @property
    def most(self) -> int:
        return self.reference.counts[-1]

    def match_text(self) -> str:
        """'log grid >25, random >25, TPE 20'."""
        return ", ".join(f"{m.strategy} {m.shown(self.most)}" for m in self.matches)

    def where(self) -> str:
        """Which count was read, and why when it is not the sweep's own."""
        if self.at == self.evaluations:
            return f"after {self.at} evaluations (this sweep's count)"
        if self.at is not None and self.evaluations > self.most:
            return f"after {self.at} evaluations (the benchmark's last count; this sweep ran {self.evaluations})"
        return f"after {self.at} evaluations (the benchmark's count nearest below this sweep's {self.evaluations})"

    def text(self, key: str) -> str:
        """The report's paragraph: what the benchmark says, labelled as simulated."""
        ref = self.reference
        if not self.applies:
            return f"Simulated benchmark ({DOC}): not shown for this sweep: {self.reason}."
        h = self.hierarchical
        assert h is not None
        out = (f"On the simulated benchmark ({DOC}: {ref.repeats} noisy learning-rate curves over "
               f"{ref.low:g}..{ref.high:g}, noise sd {ref.noise:g}; simulated figures, not this sweep's), "
               f"hierarchical search {self.where()} picks a median {h.median:.3f} decades from the optimum "
               f"(p90 {h.p90:.3f}, {100 * h.within_0_1:.0f}% within 0.1 decade). Evaluations the others need "
               f"to pick as close (median): {self.match_text()}.")
        d = self.range_decades
        if d is not None and abs(d - ref.decades) > 0.25:
            out += (f" This sweep's range of {key} spans {d:.3g} decades, the benchmark's {ref.decades:.3g}: "
                    "read its distances as a rough guide.")
        return out


def compare(report: Report, reference: SweepBenchmark | None = None) -> BenchmarkComparison | None:
    """The benchmark at this sweep's evaluation count; None for a sweep without coarse-to-fine
    progress (not hierarchical: no efficiency figure at all)."""
    p = report.progress
    if p is None:
        return None
    ref = reference if reference is not None else load_reference()
    n = p.evaluations
    base = BenchmarkComparison(ref, n)
    if len(report.keys) != 1:
        return _why(base, f"it simulates one parameter, this sweep searched {len(report.keys)}")
    if not p.log:
        return _why(base, f"it simulates a log-scale parameter (the learning rate), and this sweep searched "
                          f"{report.keys[0]} on a linear scale")
    counts = ref.counts
    if n < counts[0]:
        return _why(base, f"this sweep has {n} evaluation(s), fewer than the benchmark's first count ({counts[0]})")
    at = max(c for c in counts if c <= n)
    h = ref.strategy(HIERARCHICAL).at(at)
    assert h is not None
    matches = tuple(
        Match(s.name, next((q.evaluations for q in s.points if q.evaluations in counts and q.median <= h.median), None))
        for s in ref.strategies if s.name != HIERARCHICAL)
    return BenchmarkComparison(ref, n, None, at, h, matches, range_decades=p.range_width)


def _why(c: BenchmarkComparison, reason: str) -> BenchmarkComparison:
    return BenchmarkComparison(c.reference, c.evaluations, reason)
