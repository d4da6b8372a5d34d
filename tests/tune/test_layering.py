"""The search core loads no torch: workers start fast and the core stays testable alone."""

from __future__ import annotations

import subprocess
import sys

PURE = ["ocrtune.tune.settings", "ocrtune.tune.stages", "ocrtune.tune.cleval_table", "ocrtune.tune.space",
        "ocrtune.tune.search", "ocrtune.tune.pool", "ocrtune.tune.cache", "ocrtune.tune.preset"]


def test_the_search_core_loads_no_torch_or_optuna():
    code = (
        "import importlib, sys\n"
        f"for m in {PURE!r}: importlib.import_module(m)\n"
        "print(sorted(h for h in ('torch', 'lightning', 'optuna', 'typer', 'rich') if h in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
