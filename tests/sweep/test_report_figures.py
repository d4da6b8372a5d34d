"""The report's figures, drawn from Reports of real sweeps (run in-process with the
``tests.sweep.curves`` objectives): which figures each kind of sweep gets, and that each is a
readable PNG with something on it (the best trial's red marker included), not a blank canvas.
A 300-trial report (the real analysis over a summary grown from a real sweep's rows) is drawn
without leaving a figure open."""

from __future__ import annotations

import json
import math
import random
import re
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


# --- the efficiency figure and the simulated benchmark's reference ---------------------------


@pytest.fixture(scope="module")
def grid_lr(sweeps: Sweeps) -> Sweep:
    return sweeps("g", "--objective", CURVES + "peak", "--strategy", "grid", "--range", "1e-5,1e-2", "--points", "4",
                  "--epochs", "1")


def test_the_benchmark_reference_loads_as_measured() -> None:
    from ocrtune.sweep.report.benchmark import HIERARCHICAL, SweepBenchmark, load_reference

    ref = load_reference()
    assert isinstance(ref, SweepBenchmark)
    assert [s.name for s in ref.strategies] == [HIERARCHICAL, "log grid", "random", "TPE"]
    assert ref.counts == [5, 10, 15, 20, 25] and ref.noise == 0.01
    assert (ref.low, ref.high, ref.decades) == (1e-5, 1e-2, pytest.approx(3.0)) and ref.repeats >= 100
    assert ref.optuna and re.fullmatch(r"\d{4}-\d\d-\d\d", ref.date) and "--write-reference" in ref.command
    for s in ref.strategies:
        assert [q.evaluations for q in s.points] == ref.counts
        for q in s.points:
            assert 0 < q.median <= q.p90 and 0 <= q.within_0_1 <= 1
    # stage 1 of the hierarchical search is the 5-point log grid, so at 5 they pick alike
    assert ref.strategy(HIERARCHICAL).at(5).median == pytest.approx(ref.strategy("log grid").at(5).median, abs=0.02)
    assert SweepBenchmark.from_json(json.loads(json.dumps(ref.to_json()))) == ref
    broken = ref.to_json()
    del broken["strategies"][0]["points"][0]["p90"]
    with pytest.raises(ValueError, match="malformed sweep benchmark reference"):
        SweepBenchmark.from_json(broken)


def test_the_benchmark_reference_is_package_data(tmp_path: Path) -> None:
    """The wheel built from the checkout's pyproject.toml carries the reference file."""
    import importlib.util
    import shutil
    import subprocess
    import sys
    import zipfile

    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("needs setuptools to build")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("ocrtune", "presets"):
        shutil.copytree(REPO / name, src / name, ignore=skip)
    build = "import sys; from setuptools import build_meta as b; print(b.build_wheel(sys.argv[1]))"
    subprocess.run([sys.executable, "-c", build, str(tmp_path / "dist")], cwd=src, check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    member = "ocrtune/sweep/report/sweep_benchmark.json"
    with zipfile.ZipFile(wheel) as z:
        assert member in z.namelist()
        assert z.read(member) == (REPO / member).read_bytes()


def _reference(medians: dict[str, list[float]]):  # type: ignore[no-untyped-def]
    from ocrtune.sweep.report.benchmark import RefPoint, RefStrategy, SweepBenchmark

    return SweepBenchmark(0.01, 1e-5, 1e-2, (-4.5, -2.5), 10, "5.0.0", "2026-01-01", "bench", tuple(
        RefStrategy(name, name, tuple(RefPoint(n, m, 2 * m, 0.5) for n, m in zip((5, 10, 15, 20, 25), ms)))
        for name, ms in medians.items()))


@pytest.mark.slow
def test_the_benchmark_is_read_at_the_sweeps_count(hierarchical: Sweep) -> None:
    from ocrtune.sweep.report.benchmark import compare

    ref = _reference({"hierarchical": [0.2, 0.05, 0.03, 0.02, 0.01], "log grid": [0.2, 0.1, 0.05, 0.03, 0.02],
                      "TPE": [0.3, 0.2, 0.1, 0.08, 0.06]})
    p = hierarchical.report.progress
    assert p is not None and p.log and p.evaluations == 15  # 3 stages of 5

    def at(n: int, log: bool = True):  # type: ignore[no-untyped-def]
        return compare(replace(hierarchical.report, progress=replace(p, evaluations=n, log=log)), ref)

    c = at(15)
    assert c.applies and c.at == 15 and c.hierarchical.median == 0.03
    assert [(m.strategy, m.evaluations) for m in c.matches] == [("log grid", 20), ("TPE", None)]
    assert c.match_text() == "log grid 20, TPE >25"
    text = c.text(LR)
    assert "simulated figures, not this sweep's" in text and "after 15 evaluations (this sweep's count)" in text
    assert "median 0.030 decades" in text and "log grid 20, TPE >25" in text
    assert at(13).at == 10 and "nearest below this sweep's 13" in at(13).text(LR)  # never rounded up
    assert at(13).matches[0].evaluations == 15
    assert at(40).at == 25 and "the benchmark's last count; this sweep ran 40" in at(40).text(LR)
    assert at(4).reason is not None and "fewer than the benchmark's first count (5)" in at(4).text(LR)
    assert not at(15, log=False).applies and "linear scale" in at(15, log=False).text(LR)
    narrow = compare(replace(hierarchical.report, progress=replace(p, range_width=1.0)), ref)
    assert "spans 1 decades, the benchmark's 3" in narrow.text(LR)


@pytest.mark.slow
def test_a_hierarchical_lr_sweep_gets_the_simulated_benchmark_beside_the_grid(hierarchical: Sweep,
                                                                               tmp_path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ocrtune.sweep.report import figures
    from ocrtune.sweep.report.benchmark import load_reference
    from ocrtune.sweep.report.write import blocks, to_markdown

    report, ref = hierarchical.report, load_reference()
    drawn = draw_figures(report, hierarchical.curves, tmp_path)
    img = check_png(drawn["efficiency"], best=False)
    assert img.shape[1] > 1.4 * figures.SIZE[0] * figures.DPI  # two panels: wider than one
    fig = Figure(figsize=figures.SIZE, dpi=figures.DPI, layout="constrained")
    FigureCanvasAgg(fig)
    assert figures._efficiency(fig, report)
    bars, bench = fig.axes
    assert [t.get_text() for t in bars.texts] == [str(report.progress.evaluations),  # type: ignore[union-attr]
                                                  str(report.progress.grid_equivalent)]  # type: ignore[union-attr]
    assert bench.get_title().startswith("SIMULATED benchmark, not this sweep (docs/sweep-benchmark.md)")
    assert f"noise sd {ref.noise:g}" in bench.get_title() and bench.get_xlabel() == "evaluations (trials)"
    assert "decades" in bench.get_ylabel()
    lines = {ln.get_label().split(" (")[0]: ln for ln in bench.get_lines() if not ln.get_label().startswith("_")}
    assert set(lines) == {"hierarchical", "log grid", "random", "TPE", "this sweep's count: 15 evaluations"}
    for s in ref.strategies:  # the reference's medians, as measured
        assert list(lines[s.name].get_ydata()) == [q.median for q in s.points]
    assert list(lines["this sweep's count: 15 evaluations"].get_xdata()) == [15, 15]
    box = next(t.get_text() for t in bench.texts if t.get_text().startswith("evaluations needed"))
    assert "as hierarchical at 15" in box and "TPE: " in box
    md = to_markdown(blocks(report))
    progress = md[md.index("## Coarse-to-fine progress"):]
    h = ref.strategy("hierarchical").at(15)
    assert h is not None and f"picks a median {h.median:.3f} decades from the optimum" in progress
    assert "simulated figures, not this sweep's" in progress.split("## Recommendations")[0]


@pytest.mark.slow
def test_where_the_benchmark_does_not_apply_the_figure_is_the_grid_comparison_alone(hierarchical: Sweep,
                                                                                    grid_lr: Sweep,
                                                                                    tmp_path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ocrtune.sweep.report import figures
    from ocrtune.sweep.report.benchmark import compare
    from ocrtune.sweep.report.write import blocks, to_markdown

    # a grid sweep has no coarse-to-fine figures at all, and says nothing about the benchmark
    assert grid_lr.report.progress is None and compare(grid_lr.report) is None
    assert set(draw_figures(grid_lr.report, grid_lr.curves, tmp_path / "grid")) == {"score_vs_lr"}
    assert "benchmark" not in to_markdown(blocks(grid_lr.report))
    # a hierarchical sweep on a linear scale: today's one-panel figure, and the report says why
    p = hierarchical.report.progress
    assert p is not None
    linear = replace(hierarchical.report, progress=replace(p, log=False))
    img = check_png(draw_figures(linear, {}, tmp_path / "linear")["efficiency"], best=False)
    assert img.shape[1] == figures.SIZE[0] * figures.DPI
    fig = Figure(figsize=figures.SIZE, dpi=figures.DPI, layout="constrained")
    FigureCanvasAgg(fig)
    assert figures._efficiency(fig, linear) and len(fig.axes) == 1
    assert fig.axes[0].get_title().startswith("Sweep 'h' (hierarchical): evaluations vs a uniform grid")
    md = to_markdown(blocks(linear))
    assert ("Simulated benchmark (docs/sweep-benchmark.md): not shown for this sweep: it simulates a log-scale "
            f"parameter (the learning rate), and this sweep searched {LR} on a linear scale.") in md


# --- labels and markers clear of each other ---------------------------------------------------


def _drawn(draw, report: Report):  # type: ignore[no-untyped-def]
    """A figure drawn by ``draw`` and laid out, with its renderer."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ocrtune.sweep.report import figures

    fig = Figure(figsize=figures.SIZE, dpi=figures.DPI, layout="constrained")
    canvas = FigureCanvasAgg(fig)
    assert draw(fig, report)
    canvas.draw()
    return fig, canvas.get_renderer()


def _star(ax):  # type: ignore[no-untyped-def]
    """Display centre and half-size (px) of the best's star."""
    (star,) = [ln for ln in ax.get_lines() if ln.get_marker() == "*"]
    (x,), (y,) = star.get_xdata(), star.get_ydata()
    cx, cy = ax.transData.transform((x, y))
    return cx, cy, star.get_markersize() / 2 * ax.figure.dpi / 72, (x, y)


def _with_replicate_best(r: Report) -> Report:
    """``r`` as if its best value had been re-run twice and one re-run became the pick."""
    assert r.best is not None and r.progress is not None
    stage = len(r.progress.stages) + 1
    reps = [replace(r.best, trial=900 + i, score=r.best.score + d, stage=stage, kind="replicate", smoothed=None)
            for i, d in enumerate((0.002, -0.003))]
    return replace(r, ranking=[*r.ranking, *reps], best=reps[0])


def _with_a_fine_stage(r: Report) -> Report:
    """``r`` with one more stage, refining 0.05 decade on each side of the best value (as stage 4
    or 5 does), which found the best."""
    from ocrtune.sweep.report.model import StageRow

    assert r.best is not None and r.progress is not None
    v, k, n = float(r.best.params[LR]), 10**0.05, len(r.progress.stages) + 1
    values = [v / k ** (2 / 3), v / k ** (1 / 3), v * k**0.25, v * k**0.5, v * k**0.75]
    stage = StageRow(n, [(v / k, v, 2), (v, v * k, 3)], values, r.best.score, 0.0, "refined")
    rows = [replace(r.best, trial=800 + i, params={LR: x}, score=r.best.score - 0.001 * (i + 1), stage=n)
            for i, x in enumerate(values)]
    best = replace(r.best, stage=n, trial=799)
    return replace(r, progress=replace(r.progress, stages=[*r.progress.stages, stage]),
                   ranking=[*r.ranking, best, *rows], best=best)


@pytest.mark.slow
def test_search_path_stage_labels_keep_clear_of_the_picks_star(hierarchical: Sweep) -> None:
    from ocrtune.sweep.report import figures

    fine = _with_a_fine_stage(hierarchical.report)
    for report in (hierarchical.report, fine, _with_replicate_best(hierarchical.report)):
        fig, renderer = _drawn(figures._search_path, report)
        ax = fig.axes[0]
        cx, cy, half, (_, y) = _star(ax)
        # on the best's stage; a replicate pick: on the stage that explored its value
        assert y == (fine.best.stage if report is fine else hierarchical.report.best.stage)  # type: ignore[union-attr]
        labels = [t for t in ax.texts if t.get_text().startswith("+")]
        assert len(labels) == sum(max(1, len(s.intervals)) for s in report.progress.stages)  # type: ignore[union-attr]
        for t in labels:
            box = t.get_window_extent(renderer)
            apart_x = box.x1 < cx - half or box.x0 > cx + half
            apart_y = box.y1 < cy - half or box.y0 > cy + half
            assert apart_x or apart_y, (t.get_text(), box, (cx, cy))
            # and off the pick's vertical line in the star's row
            if box.y0 < cy < box.y1:
                assert apart_x


@pytest.mark.slow
def test_parallel_coordinates_last_axis_labels_lie_right_of_it(two_keys: Sweep) -> None:
    from ocrtune.sweep.report import figures

    fig, renderer = _drawn(figures._parallel_coordinates, two_keys.report)
    ax = fig.axes[0]
    axis_x = ax.transData.transform((1.0, 0.0))[0]  # the last of the two axes
    (stars,) = [ln for ln in ax.get_lines() if ln.get_marker() == "*"]  # the best's, one on each axis
    half = stars.get_markersize() / 2 * fig.dpi / 72
    right = [t for t in ax.texts if t.get_position()[0] > 0.5]
    left = [t for t in ax.texts if t.get_position()[0] < 0.5]
    assert right and left
    for t in right:  # beyond the axis line and the best's star on it
        assert t.get_window_extent(renderer).x0 > axis_x + half, t.get_text()
    for t in left:
        assert t.get_window_extent(renderer).x1 < ax.transData.transform((0.0, 0.0))[0], t.get_text()


@pytest.mark.slow
def test_replicate_runs_are_drawn_over_the_best_star(hierarchical: Sweep, tmp_path: Path) -> None:
    from ocrtune.sweep.report import figures

    report = _with_replicate_best(hierarchical.report)
    fig, _ = _drawn(lambda f, r: figures._score_vs(f, r, LR), report)
    ax = fig.axes[0]
    (star,) = [ln for ln in ax.get_lines() if ln.get_marker() == "*"]
    (reps,) = [c for c in ax.collections if c.get_label().startswith("replicate runs")]
    assert reps.get_zorder() > star.get_zorder()
    assert reps.get_facecolor().size == 0 or (reps.get_facecolor()[:, 3] == 0).all()  # hollow: the star shows through
    assert sorted(map(tuple, reps.get_offsets())) == sorted((r.params[LR], r.score) for r in report.ranking
                                                            if r.kind == "replicate")
    check_png(draw_figures(report, hierarchical.curves, tmp_path)["score_vs_lr"])
