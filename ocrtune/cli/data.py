"""``ocrtune data``: inspect, check and synthesise datasets (parsing and rendering only)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ocrtune.cli import data_cache
from ocrtune.cli._output import ProgressBar
from ocrtune.cli._output import console as _out
from ocrtune.cli._output import err_console as _err
from ocrtune.data.stats import SplitStats, scan_dataset, scan_split
from ocrtune.data.synth_options import (
    Granularity,
    SynthOptions,
    parse_effects,
    parse_granularity,
    parse_style,
    parse_workers,
)
from ocrtune.data.synthetic import synthesize

app = typer.Typer(help="Inspect, check and synthesise receipt datasets.", no_args_is_help=True)
app.command("cache")(data_cache.cache)

DirArg = Annotated[
    Path, typer.Argument(help="Dataset folder: images/<split>/ plus jsons/ or annotations/.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of tables.")]


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def _render_split(s: SplitStats, max_listed: int) -> None:
    d = s.to_dict(max_listed)
    # paths and problem lines are printed whole (never wrapped, never read as markup)
    _out.print(f"{s.split}: {s.image_dir}", markup=False, soft_wrap=True)
    table = Table(show_header=False)
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    wpi, side = d["words_per_image"], d["long_side"]
    rows = [
        ("images", d["images"]),
        ("annotated images", d["annotated_images"] if s.annotation else "no annotation file"),
        ("words", d["words"]),
        ("words/image min | mean | max", " | ".join(_fmt(wpi[k]) for k in ("min", "mean", "max"))),
        ("long side min | max (px)", f"{_fmt(side['min'])} | {_fmt(side['max'])}"),
        ("polygon vertices", ", ".join(f"{k}: {v}" for k, v in d["vertices"].items()) or "-"),
        ("problems" if s.decoded else "problems (image headers only)", d["problems"]["total"]),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    _out.print(table)
    if s.problems:
        kinds = Table(title="problems by kind", title_justify="left")
        kinds.add_column("kind")
        kinds.add_column("count", justify="right")
        for kind, count in d["problems"]["by_kind"].items():
            kinds.add_row(kind, str(count))
        _out.print(kinds)
        for p in s.problems[:max_listed]:
            _out.print(f"  {p}", markup=False, soft_wrap=True)
        if len(s.problems) > max_listed:
            more = len(s.problems) - max_listed
            _out.print(f"  ... and {more} more (ocrtune data check lists all)")
    if not s.decoded:
        _err.print("image headers only: `ocrtune data check` also decodes every image "
                   "(truncated or corrupt files)")


@app.command()
def stats(
    directory: DirArg,
    split: Annotated[str, typer.Option(help="Split to describe.")] = "train",
    as_json: JsonOpt = False,
    show: Annotated[int, typer.Option(help="How many problems to list.")] = 10,
) -> None:
    """Count images, words, sizes and vertex counts of one split, and summarise problems.

    Image headers only are read, so it stays fast; ``data check`` also decodes every image.
    """
    result = scan_split(directory, split)
    if as_json:
        typer.echo(json.dumps(result.to_dict(show), indent=2, ensure_ascii=False))
    else:
        _render_split(result, show)


@app.command()
def check(
    directory: DirArg,
    split: Annotated[
        list[str] | None, typer.Option(help="Split(s) to check (repeatable); default: all found.")
    ] = None,
) -> None:
    """List every data problem as a located line; exit 1 if there is any, 0 otherwise."""
    results = scan_dataset(directory, split, decode=True)
    total = 0
    for s in results:
        for p in s.problems:
            typer.echo(str(p))
        total += len(s.problems)
    summary = ", ".join(
        f"{s.split}: {s.n_images} images, {len(s.problems)} problems" for s in results
    )
    typer.echo(f"{'FAILED' if total else 'OK'} ({summary})", err=True)
    if total:
        raise typer.Exit(1)


@app.command()
def synth(
    out: Annotated[Path, typer.Argument(help="Folder to write images/ and jsons/ into.")],
    n: Annotated[int, typer.Option("--n", help="Number of receipts.", min=1)] = 32,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same files).", min=0)] = 0,
    size: Annotated[int, typer.Option(help="Image height in pixels.", min=64)] = 640,
    val_fraction: Annotated[float, typer.Option(help="Share of images in the val split.")] = 0.2,
    force: Annotated[
        bool, typer.Option(help="Replace a synthetic set this command wrote, if unchanged since (never other data).")
    ] = False,
    workers: Annotated[
        str, typer.Option(help="Processes rendering in parallel: N or 'all' cores (same files either way).")
    ] = "all",
    granularity: Annotated[
        str, typer.Option(help="Boxes per word (competition) or per line segment split at wide gaps (SROIE): word|line.")
    ] = "word",
    style: Annotated[
        str, typer.Option(help="plain (the original receipts) or real (columns, logos, barcodes; scans and photos).")
    ] = "plain",
    effects: Annotated[
        str | None,
        typer.Option(help="Comma-separated: fading,smudges,creases,marks,stamp,shadow,light, or all, or none "
                          "(default: all with --style real, none with plain).", show_default=False),
    ] = None,
    tight_segments: Annotated[
        bool, typer.Option(help="With --style real: also print what SROIE boxes apart at a single space "
                                "(tax codes after amounts, values after labels, compact number columns).")
    ] = False,
) -> None:
    """Render synthetic receipts with exact word polygons in the competition layout."""
    chosen = parse_style(style)
    options = SynthOptions(parse_granularity(granularity), chosen, parse_effects(effects, chosen), tight_segments)
    n_workers = parse_workers(workers)
    done = itertools.count(1)
    with ProgressBar("rendering receipts") as bar:
        result = synthesize(
            out, n, seed, size, val_fraction, overwrite=force, options=options, workers=n_workers,
            on_image=lambda _i: bar(next(done), n),
        )
    typer.echo(
        f"wrote {result.n_train} train + {result.n_val} val images "
        f"({result.n_words} {'line segments' if options.granularity is Granularity.LINE else 'words'}) to {result.root}"
    )
    typer.echo(
        f"{result.images_per_s:.1f} images/s ({result.seconds:.1f} s, "
        f"{result.workers} process{'es' if result.workers > 1 else ''})"
    )
