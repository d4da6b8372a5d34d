"""Annotation formats as typed records, with located errors and round-tripping writers.

One import point: ``from ocrtune.data.formats import read_json, sanitize, Word``. Each
format lives in its own module underneath; none of them imports torch.
"""

from __future__ import annotations

from ocrtune.data.formats.competition_json import (
    KeyIndex,
    dumps_json,
    loads_json,
    locate_key,
    read_json,
    to_json_obj,
    write_json,
)
from ocrtune.data.formats.icdar import (
    dumps_icdar_txt,
    read_icdar_dir,
    read_icdar_txt,
    write_icdar_dir,
    write_icdar_txt,
)
from ocrtune.data.formats.records import (
    DONT_CARE,
    Annotations,
    ImageAnnotation,
    Word,
    format_number,
)
from ocrtune.data.formats.submission_csv import (
    CSV_HEADER,
    dumps_submission_csv,
    read_submission_csv,
    write_submission_csv,
)
from ocrtune.data.formats.validate import PROBLEM_KINDS, DataProblem, sanitize

__all__ = [
    "CSV_HEADER",
    "DONT_CARE",
    "PROBLEM_KINDS",
    "Annotations",
    "DataProblem",
    "ImageAnnotation",
    "KeyIndex",
    "Word",
    "dumps_icdar_txt",
    "dumps_json",
    "dumps_submission_csv",
    "format_number",
    "loads_json",
    "locate_key",
    "read_icdar_dir",
    "read_icdar_txt",
    "read_json",
    "read_submission_csv",
    "sanitize",
    "to_json_obj",
    "write_icdar_dir",
    "write_icdar_txt",
    "write_json",
    "write_submission_csv",
]
