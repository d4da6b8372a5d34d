"""A file's sha256, read in 1 MiB blocks (images, checkpoints, annotation files): what tells an
edited file from a touched one for the synth marker, k-fold's image identities and the map cache."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
