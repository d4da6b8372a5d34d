"""``synthesize(overwrite=True)`` replaces only a dataset it wrote and nobody changed since."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from ocrtune.data.synthetic import MARKER, synthesize
from ocrtune.errors import InputError


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture()
def made(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    synthesize(root, n=3, seed=1, size=96, val_fraction=0.34)
    return root


def test_marker_holds_the_sha256_of_every_file_synth_wrote(made: Path) -> None:
    marker = json.loads((made / MARKER).read_text(encoding="utf-8"))
    assert (marker["n"], marker["seed"], marker["granularity"], marker["style"]) == (3, 1, "word", "plain")
    written = {k: hashlib.sha256(v).hexdigest() for k, v in _files(made).items() if k != MARKER}
    assert marker["sha256"] == written
    assert sorted(written) == ["images/train/receipt_00000.jpg", "images/train/receipt_00001.jpg",
                               "images/val/receipt_00002.jpg", "jsons/train.json", "jsons/val.json"]


def test_an_untouched_set_is_still_replaced(made: Path) -> None:
    (made / "notes.txt").write_text("mine")  # beside the dataset, where synth never writes
    result = synthesize(made, n=2, seed=5, size=96, val_fraction=0.0, overwrite=True)
    assert (result.n_train, result.n_val) == (2, 0)
    assert sorted(p.name for p in (made / "images" / "train").iterdir()) == ["receipt_00000.jpg", "receipt_00001.jpg"]
    assert not (made / "images" / "val").exists() and (made / "notes.txt").read_text() == "mine"
    assert sorted(json.loads((made / MARKER).read_text())["sha256"]) == [
        "images/train/receipt_00000.jpg", "images/train/receipt_00001.jpg", "jsons/train.json"]


@pytest.mark.parametrize(("edit", "named", "says"), [
    (lambda r: (r / "images/train/receipt_00001.jpg").write_bytes(b"hand-edited"),
     "images/train/receipt_00001.jpg", "changed since ocrtune synthesised"),
    (lambda r: (r / "jsons/val.json").write_text('{"images": {}}'), "jsons/val.json", "changed since"),
    (lambda r: (r / "images/val/receipt_00002.jpg").unlink(), "images/val/receipt_00002.jpg", "missing"),
    (lambda r: (r / "images/train/scan-0001.jpg").write_bytes(b"x"), "images/train/scan-0001.jpg",
     "not written by ocrtune synth"),
    (lambda r: (r / "images/train/more").mkdir(), "images/train/more", "not written by ocrtune synth"),
    (lambda r: (r / "annotations").mkdir() or (r / "annotations/train.json").write_text("{}"),
     "annotations/train.json", "not written by ocrtune synth"),
    (lambda r: (r / MARKER).write_text('{"n": 3, "seed": 1}'), MARKER, "holds no content hashes"),
    (lambda r: (r / MARKER).write_text("not json"), MARKER, "holds no content hashes"),
])
def test_a_changed_set_is_refused_naming_the_file(made: Path, edit, named: str, says: str) -> None:  # noqa: ANN001
    edit(made)
    before = _files(made)
    for overwrite in (True, False):
        with pytest.raises(InputError) as err:
            synthesize(made, n=2, size=96, overwrite=overwrite)
        assert len(err.value.problems) == 1
        problem = err.value.problems[0]
        assert problem.file == str(made / named) and says in problem.message
        assert "--force replaces only a dataset synth wrote and nobody changed since" in problem.message
    assert _files(made) == before  # nothing replaced, nothing left behind
    assert [p.name for p in made.iterdir() if p.name.startswith(".")] == []


def test_an_edit_made_while_rendering_is_caught_before_the_swap(
    made: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ocrtune.data.synthetic as synthetic

    real = synthetic.render_receipt
    victim = made / "jsons" / "train.json"

    def editing(seed: int, index: int, *args: object) -> object:
        victim.write_text('{"images": {}}')  # someone edits the old set meanwhile
        return real(seed, index, *args)

    monkeypatch.setattr(synthetic, "render_receipt", editing)
    with pytest.raises(InputError, match="changed since"):
        synthesize(made, n=2, size=96, overwrite=True)
    assert victim.read_text() == '{"images": {}}'
    assert (made / "images" / "val" / "receipt_00002.jpg").is_file()
