"""``ocrtune data cache``: show the decoded-image cache and remove stale, old or all of it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Optional

import typer
from rich.text import Text

from ocrtune.cli._options import JsonOption
from ocrtune.cli._output import console, print_json, table
from ocrtune.data import cache_admin
from ocrtune.data.cache_admin import CacheReport, Removal, Status
from ocrtune.errors import InputError, OcrtuneError


def cache(
    clear_stale: Annotated[
        bool, typer.Option("--clear-stale", help="Remove the stage folders older ocrtune/Pillow/OpenCV versions made.")
    ] = False,
    clear: Annotated[bool, typer.Option("--clear", help="Remove every cached image (they are decoded again when used).")] = False,
    max_size: Annotated[
        Optional[str],
        typer.Option("--max-size", metavar="SIZE",
                     help="Remove least recently used images until the cache holds at most SIZE (20G, 500MB, 1.5TiB).",
                     show_default=False),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Where decoded images are cached, per stage folder: current or stale, images, size, last use.

    Training never removes anything from the cache; a library upgrade or a new ocrtune starts new
    stage folders and leaves the old ones (stale). Removing is safe while training runs: a missing
    image is decoded again.
    """
    if clear_stale + clear + (max_size is not None) > 1:
        raise InputError("give one of --clear-stale, --clear, --max-size", key="--clear" if clear else "--max-size")
    if max_size is not None:
        removal = cache_admin.evict(cache_admin.parse_size(max_size))
    elif clear or clear_stale:
        removal = cache_admin.clear(stale_only=clear_stale)
    else:
        report = cache_admin.scan()
        if as_json:
            print_json(report.to_dict())
        else:
            _render(report)
        return
    if as_json:
        print_json(removal.to_dict())
    else:
        none = (f"nothing to remove: the cache holds {_bytes(removal.after.bytes)}, at most {max_size}" if max_size
                else "nothing to remove: no stale stage folders" if clear_stale else "nothing to remove: the cache is empty")
        _render_removal(removal, none)
    if removal.failures:
        more = f" (and {len(removal.failures) - 1} more)" if len(removal.failures) > 1 else ""
        raise OcrtuneError(f"{removal.failures[0]}{more}")


def _render(r: CacheReport) -> None:
    console.print(f"decoded-image cache: {r.root} ({_source(r.source)})", markup=False, soft_wrap=True)
    if not r.stages:
        console.print("  empty: nothing decoded yet (training fills it with datasets.cache: true)")
    else:
        rows = [[s.stage or "?", _status(s.status), s.entries, _bytes(s.bytes), _when(s.last_used), s.path.name]
                for s in r.stages]
        t = table(None, ["stage", "status", "images", "size", "last used", "folder"], rows)
        for column in t.columns[2:4]:
            column.justify = "right"
        console.print(t)
    console.print(f"total: {_images(r.entries)}, {_bytes(r.bytes)}; {_disk(r)}", markup=False)
    stale = r.of(Status.STALE)
    if stale:
        size = _bytes(sum(s.bytes for s in stale))
        many = len(stale) > 1
        console.print(f"{len(stale)} stale folder{'s' if many else ''} ({size}) no longer read: "
                      f"`ocrtune data cache --clear-stale` removes {'them' if many else 'it'}", markup=False)


def _render_removal(removal: Removal, none: str) -> None:
    if not removal.removed:
        console.print(none, markup=False)
    for s in removal.removed:
        console.print(f"removed {_images(s.entries)} ({_bytes(s.bytes)}) from {s.path}", markup=False, soft_wrap=True)
    if removal.removed:
        console.print(f"freed {_bytes(removal.freed)}", markup=False)
    a = removal.after
    console.print(f"left: {_images(a.entries)}, {_bytes(a.bytes)} in {a.root}; {_disk(a)}", markup=False, soft_wrap=True)


def _images(n: int) -> str:
    return f"{n} image{'' if n == 1 else 's'}"


def _source(source: str) -> str:
    return "default: ~/.cache/ocrtune" if source == "default" else f"from {source}"


def _status(status: Status) -> Text:
    return Text(status.value, style={Status.CURRENT: "green", Status.STALE: "yellow"}.get(status, "dim"))


def _disk(r: CacheReport) -> str:
    if r.disk_free is None or r.disk_total is None:
        return "free disk space unknown"
    return f"disk: {_bytes(r.disk_free)} free of {_bytes(r.disk_total)}"


def _bytes(n: int) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def _when(t: float | None) -> str:
    return "-" if t is None else datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M")
