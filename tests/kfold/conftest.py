"""A tiny labelled data set for the k-fold tests: 12 synthetic receipts (10 train, 2 val, in
their own split folders) and a byte-identical copy of a train image in the val split."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ocrtune.data.synthetic import synthesize

DUP, ORIGINAL = "copy_of_00000.jpg", "receipt_00000.jpg"


def make_data(root: Path) -> Path:
    synthesize(root, n=12, seed=0, size=128)
    shutil.copy(root / "images" / "train" / ORIGINAL, root / "images" / "val" / DUP)
    train = json.loads((root / "jsons" / "train.json").read_text())
    val = json.loads((root / "jsons" / "val.json").read_text())
    val["images"][DUP] = train["images"][ORIGINAL]
    (root / "jsons" / "val.json").write_text(json.dumps(val))
    return root


@pytest.fixture(scope="session")
def kfold_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared, read only: tests that change data copy it first."""
    return make_data(tmp_path_factory.mktemp("kfold") / "data")
