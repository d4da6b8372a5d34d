"""Options shared by every command that takes a preset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ocrtune.presets.load import check_presets_dirs


def _existing_folders(ctx: typer.Context, value: Optional[list[Path]]) -> Optional[list[Path]]:
    """A mistyped --presets-dir is refused at once, even by a command that ends up not searching."""
    if not ctx.resilient_parsing:  # shell completion parses half-typed lines: never refuse those
        check_presets_dirs(value or [])
    return value


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
        callback=_existing_folders,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of tables.")]
