"""``ocrtune data cache``: the listing says what the decoded-image cache holds (current or stale,
images, bytes, last use), the removals take exactly what they say and report the bytes freed,
and readers and writers of the cache survive entries and folders vanishing under them."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ocrtune.data import cache_admin, decoded_cache
from ocrtune.data.cache_admin import Status
from ocrtune.data.decoded_cache import DecodedCache, _read, stage_dir_name
from ocrtune.data.images import load_image
from ocrtune.data.transforms import resize_and_pad

DAY = 86400.0
T0 = 1_700_000_000.0  # fixed times, set on the entries: last use is compared exactly


def _images(folder: Path, n: int = 3) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for i in range(n):
        rng = np.random.default_rng(i)
        p = folder / f"r{i}.png"
        Image.fromarray(rng.integers(0, 256, (20 + 3 * i, 30 + 5 * i, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def _touch(path: Path, t: float) -> None:
    os.utime(path, (t, t))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache built by the real DecodedCache under $OCRTUNE_CACHE (3 images decoded ``full``,
    2 resized to 32 px), plus the stage folders an older Pillow left: ``full`` with 2 entries
    and a leftover temp file, ``square64`` with 1 entry; every entry's last use set."""
    monkeypatch.setenv("OCRTUNE_CACHE", str(tmp_path / "cache"))
    paths = _images(tmp_path / "imgs")
    c = DecodedCache()
    assert c.root == tmp_path / "cache" / "decoded"
    for p in paths:
        c.load(p)
    for p in paths[:2]:
        c.square(p, 32)
    for i, e in enumerate(sorted((c.root / stage_dir_name("full")).rglob("*.px"))):
        _touch(e, T0 + (10 + i) * DAY)
    for e in (c.root / stage_dir_name("square32")).rglob("*.px"):
        _touch(e, T0 + 20 * DAY)
    old_full = c.root / "full-0123456789ab"
    old_square = c.root / "square64-ba9876543210"
    for i, (folder, size) in enumerate([(old_full, 1000), (old_full, 3000), (old_square, 500)]):
        e = folder / f"{i:02x}" / f"{i:02x}{'0' * 30}.px"
        e.parent.mkdir(parents=True, exist_ok=True)
        e.write_bytes(b"x" * size)
        _touch(e, T0 + i * DAY)
    (old_full / "00" / ".leftover.123.abcd.tmp").write_bytes(b"y" * 7)
    c.paths = paths
    return c


def _on_disk(folder: Path) -> tuple[int, int]:
    files = [f for f in folder.rglob("*") if f.is_file()]
    return sum(f.name.endswith(".px") for f in files), sum(f.stat().st_size for f in files)


def test_the_listing_counts_every_stage_folder_and_tells_current_from_stale(cache):
    r = cache_admin.scan()
    assert r.root == cache.root and r.source == "$OCRTUNE_CACHE"
    by_name = {s.path.name: s for s in r.stages}
    assert set(by_name) == {stage_dir_name("full"), stage_dir_name("square32"),
                            "full-0123456789ab", "square64-ba9876543210"}
    full, square = by_name[stage_dir_name("full")], by_name[stage_dir_name("square32")]
    assert (full.stage, full.status, full.entries) == ("full", Status.CURRENT, 3)
    assert (square.stage, square.status, square.entries) == ("square32", Status.CURRENT, 2)
    assert full.bytes == _on_disk(full.path)[1] and full.bytes > 3 * 20 * 30 * 3
    # a full entry holds the image's pixels: h * w * 3 plus a 64-byte aligned header
    assert full.bytes == sum(h * w * 3 + 128 for h, w in [(20, 30), (23, 35), (26, 40)])
    assert full.last_used == T0 + 12 * DAY and square.last_used == T0 + 20 * DAY
    old = by_name["full-0123456789ab"]
    assert (old.stage, old.status, old.entries, old.bytes, old.last_used) == ("full", Status.STALE, 2, 4007, T0 + DAY)
    assert by_name["square64-ba9876543210"].status is Status.STALE
    assert r.entries == 3 + 2 + 2 + 1 and r.bytes == _on_disk(cache.root)[1]
    assert [s.status for s in r.stages][:2] == [Status.CURRENT, Status.CURRENT]  # current first
    assert r.disk_total >= r.disk_free > 0


def test_the_cli_listing_and_its_json(cache, cli):
    code, out, err = cli("data", "cache")
    assert code == 0, err
    assert str(cache.root) in out and "from $OCRTUNE_CACHE" in out
    lines = {ln.split("│")[6].strip(): ln for ln in out.splitlines() if ln.count("│") >= 7}
    assert "stale" in lines["full-0123456789ab"] and "4.0 kB" in lines["full-0123456789ab"]
    assert "current" in lines[stage_dir_name("full")] and " 3 " in lines[stage_dir_name("full")]
    assert "2 stale folders (4.5 kB)" in out and "--clear-stale" in out
    assert "total: 8 images" in out and "free of" in out

    code, out, _ = cli("data", "cache", "--json")
    data = json.loads(out)
    assert data["root"] == str(cache.root) and data["source"] == "$OCRTUNE_CACHE" and data["exists"]
    assert data["entries"] == 8 and data["bytes"] == _on_disk(cache.root)[1] and data["stale_bytes"] == 4507
    assert data["disk"]["free"] > 0 and data["disk"]["total"] >= data["disk"]["free"]
    old = next(s for s in data["stages"] if s["name"] == "full-0123456789ab")
    assert old == {"name": "full-0123456789ab", "stage": "full", "status": "stale", "entries": 2,
                   "bytes": 4007, "last_used": "2023-11-15T22:13:20+00:00"}


def test_clear_stale_removes_only_the_stale_folders_and_current_entries_are_still_read(cache, cli, monkeypatch):
    current = {p: _on_disk(p) for p in (cache.root / stage_dir_name("full"), cache.root / stage_dir_name("square32"))}
    code, out, err = cli("data", "cache", "--clear-stale")
    assert code == 0, err
    assert "removed 2 images (4.0 kB) from" in out and "full-0123456789ab" in out
    assert "freed 4.5 kB" in out and "left: 5 images" in out
    assert sorted(p.name for p in cache.root.iterdir()) == sorted(p.name for p in current)
    assert {p: _on_disk(p) for p in current} == current

    def no_decoding(path):
        raise AssertionError(f"{path} decoded again: its cache entry was removed")

    monkeypatch.setattr(decoded_cache, "load_image", no_decoding)
    fresh = DecodedCache()
    for p in cache.paths:
        assert fresh.load(p)[0].shape[2] == 3
    code, out, _ = cli("data", "cache", "--clear-stale")
    assert code == 0 and "nothing to remove" in out


def test_clear_removes_everything_and_reports_the_bytes_it_freed(cache, cli):
    before = _on_disk(cache.root)
    code, out, err = cli("data", "cache", "--clear", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["freed_bytes"] == before[1] and sum(s["entries"] for s in data["removed"]) == before[0]
    assert data["failures"] == [] and data["after"]["entries"] == 0 and data["after"]["bytes"] == 0
    assert cache.root.is_dir() and list(cache.root.iterdir()) == []
    image, _ = cache.load(cache.paths[0])  # decoded and stored again
    assert np.array_equal(image, load_image(cache.paths[0])[0]) and _on_disk(cache.root)[0] == 1


def test_max_size_evicts_the_least_recently_used_entries_first(cache, cli):
    full = sorted((cache.root / stage_dir_name("full")).rglob("*.px"), key=lambda e: e.stat().st_mtime)
    _touch(full[0], T0 + 30 * DAY)  # read lately (atime): now the most recently used
    os.utime(full[1], (T0 + 40 * DAY, T0 + 10.5 * DAY))
    order = sorted(cache.root.rglob("*.px"), key=lambda e: max(e.stat().st_atime, e.stat().st_mtime))
    assert order[-2:] == [full[0], full[1]]
    total = _on_disk(cache.root)[1]
    keep_from = 4  # the 4 oldest must go to get under the limit
    limit = total - sum(e.stat().st_size for e in order[:keep_from - 1]) - 1
    code, out, err = cli("data", "cache", "--max-size", str(limit))
    assert code == 0, err
    assert [e.exists() for e in order] == [False] * keep_from + [True] * (len(order) - keep_from)
    assert (cache.root / "full-0123456789ab" / "00" / ".leftover.123.abcd.tmp").exists()  # no entry: kept
    assert _on_disk(cache.root)[1] <= limit
    assert f"freed {cache_admin_bytes(total - _on_disk(cache.root)[1])}" in out

    code, out, _ = cli("data", "cache", "--max-size", "1G")
    assert code == 0 and "nothing to remove: the cache holds" in out and "at most 1G" in out


def cache_admin_bytes(n: int) -> str:
    from ocrtune.cli.data_cache import _bytes

    return _bytes(n)


@pytest.mark.parametrize("text, expected", [("20G", 20 * 10**9), ("500MB", 500 * 10**6), ("1.5TiB", int(1.5 * 2**40)),
                                            ("1000000", 10**6), ("64 ki", 65536), ("2gb", 2 * 10**9)])
def test_sizes(text, expected):
    assert cache_admin.parse_size(text) == expected


def test_bad_options_are_one_line_and_exit_2(cache, cli):
    code, out, err = cli("data", "cache", "--max-size", "lots")
    assert code == 2 and err.strip().splitlines() == ["--max-size: not a size: 'lots' (examples: 20G, 500MB, 1.5TiB, 1000000)"]
    code, out, err = cli("data", "cache", "--clear", "--clear-stale")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "give one of" in err
    assert _on_disk(cache.root)[0] == 8


def test_an_empty_or_missing_cache_is_listed_as_such(tmp_path, monkeypatch, cli):
    monkeypatch.setenv("OCRTUNE_CACHE", str(tmp_path / "nowhere"))
    code, out, _ = cli("data", "cache")
    assert code == 0 and "empty: nothing decoded yet" in out and "total: 0 images, 0 B" in out
    code, out, _ = cli("data", "cache", "--clear")
    assert code == 0 and "nothing to remove" in out and not (tmp_path / "nowhere").exists()


def test_an_unreadable_folder_is_one_located_line_and_exit_2(cache, cli, monkeypatch):
    blocked = cache.root / "full-0123456789ab"
    real = os.scandir

    def scandir(path="."):
        if Path(path) == blocked:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(cache_admin.os, "scandir", scandir)
    code, out, err = cli("data", "cache")
    assert code == 2 and err.strip().splitlines() == [
        f"{blocked}: cannot read the decoded-image cache folder (Permission denied)"]
    assert "Traceback" not in out + err


def test_a_folder_that_cannot_be_removed_is_one_located_line_and_exit_1_after_the_rest(cache, cli, monkeypatch):
    stuck = next((cache.root / "square64-ba9876543210").rglob("*.px"))
    real = os.unlink

    def unlink(path, *a, **kw):
        if Path(path) == stuck:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *a, **kw)

    monkeypatch.setattr(cache_admin.os, "unlink", unlink)
    code, out, err = cli("data", "cache", "--clear-stale")
    assert code == 1 and err.strip().splitlines() == [f"error: {stuck}: cannot remove (Permission denied)"]
    assert not (cache.root / "full-0123456789ab").exists() and stuck.exists()  # the rest went
    assert "removed 2 images (4.0 kB)" in out and "Traceback" not in out + err


@pytest.mark.parametrize("when", ["before open", "after open"])
def test_an_entry_removed_while_it_is_read_is_decoded_again_or_read_whole(tmp_path, monkeypatch, when):
    """``--clear`` while training reads: the entry gone before the reader opens it is decoded
    again (and stored again); one removed after it was opened is still read whole (POSIX)."""
    [path] = _images(tmp_path / "imgs", 1)
    want = load_image(path)[0]
    c = DecodedCache(tmp_path / "decoded")
    c.load(path)
    c.square(path, 32)
    real = open
    raced = []

    def racing_open(p, mode="r", *a, **kw):
        if "r" in mode and Path(p).suffix == ".px" and not raced:
            raced.append(p)
            if when == "before open":
                shutil.rmtree(tmp_path / "decoded")
                return real(p, mode, *a, **kw)
            f = real(p, mode, *a, **kw)
            shutil.rmtree(tmp_path / "decoded")
            return f
        return real(p, mode, *a, **kw)

    monkeypatch.setattr(decoded_cache, "open", racing_open, raising=False)
    assert np.array_equal(c.load(path)[0], want)
    assert np.array_equal(c.square(path, 32).image, resize_and_pad(want, [], 32)[0])
    monkeypatch.undo()
    # stored again: before open, both entries (the clear took the square one too); after, the square one
    assert len(list((tmp_path / "decoded").rglob("*.px"))) == (2 if when == "before open" else 1)


def test_a_stage_folder_removed_while_an_entry_is_written_is_made_again(tmp_path, monkeypatch, caplog):
    """``--clear`` between the writer's mkdir and its temp file: the entry is still stored, and no
    warning claims the cache cannot be written."""
    [path] = _images(tmp_path / "imgs", 1)
    real = open
    removed = []

    def racing_open(p, mode="r", *a, **kw):
        if "x" in mode and not removed:
            shutil.rmtree(tmp_path / "decoded")
            removed.append(p)
        return real(p, mode, *a, **kw)

    monkeypatch.setattr(decoded_cache, "open", racing_open, raising=False)
    monkeypatch.setattr(decoded_cache, "_write_failed", False)
    c = DecodedCache(tmp_path / "decoded")
    with caplog.at_level("WARNING", logger="ocrtune.data"):
        image, _ = c.load(path)
    assert removed and "cache not written" not in caplog.text
    [entry] = (tmp_path / "decoded").rglob("*.px")
    assert np.array_equal(_read(entry)[0], image)
    assert not list((tmp_path / "decoded").rglob("*.tmp"))
