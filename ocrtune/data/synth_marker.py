"""Which folders ``data synth --force`` may replace: only a dataset it wrote, untouched since.

Every synthesised dataset carries ``ocrtune-synth.json`` with its parameters and the sha256
of every file synth wrote. Replacing is allowed only when those files are all there, all
unchanged, and nothing was added where synth writes (images/{train,val}/, jsons/, or a foreign
annotations/ folder). A folder without that marker, with a marker from before the hashes, or
with any changed, missing or added file is refused with one line naming the file: file names
that merely look synthetic say nothing about whose data it is.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ocrtune.errors import InputError
from ocrtune.filehash import sha256_file

__all__ = ["MARKER", "SPLITS", "ours", "sha256_bytes", "sha256_file", "marker_text", "check_destination"]

MARKER = "ocrtune-synth.json"
SPLITS = ("train", "val")
_HASHES = "sha256"  # key of the {relative path: hex digest} map in the marker
_REFUSE = ("--force replaces only a dataset synth wrote and nobody changed since: choose another folder, "
           "or delete the dataset yourself")


def ours(root: Path) -> list[Path]:
    """What synth writes into a dataset folder, and so what a replacement swaps out."""
    return [
        *(root / "images" / s for s in SPLITS),
        *(root / "jsons" / f"{s}.json" for s in SPLITS),
        root / MARKER,
    ]


def _foreign(root: Path) -> list[Path]:
    return [root / "annotations" / f"{s}.json" for s in SPLITS]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def marker_text(params: dict[str, Any], hashes: dict[str, str]) -> str:
    """The marker's JSON: parameters, then every written file's sha256 by relative path."""
    return json.dumps({**params, _HASHES: dict(sorted(hashes.items()))}, indent=1) + "\n"


def _read_hashes(out: Path) -> dict[str, str]:
    marker = out / MARKER
    try:
        hashes = json.loads(marker.read_text(encoding="utf-8"))[_HASHES]
        if not isinstance(hashes, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in hashes.items()
        ):
            raise TypeError
        return hashes
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise InputError(
            "holds no content hashes of the files synth wrote (written by an older ocrtune, or "
            f"edited), so changes to the dataset cannot be ruled out; {_REFUSE}",
            file=marker,
        ) from None


def _written_paths(out: Path) -> list[Path]:
    """Every file or folder now in the places synth writes to (not the marker)."""
    found: list[Path] = []
    for path in [*ours(out)[:-1], *_foreign(out)]:
        if path.is_dir():
            found.extend(sorted(path.rglob("*")))
        elif path.exists():
            found.append(path)
    return found


def _check_untouched(out: Path) -> None:
    """Raise, naming the first file that differs from what synth wrote into ``out``."""
    if not (out / MARKER).is_file():
        raise InputError(
            f"folder holds a dataset that ocrtune did not synthesise (no {MARKER}), which "
            "synth never replaces, even with --force: choose another folder, or delete this one yourself",
            file=out,
        )
    hashes = _read_hashes(out)
    for rel in sorted(hashes):
        path = out / rel
        if not path.is_file():
            raise InputError(f"missing: {MARKER} lists it as written by synth; {_REFUSE}", file=path)
        if sha256_file(path) != hashes[rel]:
            raise InputError(
                f"changed since ocrtune synthesised this dataset (its sha256 differs from {MARKER}); {_REFUSE}",
                file=path,
            )
    for path in _written_paths(out):
        rel = path.relative_to(out).as_posix()
        if rel not in hashes and not (path.is_dir() and any(k.startswith(rel + "/") for k in hashes)):
            raise InputError(f"not written by ocrtune synth (not listed in {MARKER}); {_REFUSE}", file=path)


def check_destination(out: Path, overwrite: bool) -> None:
    """Refuse a file, any dataset synth did not write or that changed since, and (without
    ``overwrite``) an untouched one of our own."""
    if out.exists() and not out.is_dir():
        raise InputError("not a directory; give a folder for the dataset", file=out)
    if not any(p.exists() for p in [*ours(out), *_foreign(out)]):
        return
    try:
        _check_untouched(out)
    except OSError as exc:  # unreadable: cannot be shown to be ours
        raise InputError(f"cannot be read ({exc.strerror or exc}); {_REFUSE}", file=exc.filename or out) from None
    if not overwrite:
        raise InputError("folder already holds a dataset (overwrite it with --force)", file=out)
