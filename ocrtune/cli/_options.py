"""Options shared by every command that takes a preset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

SetOption = Annotated[
    Optional[list[str]],
    typer.Option(
        "--set",
        "-s",
        help="Override a preset value, e.g. --set models.optimizer.lr=5e-4 (repeatable; YAML scalar).",
        show_default=False,
    ),
]
PresetsDirOption = Annotated[
    Optional[list[Path]],
    typer.Option(
        "--presets-dir",
        help="Extra folder to look for presets in (repeatable; also $OCRTUNE_PRESETS).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of tables.")]
