"""Image loading: EXIF orientation applied exactly once, RGB uint8 out, bad files reported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ocrtune.data.images import image_size, load_image
from ocrtune.errors import InputError

SROIE_VAL = Path("/work/shared/data/sroie/images/val")


def _marked_jpeg(path: Path, orientation: int | None) -> None:
    """A 60x30 (w x h) grey JPEG with a red block in its stored top-left corner."""
    arr = np.full((30, 60, 3), 128, np.uint8)
    arr[:10, :10] = (255, 0, 0)
    img = Image.fromarray(arr)
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    img.save(path, quality=95, exif=exif.tobytes())


def _is_red(pixel: np.ndarray) -> bool:
    r, g, b = (int(v) for v in pixel)
    return r > 200 and g < 60 and b < 60


def test_exif_orientation_6_rotates_exactly_once(tmp_path: Path) -> None:
    path = tmp_path / "rot6.jpg"
    _marked_jpeg(path, 6)
    with Image.open(path) as raw:  # the file itself is stored landscape
        assert raw.size == (60, 30)
    arr, size = load_image(path)
    # once: portrait 30x60; zero or two turns would give 60x30 back
    assert size == (30, 60) and arr.shape == (60, 30, 3) and arr.dtype == np.uint8
    # orientation 6 = turn 90 degrees clockwise: stored top-left ends up top-right
    assert _is_red(arr[3, 26]) and not _is_red(arr[3, 3]) and not _is_red(arr[56, 3])
    assert image_size(path) == (30, 60)


def test_no_exif_orientation_means_no_rotation(tmp_path: Path) -> None:
    for name, orientation in (("none.jpg", None), ("one.jpg", 1)):
        path = tmp_path / name
        _marked_jpeg(path, orientation)
        arr, size = load_image(path)
        assert size == (60, 30) and image_size(path) == (60, 30)
        assert _is_red(arr[3, 3])


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "LA"])
def test_other_modes_become_rgb_uint8(tmp_path: Path, mode: str) -> None:
    path = tmp_path / f"img_{mode}.png"
    Image.new(mode, (7, 5)).save(path)
    arr, size = load_image(path)
    assert arr.shape == (5, 7, 3) and arr.dtype == np.uint8 and size == (7, 5)


def test_corrupt_file_is_input_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "junk.jpg"
    path.write_bytes(b"this is not an image at all")
    for fn in (load_image, image_size):
        with pytest.raises(InputError) as err:
            fn(path)
        assert err.value.problems[0].file == str(path)


def test_truncated_jpeg_is_input_error(tmp_path: Path) -> None:
    good = tmp_path / "good.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(good)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[:400])
    with pytest.raises(InputError, match="cannot"):
        load_image(cut)


def test_missing_file_is_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_image(tmp_path / "nope.jpg")


@pytest.mark.skipif(not SROIE_VAL.is_dir(), reason="shared SROIE copy not present")
def test_real_sroie_images_load() -> None:
    for path in sorted(SROIE_VAL.glob("*.jpg"))[:2]:
        arr, size = load_image(path)
        assert arr.shape == (size[1], size[0], 3) and max(size) <= 1280
        assert image_size(path) == size
