"""Import layering: the pure core never loads torch/Lightning/Optuna/Typer/rich/matplotlib; only
the sweep store package imports Optuna, only the report's figures matplotlib; the sweep's plan
imports neither the store nor the processes; nothing outside the CLI imports the CLI."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "ocrtune"

CORE = [
    "ocrtune.errors",
    "ocrtune.geometry",
    "ocrtune.presets.schema",
    "ocrtune.presets.load",
    "ocrtune.presets.write",
    "ocrtune.presets.compare",
    "ocrtune.comparable",
    "ocrtune.data.formats",
    "ocrtune.data.images",
    "ocrtune.data.layout",
    "ocrtune.data.synthetic",
    "ocrtune.data.stats",
    "ocrtune.data.transforms",
    "ocrtune.data.targets",
    "ocrtune.metrics",
    "ocrtune.metrics.files",
    "ocrtune.model.postprocess",
    "ocrtune.sweep.types",
    "ocrtune.sweep.plan.coupling",
    "ocrtune.sweep.plan.inert",
    "ocrtune.sweep.plan.planner",
    "ocrtune.sweep.plan.space",
    "ocrtune.sweep.plan.strategies",
    "ocrtune.sweep.report.model",
    "ocrtune.sweep.report.analysis",
    "ocrtune.train.rundir",
    "ocrtune.train.loader_workers",
]
HEAVY = ["torch", "lightning", "optuna", "typer", "rich", "timm", "matplotlib"]


def test_core_modules_load_no_framework():
    code = (
        "import importlib, sys\n"
        f"for m in {CORE!r}: importlib.import_module(m)\n"
        f"print(sorted(h for h in {HEAVY!r} if h in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def _imports(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    found = re.findall(r"^\s*(?:from\s+([\w.]+)\s+import|import\s+([\w.]+))", text, re.M)
    return {a or b for a, b in found}


def test_only_the_store_imports_optuna_and_nothing_imports_the_cli():
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).as_posix()
        mods = _imports(path)
        if any(m == "optuna" or m.startswith("optuna.") for m in mods):
            assert rel.startswith("sweep/store/"), f"{rel} imports optuna"
        if any(m == "matplotlib" or m.startswith("matplotlib.") for m in mods):
            assert rel == "sweep/report/figures.py", f"{rel} imports matplotlib"
        if rel.startswith("sweep/plan/"):  # pure planning: no store, no processes, no reports
            assert not any(m.startswith(("ocrtune.sweep.store", "ocrtune.sweep.run", "ocrtune.sweep.report"))
                           for m in mods), f"{rel} imports beyond the plan"
        if not rel.startswith("cli/") and rel != "__main__.py":  # ``python -m ocrtune`` is the CLI's entry
            assert not any(m.startswith("ocrtune.cli") for m in mods), f"{rel} imports the CLI"
