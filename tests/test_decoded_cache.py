"""The on-disk cache of decoded images: training sees the same pixels, polygons and losses with it
as without; an edited image or another image_size is never served a stale entry; processes
building it at once all get correct data and nobody ever reads half an entry."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ocrtune.data import decoded_cache
from ocrtune.data.decoded_cache import DecodedCache, _read, scale_polygons
from ocrtune.data.images import load_image
from ocrtune.data.transforms import resize_and_pad
from ocrtune.presets.schema import AugmentConfig, DatasetsConfig
from ocrtune.train.datamodule import DetectionDataset, Draw, load_split

REPO = Path(__file__).resolve().parents[1]


def _noise(w: int, h: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def _dataset(root: Path, sizes: list[tuple[int, int]], split: str = "train") -> Path:
    """Noise images of the given (w, h) with three words each; the last one stored with EXIF
    orientation 6 (displayed turned), so the cache must hold the image as displayed."""
    (root / "images" / split).mkdir(parents=True)
    (root / "jsons").mkdir(exist_ok=True)
    anns = {}
    for i, (w, h) in enumerate(sizes):
        name = f"r{i}.png" if i % 2 else f"r{i}.jpg"
        img = _noise(w, h, i)
        exif = None
        if i == len(sizes) - 1:
            exif = Image.Exif()
            exif[0x0112] = 6
            w, h = h, w  # displayed size: annotations are in displayed pixels
        img.save(root / "images" / split / name, **({"exif": exif} if exif else {}))
        words = {f"{k:04d}": {"points": [[5 + 20 * k, 5 + 17 * k], [45 + 20 * k, 5 + 17 * k],
                                         [45 + 20 * k, 15 + 17 * k], [5 + 20 * k, 15 + 17 * k]]}
                 for k in range(3)}
        anns[name] = {"words": words}
    (root / "jsons" / f"{split}.json").write_text(json.dumps({"images": anns}))
    return root


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if torch.is_tensor(a[k]):
            assert torch.equal(a[k], b[k]), k
        else:
            assert repr(a[k]) == repr(b[k]), k


AUGMENT = AugmentConfig(hflip=0.5, rotate=10.0, crop=0.7, scale=(0.7, 1.3), color_jitter=0.3)


@pytest.mark.parametrize("augment", [True, False])
def test_samples_are_identical_with_and_without_the_cache(tmp_path, augment):
    root = _dataset(tmp_path / "data", [(211, 157), (120, 301), (97, 97), (260, 140)])
    items, _ = load_split(root, "train")
    cfg = DatasetsConfig(image_size=96, augment=AUGMENT.model_copy(update={"enabled": augment}))
    cache = DecodedCache(tmp_path / "decoded")
    plain = DetectionDataset(items, cfg, train=True)
    cached = DetectionDataset(items, cfg, train=True, cache=cache)
    for _ in range(2):  # the first pass builds the entries, the second reads them
        for i in range(len(items)):
            _same(plain[Draw(i, 100 + i)], cached[Draw(i, 100 + i)])
    # an index without a drawn seed takes it from torch's generator, as much with the cache as without
    torch.manual_seed(3)
    a = [plain[i] for i in range(len(items))]
    torch.manual_seed(3)
    for i, s in enumerate(a):
        _same(s, cached[i])
    # validation (never augmented) too, and the entries are really there
    val_plain = DetectionDataset(items, cfg, with_targets=True)
    val_cached = DetectionDataset(items, cfg, with_targets=True, cache=cache)
    for i in range(len(items)):
        _same(val_plain[i], val_cached[i])
    stages = sorted(p.name.split("-")[0] for p in (tmp_path / "decoded").iterdir())
    assert stages == (["full", "square96"] if augment else ["square96"])
    assert len(list((tmp_path / "decoded").rglob("*.px"))) == len(items) * len(stages)


def test_square_entries_give_resize_and_pad_exactly(tmp_path):
    cache = DecodedCache(tmp_path / "decoded")
    poly = [np.array([[3.25, 7.5], [90.0, 7.5], [90.0, 33.3], [3.25, 33.3]])]
    for i, (w, h) in enumerate([(333, 97), (101, 517), (64, 64), (1, 40)]):
        path = tmp_path / f"{i}.png"
        _noise(w, h, i).save(path)
        want_img, want_polys, want_inv = resize_and_pad(load_image(path)[0], poly, 96)
        for _ in range(2):  # built, then read back
            got = cache.square(path, 96)
            assert np.array_equal(got.image, want_img) and got.inverse == want_inv
            assert all(np.array_equal(a, b) and a.dtype == b.dtype
                       for a, b in zip(scale_polygons(poly, got.inverse), want_polys))


def test_an_edited_image_is_decoded_again_even_with_the_same_size_and_mtime(tmp_path):
    path = tmp_path / "a.bmp"  # BMP: the same pixel size is the same file size
    _noise(80, 60, 1).save(path)
    cache = DecodedCache(tmp_path / "decoded")
    first = cache.load(path)[0]
    first_sq = cache.square(path, 64).image
    st = path.stat()
    _noise(80, 60, 2).save(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    want = load_image(path)[0]
    assert not np.array_equal(want, first)
    for c in (cache, DecodedCache(tmp_path / "decoded")):  # the same process, and a new one
        assert np.array_equal(c.load(path)[0], want)
        assert np.array_equal(c.square(path, 64).image, resize_and_pad(want, [], 64)[0])
        assert not np.array_equal(c.square(path, 64).image, first_sq)


def test_another_image_size_is_another_entry(tmp_path):
    path = tmp_path / "a.jpg"
    _noise(300, 200, 1).save(path)
    cache = DecodedCache(tmp_path / "decoded")
    for size in (64, 96, 64):
        sq = cache.square(path, size)
        assert sq.image.shape == (size, size, 3)
        assert np.array_equal(sq.image, resize_and_pad(load_image(path)[0], [], size)[0])
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "decoded").iterdir()) == ["square64", "square96"]


def test_a_damaged_entry_is_rebuilt_and_a_missing_cache_folder_only_costs_time(tmp_path, caplog):
    path = tmp_path / "a.png"
    _noise(50, 40, 1).save(path)
    want = load_image(path)[0]
    cache = DecodedCache(tmp_path / "decoded")
    cache.load(path)
    [entry] = (tmp_path / "decoded").rglob("*.px")
    entry.write_bytes(entry.read_bytes()[:-7])  # truncated by something else
    assert _read(entry) is None
    assert np.array_equal(cache.load(path)[0], want)
    assert _read(entry) is not None and np.array_equal(_read(entry)[0], want)  # replaced by a whole one

    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    monkey = DecodedCache(blocked / "decoded")
    decoded_cache._write_failed = False
    with caplog.at_level("WARNING", logger="ocrtune.data"):
        assert np.array_equal(monkey.load(path)[0], want)
        assert np.array_equal(monkey.square(path, 32).image, resize_and_pad(want, [], 32)[0])
    assert sum("cache not written" in r.getMessage() for r in caplog.records) == 1


def test_the_cache_leaves_room_on_a_nearly_full_disk(tmp_path, monkeypatch, caplog):
    """An entry is written only while the larger of 1 GiB and 2 % of the disk stays free: the
    cache must never take the space a run's checkpoints need. Images are then decoded, right."""
    import collections

    from ocrtune import diskspace

    path = tmp_path / "a.png"
    _noise(50, 40, 1).save(path)
    want = load_image(path)[0]
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(decoded_cache, "_write_failed", False)
    monkeypatch.setattr(diskspace.shutil, "disk_usage", lambda p: usage(100 * 2**30, 0, 2**30 + 1000))
    cache = DecodedCache(tmp_path / "decoded")
    with caplog.at_level("WARNING", logger="ocrtune.data"):
        for _ in range(3):
            assert np.array_equal(cache.load(path)[0], want)
    assert not list((tmp_path / "decoded").rglob("*.px"))  # 50x40x3 bytes would cut into the 2 GiB floor
    assert sum("disk is nearly full" in r.getMessage() for r in caplog.records) == 1
    monkeypatch.setattr(diskspace.shutil, "disk_usage", lambda p: usage(100 * 2**30, 0, 3 * 2**30))
    cache.load(path)
    assert len(list((tmp_path / "decoded").rglob("*.px"))) == 1  # room again: written


def test_an_unreadable_image_is_skipped_as_without_the_cache(tmp_path, caplog):
    root = _dataset(tmp_path / "data", [(80, 60), (70, 50)])
    items, _ = load_split(root, "train")
    items[0].path.write_bytes(b"not an image")
    cfg = DatasetsConfig(image_size=64, augment=AUGMENT)
    for train in (True, False):
        ds = DetectionDataset(items, cfg, train=train, cache=DecodedCache(tmp_path / "decoded"))
        with caplog.at_level("WARNING", logger="ocrtune.data"):
            assert ds[Draw(0, 1)] is None and ds[Draw(1, 1)] is not None
        assert "cannot" in caplog.text and "r0.jpg" in caplog.text


def test_a_reader_never_sees_a_half_written_entry(tmp_path, monkeypatch):
    path = tmp_path / "a.png"
    _noise(400, 300, 1).save(path)
    want = load_image(path)[0]
    cache = DecodedCache(tmp_path / "decoded")
    writing, done = threading.Event(), threading.Event()

    class SlowFile:
        """A file that writes in small pieces with pauses, as a busy disk would."""

        def __init__(self, f):
            self.f = f

        def write(self, data):
            view = memoryview(data).cast("B")
            for i in range(0, len(view), 4096):
                self.f.write(view[i:i + 4096])
                self.f.flush()
                writing.set()
                time.sleep(0.002)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(decoded_cache, "open", lambda p, mode="r": SlowFile(open(p, mode)) if "x" in mode else open(p, mode),
                        raising=False)
    builder = threading.Thread(target=lambda: (cache.load(path), done.set()))
    builder.start()
    assert writing.wait(10)
    entry = cache._entry("full", cache._digest(path))
    seen_sizes, polls_while_writing = set(), 0
    while not done.is_set():
        polls_while_writing += 1
        try:
            seen_sizes.add(entry.stat().st_size)
        except FileNotFoundError:
            pass
        time.sleep(0.0005)
    builder.join()
    monkeypatch.undo()
    assert polls_while_writing > 10  # the reader really looked while the entry was being written
    assert seen_sizes <= {entry.stat().st_size}  # nothing but the finished entry was ever there
    assert np.array_equal(_read(entry)[0], want)
    assert not list(entry.parent.glob("*.tmp"))


_BUILDER = r"""
import hashlib, sys, time
from pathlib import Path
from ocrtune.data.decoded_cache import DecodedCache
root, me, paths = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
(root / f"ready-{me}").touch()
while not (root / "go").exists():
    time.sleep(0.001)
cache = DecodedCache(root / "decoded")
for p in paths:
    print(p, hashlib.sha256(cache.load(p)[0].tobytes()).hexdigest(),
          hashlib.sha256(cache.square(p, 160).image.tobytes()).hexdigest(), flush=True)
"""


def test_two_processes_building_the_same_cache_at_once_both_get_correct_data(tmp_path):
    paths = []
    for i in range(6):
        p = tmp_path / f"{i}.png"
        _noise(400 + 13 * i, 600, i).save(p)
        paths.append(str(p))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", _BUILDER, str(tmp_path), str(k), *paths],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for k in range(2)]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready-{k}").exists() for k in range(2)):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.01)
    (tmp_path / "go").touch()
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    want = {p: (hashlib.sha256(load_image(p)[0].tobytes()).hexdigest(),
                hashlib.sha256(resize_and_pad(load_image(p)[0], [], 160)[0].tobytes()).hexdigest()) for p in paths}
    for out, _ in outs:
        got = {line.split()[0]: tuple(line.split()[1:]) for line in out.splitlines()}
        assert got == want
    entries = list((tmp_path / "decoded").rglob("*.px"))
    assert len(entries) == 2 * len(paths) and all(_read(e) is not None for e in entries)
    assert not list((tmp_path / "decoded").rglob("*.tmp"))


@pytest.mark.slow
@pytest.mark.xdist_group("train")
def test_training_with_the_cache_gives_the_same_losses_as_without(tmp_path, monkeypatch):
    from ocrtune.data.synthetic import synthesize
    from ocrtune.presets.load import load_preset
    from ocrtune.train.fit import TrainOptions, fit

    data = tmp_path / "receipts"
    synthesize(data, n=4, seed=11, size=192, val_fraction=0.25)
    monkeypatch.setenv("OCRTUNE_CACHE", str(tmp_path / "cache"))
    decoded = tmp_path / "cache" / "decoded"
    small = ["datasets.image_size=96", "dataloader.batch_size=2", "models.scheduler.warmup_epochs=0"]

    def train(cache: bool, name: str) -> list[dict]:
        loaded = load_preset("cpu-demo", [*small, f"datasets.cache={str(cache).lower()}"])
        assert loaded.preset.datasets.augment.enabled  # the train stage under test: augmented
        r = fit(loaded, TrainOptions(data=data, runs_dir=tmp_path / name, progress=False, max_epochs=2))
        assert r.status == "completed", r.error
        return r.rows

    without = train(False, "off")
    assert not decoded.exists()
    cold = train(True, "cold")  # builds the entries
    assert len(list(decoded.rglob("*.px"))) == 4  # 3 train images decoded, 1 val image resized
    warm = train(True, "warm")  # reads them
    for rows in (cold, warm):
        assert [r["train_loss"] for r in rows] == pytest.approx([r["train_loss"] for r in without], rel=1e-6, abs=1e-7)
        assert [r["val_hmean"] for r in rows] == pytest.approx([r["val_hmean"] for r in without], abs=1e-9)
    assert len({r["train_loss"] for r in without}) == 2
