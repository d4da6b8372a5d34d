"""Parallel synthesis writes the same bytes as serial synthesis, whatever the worker count."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocrtune.data.synth_options import Effect, Granularity, Style, SynthOptions
from ocrtune.data.synthetic import MARKER, synthesize
from ocrtune.errors import InputError


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("options", [
    SynthOptions(),
    SynthOptions(Granularity.LINE, Style.REAL, frozenset(Effect)),
])
def test_parallel_output_is_byte_identical_to_serial(tmp_path: Path, options: SynthOptions,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import ocrtune.data.synthetic as synthetic

    monkeypatch.setattr(synthetic, "available_cores", lambda: 8)  # 3 processes even on a 2-core machine
    runs = {w: synthesize(tmp_path / f"w{w}", n=7, seed=9, size=128, val_fraction=0.3, options=options, workers=w)
            for w in (1, 2, 3)}
    serial = _files(tmp_path / "w1")
    assert len([k for k in serial if k.endswith(".jpg")]) == 7
    assert {"jsons/train.json", "jsons/val.json", MARKER} <= set(serial)
    for w in (2, 3):
        assert runs[w].workers == w and runs[w].n_words == runs[1].n_words > 0
        assert _files(tmp_path / f"w{w}") == serial  # images, JSON and marker, byte for byte


def test_more_workers_than_images_is_fine(tmp_path: Path) -> None:
    result = synthesize(tmp_path / "a", n=2, seed=0, size=96, workers=16)
    assert result.workers == 2 and result.n_train + result.n_val == 2 and result.images_per_s > 0


def test_never_more_processes_than_usable_cores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ocrtune.data.synthetic as synthetic

    monkeypatch.setattr(synthetic, "available_cores", lambda: 3)
    result = synthesize(tmp_path / "a", n=8, seed=0, size=96, workers=64)
    assert result.workers == 3 and result.n_train + result.n_val == 8


def _fails_on_image_3(seed: int, index: int, *args: object) -> object:
    """A renderer that breaks on one image; module level, so it reaches the workers (pickled by
    name: they start from a fork server, not from the test's process)."""
    if index == 3:
        raise RuntimeError("boom")
    from ocrtune.data.synthetic import render_receipt as real  # the workers' module is not patched

    if real is _fails_on_image_3:
        raise AssertionError("rendered in the test's own process")
    return real(seed, index, *args)


def test_a_worker_failure_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ocrtune.data.synthetic as synthetic

    monkeypatch.setattr(synthetic, "render_receipt", _fails_on_image_3)
    with pytest.raises(RuntimeError, match="boom"):
        synthesize(tmp_path / "new", n=5, size=96, workers=2)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("workers", [0, -2])
def test_bad_worker_counts_are_input_errors(tmp_path: Path, workers: int) -> None:
    with pytest.raises(InputError, match="--workers: must be at least 1"):
        synthesize(tmp_path / "x", n=2, size=96, workers=workers)
    assert not (tmp_path / "x").exists()


def test_streamed_json_is_what_writing_all_records_at_once_gives(tmp_path: Path) -> None:
    """Workers send each image's JSON entry; the joined file equals the one-shot serialiser's
    output, so datasets are byte-identical to those written before synthesis was parallel."""
    from ocrtune.data.formats import Annotations, dumps_json
    from ocrtune.data.synthetic import render_receipt

    synthesize(tmp_path / "s", n=3, seed=5, size=128, val_fraction=0.0, workers=2)
    records = [render_receipt(5, i, 128)[1] for i in range(3)]
    expected = dumps_json(Annotations(records), decimals=2)
    assert (tmp_path / "s" / "jsons" / "train.json").read_text(encoding="utf-8") == expected
