"""``tune_postprocess``: the one entry point the CLI calls (checks, cache, search, preset, summary)."""

from __future__ import annotations

import shlex
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ocrtune.errors import InputError
from ocrtune.metrics.iou_misses import IoUMisses
from ocrtune.procs import available_cores
from ocrtune.sweep.plan.space import Space
from ocrtune.train.rundir import RunDir, write_json_atomic
from ocrtune.tune.search import OBJECTIVE_METRIC, OBJECTIVES, STRATEGIES, Objective, Scored, SearchResult, search
from ocrtune.tune.settings import PostSettings, full_key
from ocrtune.tune.stages import Floors

Progress = Callable[[int, int], None]
_METHODS = {"grid": "grid", "random": "random", "tpe": "tpe", "bayes": "tpe"}


@dataclass
class TuneOptions:
    split: str = "val"
    data: Path | None = None
    overrides: Sequence[str] = ()
    strategy: str | None = None  # None: the space file's method, else grid
    trials: int | None = None  # None: every grid point; 100 for random/tpe
    points: int = 5  # grid values per range
    space: Path | None = None
    seed: int = 0
    objective: Objective = "cleval"  # what ranks the settings: the CLEval or the IoU@0.5 H-mean
    jobs: int | None = None  # None: every core this process may use
    batch_size: int | None = None  # None: the preset's, as evaluate
    num_workers: int = 0
    name: str | None = None  # the preset to write; None: <preset>-post
    out_dir: Path = Path("presets")
    presets_dirs: Sequence[Path] = ()
    force: bool = False
    write: bool = True
    rebuild: bool = False
    runs_dir: Path = Path("runs")
    command: str = ""  # how the user ran it, for the preset's header


@dataclass
class TuneResult:
    checkpoint: str
    run: str | None
    split: str
    images: int
    cache: str
    cache_reused: bool
    cache_seconds: float
    jobs: int
    space: list[str]
    search: SearchResult
    preset: dict[str, Any] | None = None  # {"path", "extends", "values"}
    preset_note: str = ""
    summary_path: str | None = None
    data_problems: list[str] = field(default_factory=list)
    data: str | None = None  # --data as given
    overrides: list[str] = field(default_factory=list)  # --set as given
    # The IoU misses by kind of the checkpoint's own settings ("current") and, when it differs,
    # of the best ("best"): what the picked setting trades, as evaluate would show it.
    misses: dict[str, IoUMisses] = field(default_factory=dict)

    @property
    def best(self) -> Scored:
        return self.search.best

    @property
    def improved(self) -> bool:
        return self.best is not self.search.current

    def evaluate_command(self) -> str:
        """The fresh ``evaluate`` that gives the best score (the cached search equals it)."""
        best, cur = self.best.settings, self.search.current.settings
        changed = [n for n in best.values() if best.values()[n] != cur.values()[n]]
        sets = [*self.overrides, *best.overrides(changed)]
        args = ["ocrtune", "evaluate", self._ref(), "--split", self.split]
        args += ["--data", self.data] if self.data else []
        for item in sets:
            args += ["--set", item]
        return " ".join(shlex.quote(a) for a in args)

    def _ref(self) -> str:
        """The run where naming it loads the checkpoint tuned, else the checkpoint itself (a
        run's last.ckpt beside its best.ckpt)."""
        if self.run is None:
            return self.checkpoint
        tuned = Path(self.checkpoint).resolve()
        return self.run if RunDir(Path(self.run)).default_ckpt.resolve() == tuned else self.checkpoint

    def as_dict(self, top: int = 10) -> dict[str, Any]:
        s = self.search
        return {
            "checkpoint": self.checkpoint, "run": self.run, "split": self.split, "images": self.images,
            "cache": {"path": self.cache, "reused": self.cache_reused, "seconds": round(self.cache_seconds, 3)},
            "strategy": s.strategy, "objective": s.objective, "space": self.space, "jobs": self.jobs,
            "trials": len(s.tried), "distinct_settings": s.distinct, "search_seconds": round(s.seconds, 3),
            "notes": s.notes,
            "current": s.current.as_dict(), "best": self.best.as_dict(),
            "improved": self.improved,
            "difference_pp": {m: round(100 * (getattr(self.best, m) - getattr(s.current, m)), 6)
                              for m in ("hmean", "precision", "recall", "iou_hmean")},
            "top": [t.as_dict() for t in s.ranked[:top]],
            "preset": self.preset, "preset_note": self.preset_note,
            "evaluate_command": self.evaluate_command(),
            "misses": {k: asdict(m) for k, m in self.misses.items()},
            "data_problems": self.data_problems,
            "saved": self.summary_path,
        }


def tune_postprocess(ref: str, opts: TuneOptions, maps_progress: Progress | None = None,
                     search_progress: Progress | None = None, log: Callable[[str], None] | None = None) -> TuneResult:
    """Cache the split's maps (or reuse them), search the space, write the best preset and a
    summary. Bad input fails before the network runs."""
    from ocrtune.train.infer import load_checkpoint
    from ocrtune.tune.pool import Scorer
    from ocrtune.tune.preset import check_free, default_name
    from ocrtune.tune.space import default_space, load_space

    say = log or (lambda line: None)
    loaded = load_checkpoint(ref, opts.overrides, opts.runs_dir)
    preset = loaded.preset
    current = PostSettings.of(preset.models.head.postprocess)
    space = load_space(opts.space, preset) if opts.space is not None else default_space(current, preset)
    strategy = _strategy(opts.strategy, space)
    if opts.objective not in OBJECTIVES:
        raise InputError(f"must be one of {', '.join(OBJECTIVES)} (got {opts.objective!r})", key="--objective")
    if opts.trials is not None and opts.trials < 1:
        raise InputError(f"must be >= 1 (got {opts.trials})", key="--trials")
    if opts.points < 2:
        raise InputError(f"must be >= 2 (got {opts.points})", key="--points")
    run_path = loaded.run.path if loaded.run is not None else None
    target = None
    if opts.write:
        name = opts.name or default_name(run_path, loaded.checkpoint, opts.runs_dir, opts.presets_dirs)
        target = check_free(name, opts.out_dir, opts.presets_dirs, opts.force)
    cache, where, reused, cache_seconds = _maps(loaded, opts, run_path, maps_progress, say)
    checkpoint = loaded.checkpoint
    del loaded  # the network is not needed any more

    jobs = opts.jobs or available_cores()
    with Scorer(cache, _floors(space, current), jobs) as scorer:
        found = search(scorer.counts, current, space, strategy, opts.trials, opts.points, opts.seed, search_progress,
                       opts.objective)
        picked = {"current": found.current} | ({"best": found.best} if found.best is not found.current else {})
        misses = dict(zip(picked, scorer.misses([sc.settings for sc in picked.values()])))
    result = TuneResult(
        checkpoint=str(checkpoint), run=str(run_path) if run_path is not None else None, split=opts.split,
        images=len(cache), cache=str(where), cache_reused=reused, cache_seconds=cache_seconds, jobs=scorer.jobs,
        space=list(space.keys), search=found, data_problems=cache.data_problems,
        data=str(opts.data) if opts.data is not None else None, overrides=list(opts.overrides), misses=misses,
    )
    found.notes += _edges(space, result.best) if result.improved else []
    if target is not None and result.improved:
        _write_best(result, target, preset, run_path, strategy, opts, ref)
    elif target is not None:
        result.preset_note = "the checkpoint's own settings scored best: no preset written"
    result.summary_path = _save_summary(result, loaded_checkpoint=Path(result.checkpoint), run_path=run_path)
    return result


def _maps(loaded: Any, opts: TuneOptions, run_path: Path | None, progress: Progress | None,
          say: Callable[[str], None]) -> tuple[Any, Path, bool, float]:
    """The split's maps: the fresh cache, else one network pass. (cache, folder, reused, seconds)."""
    from ocrtune.train.fit import resolve_data_root
    from ocrtune.tune import cache as maps_cache

    root = resolve_data_root(loaded.preset, opts.data)
    batch = opts.batch_size or loaded.preset.dataloader.batch_size
    device = next(loaded.module.parameters()).device.type
    inputs = maps_cache.inputs_of(loaded, root, opts.split, batch, device)
    where = maps_cache.cache_dir(loaded.checkpoint, run_path, opts.split)
    start = time.perf_counter()
    cache = None if opts.rebuild else maps_cache.open_if_fresh(where, loaded.checkpoint, inputs)
    if cache is not None:
        say(f"reusing the cached {opts.split} maps ({where})")
        return cache, where, True, time.perf_counter() - start
    say(f"computing the {opts.split} probability maps once (cache: {where})")
    cache = maps_cache.build(loaded, root, opts.split, where, inputs, opts.num_workers, progress)
    return cache, where, False, time.perf_counter() - start


def _write_best(result: TuneResult, target: Path, preset: Any, run_path: Path | None, strategy: str,
                opts: TuneOptions, ref: str) -> None:
    from ocrtune.tune.preset import today, write_preset

    best, cur, s = result.best, result.search.current, result.search
    header = [
        f"Created {today()} by `{opts.command or 'ocrtune tune-postprocess ' + ref}`.",
        f"Postprocess tuned for the {OBJECTIVE_METRIC[s.objective]} on {result.split} ({result.images} images, "
        f"{strategy}, {len(s.tried)} settings) of {result.checkpoint}: CLEval H / P / R {_pct(best)} with these settings, "
        f"{_pct(cur)} with its own ({100 * (best.hmean - cur.hmean):+.2f} pp H-mean); IoU@0.5 H-mean "
        f"{100 * best.iou_hmean:.2f}, {100 * cur.iou_hmean:.2f} with its own "
        f"({100 * (best.iou_hmean - cur.iou_hmean):+.2f} pp).",
        "Evaluate with them: " + result.evaluate_command(),
    ]
    w = write_preset(target, preset, run_path, best.settings.values(), cur.settings.values(), header,
                     opts.runs_dir, opts.presets_dirs, opts.force)
    result.preset = {"path": str(w.path), "extends": w.extends,
                     "values": [{"key": k, "value": v, "note": n} for k, v, n in w.values]}


def _edges(space: Space, best: Scored) -> list[str]:
    """A best value at the end of its searched range: the optimum may lie beyond it."""
    notes = []
    values = best.settings.values()
    for d in space.dims:
        name = d.key.rsplit(".", 1)[-1]
        if d.kind == "fixed" or name not in values or isinstance(values[name], bool):
            continue
        options = [v for v in d.values if isinstance(v, (int, float))] if d.kind == "choice" else [d.low, d.high]
        if len(options) < 2:
            continue
        lo, hi, v = min(options), max(options), values[name]
        if v in (lo, hi):
            side = "lowest" if v == lo else "highest"
            notes.append(f"{name} {v:g} is the {side} value searched: the best may lie beyond it (widen --space)")
    return notes


def _strategy(given: str | None, space: Space) -> str:
    if given is not None:
        if given not in STRATEGIES:
            raise InputError(f"must be one of {', '.join(STRATEGIES)} (got {given!r})", key="--strategy")
        return given
    if space.method is None:
        return "grid"
    if space.method not in _METHODS:
        raise InputError(f"method {space.method!r} is not a postprocess search; use grid, random or tpe "
                         "(or pass --strategy)", file=space.file, key="method")
    return _METHODS[space.method]


def _floors(space: Space, current: PostSettings) -> Floors:
    """The lowest min_size and box_thresh of the space and the current settings."""
    out = {}
    for name in ("min_size", "box_thresh"):
        low = getattr(current, name)
        key = full_key(name)
        if key in space.keys:
            d = space[key]
            low = min(low, *(float(v) for v in d.values)) if d.kind in ("fixed", "choice") else min(low, float(d.low))
        out[name] = float(low)
    return Floors(**out)


def _pct(s: Scored) -> str:
    return f"{100 * s.hmean:.2f} / {100 * s.precision:.2f} / {100 * s.recall:.2f}"


def _save_summary(result: TuneResult, loaded_checkpoint: Path, run_path: Path | None) -> str | None:
    """``tune-postprocess-<split>.json`` in the run for its best.ckpt (``-last-<split>`` for
    last.ckpt, ``-<split>-iou`` for an ``--objective iou`` search, so none replaces another), or
    beside the checkpoint; best effort."""
    tail = result.split + ("-iou" if result.search.objective == "iou" else "")
    if run_path is not None:
        stem = "" if loaded_checkpoint.stem == "best" else f"{loaded_checkpoint.stem}-"
        path = run_path / f"tune-postprocess-{stem}{tail}.json"
    else:
        path = loaded_checkpoint.with_name(f"{loaded_checkpoint.stem}.tune-postprocess-{tail}.json")
    result.summary_path = str(path)
    try:
        write_json_atomic(path, result.as_dict())
    except OSError:
        result.summary_path = None
    return result.summary_path


__all__ = ["TuneOptions", "TuneResult", "tune_postprocess"]
