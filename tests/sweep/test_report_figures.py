"""The report's figures, drawn from Reports of real sweeps (run in-process with the
``tests.sweep.curves`` objectives): which figures each kind of sweep gets, and that each is a
readable PNG with something on it (the best trial's red marker included), not a blank canvas.
A 300-trial report (the real analysis over a summary grown from a real sweep's rows) is drawn
without leaving a figure open."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np
import pytest
from matplotlib import image as mpimg

from ocrtune.sweep.report.analysis import ReportInput, build_report
from ocrtune.sweep.report.figures import draw_figures
from ocrtune.sweep.report.model import Baseline, Importance, Report
from ocrtune.sweep.store import Store
from ocrtune.sweep.summary import summarize
from ocrtune.sweep.types import Status, SweepConfig, SweepSummary

REPO = Path(__file__).resolve().parents[2]
CURVES = "tests.sweep.curves:"
LR, THRESH, OPT = "models.optimizer.lr", "models.head.postprocess.thresh", "models.optimizer.name"
BEST_RGB = (214 / 255, 39 / 255, 40 / 255)  # figures.BEST, the best trial's colour
HIERARCHICAL = {"convergence_heatmap", "search_path", "efficiency"}

BASELINE = Baseline(label="cpu-demo", kind="preset", values={LR: 1e-3, THRESH: 0.3, OPT: "adam"}, score=0.5,
                    score_source="test")


class Sweep(NamedTuple):
    report: Report
    curves: dict[int, list[tuple[int, float]]]
    cfg: SweepConfig
    summary: SweepSummary


class Sweeps:
    """Runs ``ocrtune sweep`` in this process, each named sweep once, into one runs folder."""

    def __init__(self, root: Path) -> None:
        self.runs = root / "runs"
        self.space = root / "space.yaml"
        self.space.write_text(f"{LR}: {{distribution: log_uniform, min: 1.0e-5, max: 1.0e-2}}\n"
                              f"{THRESH}: {{distribution: uniform, min: 0.1, max: 0.6}}\n")
        self.cat_space = root / "space-cat.yaml"
        self.cat_space.write_text(self.space.read_text() + f"{OPT}: {{values: [adam, adamw]}}\n")
        self._done: dict[str, Sweep] = {}

    def __call__(self, name: str, *args: str) -> Sweep:
        from typer.testing import CliRunner

        from ocrtune.cli.app import app

        if name not in self._done:
            r = CliRunner().invoke(app, ["sweep", "--runs-dir", str(self.runs), "--name", name, "--no-report", *args])
            if r.exception is not None and not isinstance(r.exception, SystemExit):
                raise r.exception
            assert r.exit_code == 0, r.stderr
            self._done[name] = report_of(name, self.runs)
        return self._done[name]


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sweeps]:
    """Sweeps run from the repository root: the trial processes import the objectives from there."""
    root = tmp_path_factory.mktemp("figure-sweeps")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)
        mp.setenv("OCRTUNE_SWEEP_POLL_S", "0.05")
        mp.setenv("OCRTUNE_CACHE", str(root / "cache"))
        mp.delenv("OCRTUNE_PRESETS", raising=False)
        yield Sweeps(root)


def report_of(name: str, runs: Path) -> Sweep:
    store = Store.open(name, None, runs_dir=runs)
    try:
        cfg = store.config()
        assert cfg is not None
        summary = summarize(store, cfg, observe=True)
        curves = {t.number: sorted((int(k), float(v)) for k, v in t.intermediate_values.items())
                  for t in store.study.trials if t.intermediate_values}
    finally:
        store.close()
    report = build_report(ReportInput(cfg, summary, BASELINE, Importance(None, "test"), curves, max_epochs=16))
    return Sweep(report, curves, cfg, summary)


@pytest.fixture(scope="module")
def hierarchical(sweeps: Sweeps) -> Sweep:
    return sweeps("h", "--objective", CURVES + "peak", "--range", "1e-5,1e-2", "--stages", "3", "--epochs", "2")


@pytest.fixture(scope="module")
def two_keys(sweeps: Sweeps) -> Sweep:
    return sweeps("r", "--space", str(sweeps.space), "--strategy", "random", "--trials", "8", "--epochs", "2",
                  "--objective", CURVES + "two_keys")


def check_png(path: Path, best: bool = True) -> np.ndarray:
    """A PNG of a readable size with a picture on it; with ``best``, the best's red marker too."""
    assert path.is_file() and path.suffix == ".png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(path)
    h, w = img.shape[:2]
    assert 400 <= h <= 1500 and 600 <= w <= 2000, (path.name, img.shape)
    rgb = img[..., :3]
    colours = np.unique((rgb * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 50, (path.name, len(colours))  # antialiased text, lines, markers
    assert rgb.std() > 0.05, path.name
    assert (rgb > 0.9).all(axis=-1).mean() > 0.3, path.name  # mostly white: a plot, not a dark smear
    assert (rgb.max(axis=-1) < 0.5).sum() > 2000, path.name  # dark: title, labels, ticks
    coloured = (rgb.max(axis=-1) - rgb.min(axis=-1) > 0.25).sum()
    assert coloured > 300, (path.name, coloured)  # data in colour: empty axes have none
    if best:
        red = (np.abs(rgb - np.array(BEST_RGB)) < 0.04).all(axis=-1).sum()
        assert red > 30, (path.name, red)
    return img


def test_a_blank_or_empty_plot_fails_the_png_check(tmp_path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    for name, draw in (("blank", lambda fig: None), ("axes", lambda fig: fig.add_subplot())):
        fig = Figure(figsize=(8, 5), dpi=120)
        FigureCanvasAgg(fig)
        draw(fig)
        fig.savefig(tmp_path / f"{name}.png")
        with pytest.raises(AssertionError):
            check_png(tmp_path / f"{name}.png", best=False)


@pytest.mark.slow
def test_hierarchical_sweep_gets_the_coarse_to_fine_figures(hierarchical: Sweep, tmp_path: Path) -> None:
    report, curves = hierarchical.report, hierarchical.curves
    assert report.progress is not None and report.progress.grid_equivalent is not None
    out = tmp_path / "figures"
    drawn = draw_figures(report, curves, out)
    assert set(drawn) == {"convergence_heatmap", "search_path", "efficiency", "learning_curves", "score_vs_lr"}
    for name, path in drawn.items():
        assert path == out / f"{name}.png"
        check_png(path, best=name != "efficiency")
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.png" for n in drawn)  # nothing else written


@pytest.mark.slow
def test_two_key_random_sweep_gets_parallel_coordinates_and_no_hierarchical_figures(two_keys: Sweep,
                                                                                    tmp_path: Path) -> None:
    report, curves = two_keys.report, two_keys.curves
    assert report.progress is None and report.keys == [LR, THRESH]
    drawn = draw_figures(report, curves, tmp_path)
    assert set(drawn) == {"learning_curves", "score_vs_lr", "score_vs_thresh", "parallel_coordinates"}
    assert not HIERARCHICAL & set(drawn)
    for path in drawn.values():
        check_png(path)


@pytest.mark.slow
def test_a_categorical_key_is_drawn_by_category_and_one_epoch_has_no_learning_curves(sweeps: Sweeps,
                                                                                       tmp_path: Path) -> None:
    report, curves, _, _ = sweeps("c", "--space", str(sweeps.cat_space), "--strategy", "random", "--trials", "8",
                                  "--epochs", "1", "--objective", CURVES + "two_keys")
    assert {r.params[OPT] for r in report.ranking} <= {"adam", "adamw"} and curves
    drawn = draw_figures(report, curves, tmp_path)
    assert set(drawn) == {"score_vs_lr", "score_vs_thresh", "score_vs_name", "parallel_coordinates"}
    for path in drawn.values():
        check_png(path)


@pytest.mark.slow
def test_no_scores_no_curves_draws_only_what_applies(two_keys: Sweep, tmp_path: Path) -> None:
    report = two_keys.report
    empty = replace(report, ranking=[], best=None)
    assert draw_figures(empty, {}, tmp_path) == {}
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_loss_sweep_is_drawn_with_its_own_direction(two_keys: Sweep, tmp_path: Path) -> None:
    """The two-key sweep's rows read as a loss (lower is better), without a baseline score."""
    scored = [t for t in two_keys.summary.trials if t.score is not None]
    lowest = min(scored, key=lambda t: t.score)  # type: ignore[arg-type,return-value]
    assert two_keys.summary.best is not None
    summary = replace(two_keys.summary, metric="val_loss", direction="minimize",
                      best=replace(two_keys.summary.best, params=dict(lowest.params), score=lowest.score,
                                   trial=lowest.number))
    loss = build_report(ReportInput(replace(two_keys.cfg, metric="val_loss"), summary, replace(BASELINE, score=None),
                                    Importance(None, "test"), two_keys.curves))
    assert loss.direction == "minimize" and loss.best is not None and loss.best.trial == lowest.number
    drawn = draw_figures(loss, two_keys.curves, tmp_path)
    assert set(drawn) == {"learning_curves", "score_vs_lr", "score_vs_thresh", "parallel_coordinates"}
    for path in drawn.values():
        check_png(path)


@pytest.mark.slow
def test_300_trials_are_drawn_and_no_figure_is_left_open(two_keys: Sweep, tmp_path: Path) -> None:
    """A real sweep of 300 trials takes minutes on CPU: the real analysis runs over the two-key
    sweep's summary with its rows grown to 300 (scores from the ``two_keys`` formula, every
    37th diverged)."""
    import matplotlib.pyplot as plt

    summary = grown(two_keys.summary, 300)
    curves = {t.number: [(e, (t.score or 0.0) * (1 - 0.5 ** (e + 1))) for e in (1, 2, 3)] for t in summary.trials}
    big = build_report(ReportInput(two_keys.cfg, summary, BASELINE, Importance(None, "test"), curves, max_epochs=16))
    assert len(big.ranking) + len(big.unscored) == 300 and big.unscored
    plt.close("all")
    drawn = draw_figures(big, curves, tmp_path)
    assert set(drawn) == {"learning_curves", "score_vs_lr", "score_vs_thresh", "parallel_coordinates"}
    assert plt.get_fignums() == []
    for path in drawn.values():
        check_png(path)


def grown(summary: SweepSummary, n: int) -> SweepSummary:
    """``summary`` with ``n`` trial rows made from its first one, and the best among them."""
    rng = random.Random(0)
    template = summary.trials[0]
    rows = []
    for i in range(n):
        lr, thresh = 10 ** rng.uniform(-5, -2), rng.uniform(0.1, 0.6)
        score = 0.9 - 0.2 * (math.log10(lr) + 3) ** 2 - 0.5 * (thresh - 0.3) ** 2
        diverged = i % 37 == 5
        rows.append(replace(template, number=i, slot_index=i, params={LR: lr, THRESH: thresh},
                            score=None if diverged else score,
                            status=Status.DIVERGED if diverged else Status.COMPLETED,
                            state="fail" if diverged else "complete", error="loss is NaN" if diverged else None))
    best = max((r for r in rows if r.score is not None), key=lambda r: r.score)  # type: ignore[arg-type,return-value]
    assert summary.best is not None
    return replace(summary, trials=rows, best=replace(summary.best, params=dict(best.params), score=best.score,
                                                      trial=best.number))
