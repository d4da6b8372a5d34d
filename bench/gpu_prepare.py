"""Make what bench/gpu_session.py needs on the GPU machine, here: wheels and a compact SROIE.

The device's Python 3.12 has torch, timm, lightning, typer, rich, opencv, matplotlib, but not
pydantic, pyclipper, shapely, ruamel.yaml, optuna or SQLAlchemy, and reaches no package index;
the tree that travels is capped at 64 MiB. So this downloads those wheels (cp312, manylinux, the
versions installed here) into ``.whl/`` and copies SROIE into ``.gpudata/sroie`` with the training
images re-encoded (JPEG quality ``--quality``, same pixels' size and EXIF, so the annotations stay
exact); validation images are copied unchanged, so val scores are on the real files. Both folders
are ignored by git and named in the device call's ``carry``. The device has no font files, and
``data synth`` renders with what ``find_fonts`` sees: the Latin fonts found here and the smallest
Hangul ones (``--font-mib`` in all) go to ``.gpudata/fonts``, copied to ``~/.fonts`` there.

    python bench/gpu_prepare.py            # then the device command in bench/gpu_session.py
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SROIE = REPO.parent / "shared" / "data" / "sroie"
LIMIT = 64 * 2**20
# what the device lacks (bench/gpu_session.py imports ocrtune, which needs these), with their needs
CARRY = ["pydantic", "pydantic_core", "annotated-types", "typing-inspection", "pyclipper", "shapely",
         "ruamel.yaml", "optuna", "SQLAlchemy", "alembic", "Mako", "colorlog"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64"]


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def wheels(dest: Path) -> None:
    dest.mkdir(exist_ok=True)
    for name in CARRY:
        pin = f"{name}=={metadata.version(name)}"
        if any(dest.glob(f"{name.replace('-', '_').replace('.', '_').lower()}-{metadata.version(name)}-*.whl")):
            continue
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
               "3.12", "--implementation", "cp", *[a for p in PLATFORMS for a in ("--platform", p)], "-d", str(dest), pin]
        subprocess.run(cmd, check=True)
    print(f"wheels: {len(list(dest.glob('*.whl')))} in {dest} ({size(dest) / 2**20:.1f} MiB)")


def compact(src: Path, dest: Path, quality: int) -> None:
    from PIL import Image

    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src / "annotations", dest / "annotations")
    shutil.copytree(src / "images" / "val", dest / "images" / "val")
    (dest / "images" / "train").mkdir(parents=True)
    for f in sorted((src / "images" / "train").iterdir()):
        with Image.open(f) as im:
            exif = im.info.get("exif")
            im.convert("RGB").save(dest / "images" / "train" / f.name, "JPEG", quality=quality,
                                   **({"exif": exif} if exif else {}))
    print(f"data: {dest} ({size(dest) / 2**20:.1f} MiB; train re-encoded at quality {quality}, "
          f"was {size(src) / 2**20:.1f} MiB)")


def fonts(dest: Path, mib: float) -> None:
    """The synthesis's fonts: every Latin one found here, then the smallest Hangul ones that fit."""
    from ocrtune.data.receipt_text import find_fonts

    found = find_fonts()
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    chosen, total = list(found.latin), sum(Path(f).stat().st_size for f in found.latin)
    for f in sorted(found.hangul, key=lambda f: Path(f).stat().st_size):
        if total + Path(f).stat().st_size <= mib * 2**20:
            chosen.append(f)
            total += Path(f).stat().st_size
    for f in chosen:
        shutil.copy2(f, dest / Path(f).name)
    left = len(found.latin) + len(found.hangul) - len(chosen)
    print(f"fonts: {len(chosen)} in {dest} ({total / 2**20:.1f} MiB; {left} larger Hangul fonts left here)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=SROIE)
    ap.add_argument("--quality", type=int, default=60)
    ap.add_argument("--font-mib", type=float, default=9.0, help="fonts carried for data synth, MiB")
    args = ap.parse_args()
    wheels(REPO / ".whl")
    compact(args.data, REPO / ".gpudata" / "sroie", args.quality)
    fonts(REPO / ".gpudata" / "fonts", args.font_mib)
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    tree = sum((REPO / p).stat().st_size for p in tracked.decode().split("\0") if p and (REPO / p).is_file())
    total = tree + size(REPO / ".whl") + size(REPO / ".gpudata")
    print(f"travelling: {total / 2**20:.1f} MiB of {LIMIT / 2**20:.0f} (tree {tree / 2**20:.1f} MiB)")
    if total > LIMIT:
        raise SystemExit("over the device's limit: lower --quality")


if __name__ == "__main__":
    main()
