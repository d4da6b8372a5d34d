"""Dataset layout resolution (competition and SROIE layouts) and cache location."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocrtune.data.layout import available_splits, cache_root, list_images, resolve_split
from ocrtune.errors import InputError

SROIE = Path("/work/shared/data/sroie")


def _touch(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_competition_layout(tmp_path: Path) -> None:
    _touch(tmp_path / "images" / "train" / "a.jpg")
    _touch(tmp_path / "images" / "test" / "b.jpg")
    ann = _touch(tmp_path / "jsons" / "train.json", '{"images": {}}')
    assert resolve_split(tmp_path, "train") == (tmp_path / "images" / "train", ann)
    # unlabelled test split: images but no JSON
    assert resolve_split(tmp_path, "test") == (tmp_path / "images" / "test", None)
    assert available_splits(tmp_path) == ["train", "test"]


def test_annotations_folder_layout_and_precedence(tmp_path: Path) -> None:
    (tmp_path / "images" / "val").mkdir(parents=True)
    sroie_style = _touch(tmp_path / "annotations" / "val.json")
    assert resolve_split(tmp_path, "val")[1] == sroie_style
    competition = _touch(tmp_path / "jsons" / "val.json")
    assert resolve_split(tmp_path, "val")[1] == competition


def test_missing_split_lists_what_was_looked_for(tmp_path: Path) -> None:
    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "images" / "extra").mkdir()
    with pytest.raises(InputError) as err:
        resolve_split(tmp_path, "val")
    message = str(err.value)
    for looked in ("images/val", "jsons/val.json", "annotations/val.json"):
        assert str(tmp_path / looked) in message
    assert "splits found: train, extra" in message
    with pytest.raises(InputError, match="dataset directory not found"):
        resolve_split(tmp_path / "missing", "train")


def test_list_images_filters_and_sorts(tmp_path: Path) -> None:
    for name in ("b.JPG", "a.png", ".hidden.jpg", "notes.txt", "c.jpeg"):
        _touch(tmp_path / name)
    (tmp_path / "sub.jpg").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.png", "b.JPG", "c.jpeg"]


def test_cache_root_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OCRTUNE_CACHE", str(tmp_path / "oc"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "oc"
    monkeypatch.delenv("OCRTUNE_CACHE")
    assert cache_root() == tmp_path / "xdg" / "ocrtune"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_root() == Path.home() / ".cache" / "ocrtune"


@pytest.mark.skipif(not SROIE.is_dir(), reason="shared SROIE copy not present")
def test_real_sroie_layout_resolves() -> None:
    image_dir, ann = resolve_split(SROIE, "val")
    assert ann == SROIE / "annotations" / "val.json" and image_dir == SROIE / "images" / "val"
    assert available_splits(SROIE) == ["train", "val"]
