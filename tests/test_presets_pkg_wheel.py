"""The built-in presets ship inside the package: an sdist or wheel install finds them too."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from ocrtune.presets.load import builtin_dir

REPO = Path(__file__).resolve().parents[1]
PRESET_FILES = sorted(p.name for p in (REPO / "presets").iterdir() if p.suffix in (".yaml", ".yml"))


def test_checkout_reads_the_top_level_presets_folder():
    # editable install (ocrtune.builtin_presets mapped to presets/) or a plain checkout run
    assert builtin_dir().resolve() == (REPO / "presets").resolve()
    assert "baseline.yaml" in PRESET_FILES


def _source_copy(dest: Path) -> Path:
    """What a release is built from, without touching the checkout (no build/ or egg-info there)."""
    src = dest / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(REPO / "presets", src / "presets", ignore=skip)
    shutil.copytree(REPO / "ocrtune", src / "ocrtune", ignore=skip)
    return src


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("setuptools") is None, reason="needs setuptools to build")
def test_sdist_and_wheel_ship_the_presets_and_an_install_finds_them(tmp_path):
    src = _source_copy(tmp_path)
    dist = tmp_path / "dist"
    build = "import sys; from setuptools import build_meta as b; print(b.build_sdist(sys.argv[1]))"
    subprocess.run([sys.executable, "-c", build, str(dist)], cwd=src, check=True, capture_output=True)
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        in_sdist = {Path(n).name for n in tar.getnames() if Path(n).parent.name == "presets"}
    assert set(PRESET_FILES) <= in_sdist

    # a wheel built from the sdist, as `pip install ocrtune-*.tar.gz` would
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(sdist), "-w", str(dist)],
        check=True, capture_output=True,
    )
    (wheel,) = dist.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"ocrtune/builtin_presets/{n}" for n in PRESET_FILES} <= names
    # the package list in pyproject.toml is explicit: every module of the checkout must be in it
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "ocrtune").rglob("*.py")}
    assert modules - names == set()

    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        check=True, capture_output=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = (
        "import sys, ocrtune; from ocrtune.presets.load import load_preset; from ocrtune.cli.app import main\n"
        "print(ocrtune.__file__); print(load_preset('baseline').path)\n"
        "sys.argv = ['ocrtune', 'compare', 'baseline', 'run8', '--json']; main()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("OCRTUNE_PRESETS", None)
    done = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    package, baseline = done.stdout.splitlines()[:2]
    assert Path(package).is_relative_to(site)
    assert Path(baseline) == site / "ocrtune" / "builtin_presets" / "baseline.yaml"
    assert "preset not found" not in done.stdout + done.stderr
