"""``ocrtune sweep import``: results of a sweep run elsewhere (a W&B "export runs" CSV, a
spreadsheet, JSON records) as a new ocrtune study, so ``sweep status`` and ``sweep report``
read them like any sweep (see docs/sweeps.md, "Importing sweeps run elsewhere").

The file is read and checked by pure functions before the study exists, so a mistake is one
located line (``FILE:LINE:COL key: message``, exit 2) and never half an import:

- ``read_table``: the file as headers and records, every cell with its line and column (CSV:
  the cell's own; JSON: the value's). Nested JSON objects (and CSV cells holding a whole
  config section as a mapping) become dotted columns.
- ``plan_columns``: which column is the run name, its state, the metric, the epochs and
  runtime, and which preset key each config column sets (``--column`` maps other names; a
  ``config.`` prefix is dropped). Other columns are ignored, except those that look like a
  preset key and are not one.
- ``check_values``: the space of observed values is validated by ``plan.space.parse_space``
  against the preset (unknown keys with a did-you-mean), and every row's values by the
  preset's own rules, as that run set them together.
- ``read_scores``: the metric per row, an H-mean in percent turned into a fraction (a column
  that mixes percent and fractions is refused at the first fraction).
- ``import_rows``: one ``ImportedRow`` per run, with its status (failed when it has no metric
  value or did not finish) and score.

``import_sweep`` runs them and writes the study: the settings, one plan holding every row,
and one finished trial per row (``Store.add_finished``).
"""

from __future__ import annotations

import ast
import bisect
import json
import json.decoder
import json.scanner
import math
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

from pydantic import ValidationError

from ocrtune.errors import InputError, Problem
from ocrtune.presets.load import Origin, did_you_mean, problem_for, show_path, to_plain
from ocrtune.presets.schema import Preset, field_names
from ocrtune.sweep.plan.space import Dim, Space, leaf_kind, parse_space, set_dotted
from ocrtune.sweep.types import Batch, Direction, ImportedSearch, Status, SweepConfig, SweepSummary

Unit = Literal["auto", "percent", "fraction"]

# Preset sections (a column whose first part is one of these means a preset key).
SECTIONS: tuple[str, ...] = tuple(n for n in field_names(()) or [] if field_names((n,)) is not None)
NAME_COLUMNS = ("name",)
STATE_COLUMNS = ("state",)
EPOCH_COLUMNS = ("trainer.max_epochs", "epochs", "_step")  # in this order of trust
RUNTIME_COLUMNS = ("runtime", "_runtime")
FAILED_STATES = ("crashed", "failed", "killed")
MISSING_TEXT = {"", "-", "nan", "none", "null", "n/a", "na"}
MAX_PROBLEMS = 20


# --- what the file holds ---------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One value of the file, parsed (numbers, booleans, lists, text; None when empty), and
    where it is (1-based; None where unknown)."""

    value: Any
    line: int | None = None
    column: int | None = None
    text: str | None = None  # the cell as written (CSV)


@dataclass(frozen=True)
class Header:
    name: str
    line: int | None = None
    column: int | None = None


@dataclass(frozen=True)
class Record:
    """One run: its cells by column name, and the line it starts on (a JSON record: its index
    is ``number``)."""

    number: int
    line: int | None
    cells: Mapping[str, Cell]


@dataclass(frozen=True)
class Table:
    file: str  # as messages show it
    headers: tuple[Header, ...]
    records: tuple[Record, ...]

    def header(self, name: str) -> Header:
        return next((h for h in self.headers if h.name == name), Header(name))


@dataclass(frozen=True)
class Columns:
    """What each column of the file means. ``keys``: preset key -> column; ``suspect``:
    columns that look like preset keys and are not (refused with a did-you-mean)."""

    metric: str
    keys: dict[str, str]
    suspect: dict[str, str] = field(default_factory=dict)
    name: str | None = None
    state: str | None = None
    epochs: str | None = None
    runtime: str | None = None
    ignored: tuple[str, ...] = ()


@dataclass(frozen=True)
class Scores:
    """The metric per record (in the stored unit; None: no usable value) and what was done to
    the unit, for people (None when nothing)."""

    values: tuple[float | None, ...]
    unit: Literal["fraction", "percent", "other"]
    note: str | None
    warnings: tuple[str, ...] = ()  # located lines, accepted but worth a look (stderr)


@dataclass(frozen=True)
class ImportedRow:
    """One imported run, as it will be stored."""

    number: int  # the record's index (0-based), also its plan slot
    line: int | None  # where it starts in the file
    name: str | None
    state: str | None
    params: dict[str, Any]
    status: Status
    score: float | None
    error: str | None = None
    epochs: int | None = None
    runtime_s: float | None = None


@dataclass(frozen=True)
class ImportRequest:
    """The ``ocrtune sweep import`` options."""

    file: Path
    name: str
    preset: str
    metric: str
    columns: tuple[str, ...] = ()  # SHORT=dotted.key
    direction: str | None = None
    unit: Unit = "auto"
    storage: str | None = None
    runs_dir: Path = Path("runs")
    presets_dir: tuple[str | Path, ...] = ()
    force: bool = False


@dataclass(frozen=True)
class ImportOutcome:
    """What the import did, for the command's line."""

    file: str
    name: str
    storage: str
    metric: str
    column: str
    rows: int
    failed: int
    keys: tuple[str, ...]
    unit_note: str | None
    ignored: tuple[str, ...]
    warnings: tuple[str, ...] = ()

    def line(self) -> str:
        metric = f"{self.column} recorded as {self.metric}" if self.column != self.metric else f"metric {self.metric}"
        unit = f", {self.unit_note}" if self.unit_note else ""
        return (f"imported {self.rows} runs from {self.file} as sweep {self.name}: {self.rows - self.failed} "
                f"completed, {self.failed} failed; {metric}{unit}; study {self.storage}")


# --- reading the file ------------------------------------------------------------------------


def read_table(path: Path, shown: str | None = None) -> Table:
    """The file as a ``Table``: JSON (a list of records; JSON lines too) when it starts with
    ``[`` or ``{``, else CSV (comma, semicolon or tab separated; the first line names the
    columns)."""
    shown = shown or show_path(path)
    if not path.is_file():
        raise InputError("file not found" if not path.exists() else "not a file", file=shown)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8 text (byte {e.start}); export the file as UTF-8 CSV or JSON", file=shown) from None
    head = text.lstrip()[:1]
    table = _read_json(text, shown) if head in ("[", "{") else _read_csv(text, shown, path.suffix.lower())
    if not table.records:
        raise InputError("holds no runs (no rows after the header)" if head not in ("[", "{") else "holds no runs",
                         file=shown, line=1, column=1)
    return _expand_sections(table)


def _read_csv(text: str, file: str, suffix: str) -> Table:
    lines = _LINE.findall(text)
    first = next((ln for ln in lines if ln.strip()), "")
    delim = "\t" if suffix == ".tsv" else max((",", ";", "\t"), key=lambda d: _outside_quotes(first).count(d))
    rows = _csv_rows(lines, delim, file)
    if not rows:
        raise InputError("is empty", file=file)
    _, head = rows[0]
    names = [text_.strip() for text_, _, _ in head]
    headers: dict[str, Header] = {}
    for name, (_, line, col) in zip(names, head):
        if name and name not in headers:  # a repeated header: the first one counts
            headers[name] = Header(name, line, col)
    records = []
    for number, (rline, cells) in enumerate(rows[1:]):
        extra = next((c for c in cells[len(names):] if c[0].strip()), None)
        if extra is not None:
            raise InputError(f"this row has {len(cells)} cells, the header {len(names)}", file=file, line=extra[1],
                             column=extra[2])
        row: dict[str, Cell] = {}
        for (raw, line, col), name in zip(cells, names):
            if name and name not in row:
                row[name] = Cell(_csv_value(raw, decimal_comma=delim == ";"), line, col, raw)
        records.append(Record(number, rline, row))
    return Table(file, tuple(headers.values()), tuple(records))


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\n|\r)|[^\r\n]+$")  # CSV breaks lines at CR, LF, CRLF only


def _outside_quotes(line: str) -> str:
    return re.sub(r'"(?:[^"]|"")*"', "", line)


def _csv_rows(lines: Sequence[str], delim: str, file: str) -> list[tuple[int, list[tuple[str, int, int]]]]:
    """CSV records as (line, [(text, line, column)]), 1-based. A quoted cell may hold the
    separator, doubled quotes and line breaks; blank lines are skipped."""
    out = []
    i = 0
    while i < len(lines):
        start = i + 1
        if not lines[i].strip():
            i += 1
            continue
        if '"' not in lines[i]:  # the common case: split the line
            cells, col = [], 1
            for part in lines[i].rstrip("\r\n").split(delim):
                cells.append((part, start, col))
                col += len(part) + 1
            out.append((start, cells))
            i += 1
            continue
        cells, buf, in_q, at_start = [], [], False, True
        line, cell_at = start, (start, 1)
        while True:
            if i >= len(lines):
                raise InputError("a quoted cell is never closed", file=file, line=cell_at[0], column=cell_at[1])
            s, j = lines[i], 0
            while j < len(s):
                c = s[j]
                if in_q and c == '"' and s[j + 1:j + 2] == '"':
                    buf.append('"')  # a doubled quote inside quotes
                    j += 1
                elif c == '"' and (in_q or at_start):
                    in_q, at_start = not in_q, False
                elif in_q:
                    buf.append(c)
                elif c == delim:
                    cells.append(("".join(buf), *cell_at))
                    buf, at_start, cell_at = [], True, (line, j + 2)
                elif c in "\r\n":
                    break
                else:
                    buf.append(c)
                    at_start = at_start and c.isspace()
                j += 1
            i += 1
            if not in_q:
                break
            line += 1
        cells.append(("".join(buf), *cell_at))
        out.append((start, cells))
    return out


def _csv_value(raw: str, decimal_comma: bool = False) -> Any:
    """A CSV cell as a value: empty is None, numbers, true/false, a JSON/Python list or
    mapping, else the text. ``decimal_comma`` (a semicolon-separated file, as spreadsheets
    write them where the comma is the decimal mark): ``0,001`` is 0.001."""
    s = raw.strip()
    if not s:
        return None
    if decimal_comma and re.fullmatch(r"[-+]?\d*,\d+(?:[eE][-+]?\d+)?", s):
        s = s.replace(",", ".")
    low = s.lower()
    if low in ("true", "false"):
        return low == "true"
    if re.fullmatch(r"[-+]?\d+", s):
        return int(s)
    try:
        return float(s)
    except ValueError:
        pass
    if s[0] in "[{(":
        got = _literal(s)
        if got is not None:
            return got
    return s


def _literal(s: str) -> Any:
    """``[0.8, 1.2]`` or ``{'lr': 0.001}`` (JSON, or Python as W&B writes a dict), else None."""
    for parse in (json.loads, ast.literal_eval):
        try:
            v = parse(s)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        if isinstance(v, tuple):
            v = list(v)
        if isinstance(v, (list, dict)):
            return v
    return None


class _Located(dict):
    """A JSON object that remembers the offsets of its keys and values."""

    offsets: dict[str, tuple[int, int]]


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_WS = re.compile(r"\s*")


def _key_offsets(s: str, start: int, end: int) -> dict[str, tuple[int, int]]:
    """Offsets (key, value) of the keys directly inside the object ``s[start:end]``."""
    out: dict[str, tuple[int, int]] = {}
    depth, i, want_key = 0, start + 1, True
    while i < end:
        c = s[i]
        if c == '"':
            m = _STRING.match(s, i)
            j = m.end() if m else end
            if depth == 0 and want_key:
                k = _WS.match(s, j).end() + 1  # past the colon
                k = _WS.match(s, k).end()
                out.setdefault(json.loads(s[i:j]), (i, k))
                want_key = False
            i = j
            continue
        if c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
        elif c == "," and depth == 0:
            want_key = True
        i += 1
    return out


def _load_json(text: str) -> Any:
    """``json.loads`` whose objects are ``_Located`` (the pure-Python scanner, so objects can
    be told where they are)."""
    decoder = json.JSONDecoder()

    def parse_object(s_and_end: tuple[str, int], *args: Any) -> tuple[Any, int]:
        s, end = s_and_end
        obj, new_end = json.decoder.JSONObject(s_and_end, *args)
        located = _Located(obj)
        located.offsets = _key_offsets(s, end - 1, new_end)
        return located, new_end

    decoder.parse_object = parse_object  # type: ignore[attr-defined]
    decoder.scan_once = json.scanner.py_make_scanner(decoder)  # type: ignore[attr-defined]
    return decoder.decode(text)


def _read_json(text: str, file: str) -> Table:
    starts = [0] + [m.end() for m in re.finditer(r"\n", text)]

    def at(offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(starts, offset)
        return line, offset - starts[line - 1] + 1

    try:
        doc = _load_json(text)
    except json.JSONDecodeError as e:
        if text.lstrip().startswith("{") and "\n" in text.strip():
            doc = _json_lines(text, file)  # JSON lines: one record a line
        else:
            raise InputError(f"not valid JSON: {e.msg}", file=file, line=e.lineno, column=e.colno) from None
    if isinstance(doc, Mapping) and isinstance(doc.get("runs"), list):
        doc = doc["runs"]
    if not isinstance(doc, list):
        raise InputError("expected a list of run records ([{...}, {...}])", file=file, line=1, column=1)
    headers: dict[str, Header] = {}
    records = []
    for number, rec in enumerate(doc):
        if not isinstance(rec, Mapping):
            raise InputError(f"record {number + 1} is not an object of column: value", file=file)
        cells: dict[str, Cell] = {}
        for key, (value, koff, voff) in _flatten(rec, ()).items():
            kl, kc = at(koff) if koff is not None else (None, None)
            vl, vc = at(voff) if voff is not None else (None, None)
            if key not in cells:
                cells[key] = Cell(value, vl, vc)
            headers.setdefault(key, Header(key, kl, kc))
        first = min((c.line for c in cells.values() if c.line is not None), default=None)
        records.append(Record(number, first, cells))
    return Table(file, tuple(headers.values()), tuple(records))


def _json_lines(text: str, file: str) -> list[Any]:
    out = []
    offset = 0
    for n, line in enumerate(text.splitlines(keepends=True), start=1):
        if line.strip():
            try:
                rec = _load_json(line)
            except json.JSONDecodeError as e:
                raise InputError(f"not valid JSON: {e.msg}", file=file, line=n, column=e.colno) from None
            _shift(rec, offset)
            out.append(rec)
        offset += len(line)
    return out


def _shift(v: Any, offset: int) -> None:
    if isinstance(v, _Located):
        v.offsets = {k: (a + offset, b + offset) for k, (a, b) in v.offsets.items()}
        for x in v.values():
            _shift(x, offset)
    elif isinstance(v, list):
        for x in v:
            _shift(x, offset)


def _flatten(obj: Mapping[str, Any], prefix: tuple[str, ...]) -> dict[str, tuple[Any, int | None, int | None]]:
    """Nested objects as dotted keys: value, key offset, value offset. W&B's ``{value: x,
    desc: ...}`` config entries are their value."""
    out: dict[str, tuple[Any, int | None, int | None]] = {}
    offsets = getattr(obj, "offsets", {})
    for k, v in obj.items():
        koff, voff = offsets.get(k, (None, None))
        path = (*prefix, str(k))
        if isinstance(v, Mapping) and v and set(v) <= {"value", "desc"} and "value" in v:
            voff = getattr(v, "offsets", {}).get("value", (None, voff))[1]
            v = v["value"]
        if isinstance(v, Mapping):
            out.update(_flatten(v, path))  # an empty object sets nothing
        else:
            out[".".join(path)] = (to_plain(v), koff, voff)
    return out


def _expand_sections(table: Table) -> Table:
    """A column named by a preset section (``models``, ``config.models``) or ``config`` whose
    cells hold mappings (W&B writes nested config that way) becomes one dotted column per key,
    at the cell's place."""
    targets = [h for h in table.headers if _strip(h.name) in SECTIONS or h.name == "config"]
    if not targets:
        return table
    headers = [h for h in table.headers if h not in targets]
    known = {h.name for h in headers}
    records = []
    for rec in table.records:
        cells = {k: c for k, c in rec.cells.items() if k not in {h.name for h in targets}}
        for h in targets:
            cell = rec.cells.get(h.name)
            if cell is None or cell.value is None:
                continue
            if not isinstance(cell.value, Mapping):
                raise InputError(f"column '{h.name}' holds a preset section, so each cell must be a mapping such as "
                                 f"{{'optimizer': {{'lr': 0.001}}}} (got {cell.text if cell.text is not None else cell.value!r})",
                                 file=table.file, line=cell.line, column=cell.column)
            prefix = () if h.name == "config" else (h.name,)
            for key, (value, _, _) in _flatten(cell.value, prefix).items():
                cells.setdefault(key, Cell(value, cell.line, cell.column))
                if key not in known:
                    known.add(key)
                    headers.append(Header(key, h.line, h.column))
        records.append(Record(rec.number, rec.line, cells))
    return Table(table.file, tuple(headers), tuple(records))


# --- what the columns mean -------------------------------------------------------------------


def _strip(name: str) -> str:
    return name[len("config."):] if name.startswith("config.") else name


def parse_mappings(items: Iterable[str]) -> dict[str, str]:
    """``--column SHORT=dotted.key`` options as {column: key}."""
    out: dict[str, str] = {}
    for item in items:
        short, sep, key = item.partition("=")
        short, key = short.strip(), key.strip()
        if not sep or not short or not key:
            raise InputError(f"expected SHORT=dotted.key such as lr=models.optimizer.lr (got {item!r})", key="--column")
        if short in out and out[short] != key:
            raise InputError(f"column '{short}' is mapped twice ({out[short]} and {key})", key="--column")
        out[short] = _strip(key)
    return out


def plan_columns(table: Table, metric: str, mappings: Mapping[str, str] | None = None) -> Columns:
    """What each column means (see the module doc). Problems: a ``--column`` or ``--metric``
    naming no column, two columns setting one key."""
    names = [h.name for h in table.headers]
    maps: dict[str, str] = {}
    for short, key in (mappings or {}).items():
        col = short if short in names else f"config.{short}" if f"config.{short}" in names else None
        if col is None:
            raise InputError(f"no column '{short}' in {table.file}" + did_you_mean(short, names), key="--column")
        maps[col] = key
    if metric not in names:
        near = did_you_mean(metric, names) or f"; its columns are {', '.join(names[:12])}" + (" ..." if len(names) > 12 else "")
        raise InputError(f"no column '{metric}' in {table.file}{near}", key="--metric")
    if metric in maps:
        raise InputError(f"column '{metric}' is the metric, so it cannot also set {maps[metric]}", key="--column")
    keys: dict[str, str] = {}
    suspect: dict[str, str] = {}
    ignored: list[str] = []
    special: dict[str, str | None] = {"name": None, "state": None, "epochs": None, "runtime": None}
    epoch_rank = len(EPOCH_COLUMNS)
    for h in table.headers:
        n = h.name
        if n == metric:
            continue
        if n in maps:
            key = maps[n]
        else:
            key = _strip(n)
            low = n.lower().removeprefix("summary.")
            if low in NAME_COLUMNS and special["name"] is None:
                special["name"] = n
                continue
            if low in STATE_COLUMNS and special["state"] is None:
                special["state"] = n
                continue
            if low in RUNTIME_COLUMNS and special["runtime"] is None:
                special["runtime"] = n
                continue
        run_key = key.removeprefix("summary.")
        if run_key in EPOCH_COLUMNS and EPOCH_COLUMNS.index(run_key) < epoch_rank:
            special["epochs"], epoch_rank = n, EPOCH_COLUMNS.index(run_key)
        if leaf_kind(key) is not None or n in maps:
            target = keys if leaf_kind(key) is not None else suspect
        elif "." in key and key.split(".")[0] in SECTIONS:
            target = suspect
        else:
            if n != special["epochs"]:
                ignored.append(n)
            continue
        if key in keys or key in suspect:
            other = table.header(keys.get(key) or suspect[key])
            h2 = table.header(n)
            raise InputError(f"column '{n}' sets {key}, as column '{other.name}' does"
                             + (f" (line {other.line}, column {other.column})" if other.line else ""),
                             file=table.file, line=h2.line, column=h2.column, key=key)
        target[key] = n
    return Columns(metric=metric, keys=keys, suspect=suspect, name=special["name"], state=special["state"],
                   epochs=special["epochs"], runtime=special["runtime"], ignored=tuple(ignored))


# --- checking the values ---------------------------------------------------------------------


class _LC:
    """ruamel's ``.lc`` (0-based positions) for a space built from the file, so that
    ``parse_space`` locates its problems in the file."""

    def __init__(self, keys: dict[str, tuple[int, int]], values: dict[str, tuple[int, int]]) -> None:
        self._keys, self._values = keys, values

    def key(self, k: str) -> tuple[int, int]:
        return self._keys[k]

    def value(self, k: str) -> tuple[int, int]:
        return self._values[k]


class _Where(dict):
    """A mapping that knows where its keys and values are in the imported file."""

    def __init__(self, items: Mapping[str, Any], keys: Mapping[str, Cell | Header] = {},
                 values: Mapping[str, Cell | Header] = {}) -> None:
        super().__init__(items)
        self.lc = _LC(_zero(keys), _zero(values))


def _zero(where: Mapping[str, Cell | Header]) -> dict[str, tuple[int, int]]:
    return {k: (c.line - 1, (c.column or 1) - 1) for k, c in where.items() if c.line is not None}


def _coerce(key: str, v: Any) -> Any:
    """A file value as the preset key takes it: whole floats on int keys as ints (spreadsheets
    write 16.0), ints on float keys as floats, lists on choice keys kept."""
    kind = leaf_kind(key)
    if kind == "int" and isinstance(v, float) and v.is_integer():
        return int(v)
    if kind == "float" and isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    if kind == "bool" and isinstance(v, str) and v.strip().lower() in ("true", "false"):
        return v.strip().lower() == "true"
    return v


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _spec(key: str, cells: Sequence[Cell], header: Header) -> _Where:
    """The space entry of one column, from its observed values: a range for numbers (log when
    all are > 0 and span a factor of 20 or more; integer keys as int_uniform), listed values
    otherwise, one value when all rows agree."""
    kind = leaf_kind(key)
    vals = [(_coerce(key, c.value), c) for c in cells]
    distinct: dict[str, tuple[Any, Cell]] = {}
    for v, c in vals:
        distinct.setdefault(json.dumps(v, sort_keys=True, default=str), (v, c))
    if len(distinct) == 1 or kind is None:
        v, c = next(iter(distinct.values()))
        return _Where({"value": v}, {}, {"value": c})
    nums = all(_number(v) for v, _ in vals)
    if nums and kind in ("float", "int") and (kind == "float" or all(isinstance(v, int) for v, _ in vals)):
        lo = min(vals, key=lambda vc: vc[0])
        hi = max(vals, key=lambda vc: vc[0])
        if kind == "int":
            dist = "int_uniform"
        else:
            dist = "log_uniform" if lo[0] > 0 and hi[0] / lo[0] >= 20 else "uniform"
        return _Where({"distribution": dist, "min": lo[0], "max": hi[0]}, {},
                      {"distribution": header, "min": lo[1], "max": hi[1]})
    return _Where({"values": [v for v, _ in distinct.values()]}, {}, {"values": next(iter(distinct.values()))[1]})


_REJECTED = re.compile(r"^(min|max|value|values\[\d+\]) .* is rejected by the preset")


def check_values(table: Table, cols: Columns, preset: Preset) -> tuple[Space, list[dict[str, Any]]]:
    """The validated space of the observed values, and each record's values (empty cells
    left out: that run did not set the key). Every config column's key is checked against the
    schema by ``parse_space``; every row's values against the preset's rules as that run set
    them together (so a cross-key rule such as ``eta_min < lr`` is checked per run, not for
    combinations no run had)."""
    file = table.file
    columns = {**cols.keys, **cols.suspect}
    cells = {k: [r.cells[c] for r in table.records if c in r.cells and r.cells[c].value is not None]
             for k, c in columns.items()}
    empty = [k for k, cs in cells.items() if not cs and k in cols.keys]  # no run set it: not swept
    if len(empty) == len(cells):
        names = ", ".join(cols.ignored[:8]) + (" ..." if len(cols.ignored) > 8 else "")
        raise InputError("no column sets a preset key (such as models.optimizer.lr), so there is nothing to import"
                         + (f"; map yours with --column SHORT=dotted.key (columns: {names})" if names else ""),
                         file=file, line=1, column=1)
    specs = {k: _spec(k, cs, table.header(columns[k])) if cs else _Where({"value": None})
             for k, cs in cells.items() if k not in empty}
    doc = _Where(specs, {k: table.header(columns[k]) for k in specs})
    space: Space | None = None
    found: list[Problem] = []
    try:
        space = parse_space(doc, base=preset, file=file)
    except InputError as e:
        # key problems stay; a rejected value is found per row below, at its own cell
        found = [p for p in e.problems if not _REJECTED.match(p.message)]
    params = []
    row_probs: dict[tuple[str | None, str], Problem] = {}
    base = preset.model_dump()
    for rec in table.records:
        mine: dict[str, Any] = {}
        origins: dict[tuple[str, ...], Origin] = {}
        for key, col in cols.keys.items():
            c = rec.cells.get(col)
            if c is None or c.value is None or key in empty:
                continue
            mine[key] = _coerce(key, c.value)
            origins[tuple(key.split("."))] = Origin(file, c.line, c.column, rank=1)
        params.append(mine)
        if not mine:
            continue
        data = base
        for key, v in mine.items():
            data = set_dotted(data, key, v)
        try:
            Preset.model_validate(data)
        except ValidationError as err:
            for e in err.errors():
                p = problem_for(e, data, origins, file)
                row_probs.setdefault((p.key, p.message), p)
    probs = found + list(row_probs.values())
    if probs:
        probs.sort(key=lambda p: (p.line or 0, p.column or 0))
        more = len(probs) - MAX_PROBLEMS
        probs = probs[:MAX_PROBLEMS] + ([Problem(f"... and {more} more problems", file)] if more > 0 else [])
        raise InputError(problems=probs)
    if space is None:  # only range ends rejected in combinations no run had: the runs are fine
        space = Space(tuple(_dim(k, s) for k, s in specs.items()), file)
    return space, params


def _dim(key: str, spec: Mapping[str, Any]) -> Dim:
    leaf = leaf_kind(key) or "other"
    if "value" in spec:
        return Dim(key, "fixed", leaf, values=(spec["value"],))
    if "values" in spec:
        return Dim(key, "choice", leaf, values=tuple(spec["values"]))
    kind = spec["distribution"]
    return Dim(key, kind, leaf, spec["min"], spec["max"])


# --- the metric ------------------------------------------------------------------------------


def pick_metric(column: str, direction: str | None) -> tuple[str, Direction]:
    """The sweep metric a column is recorded as: ``val_loss`` (minimised) when its name says
    loss or ``--direction minimize`` is given, else ``hmean`` (maximised)."""
    if direction not in (None, "maximize", "minimize"):
        raise InputError(f"must be maximize or minimize (got {direction!r})", key="--direction")
    says_loss = "loss" in column.lower()
    if says_loss and direction == "maximize":
        raise InputError(f"'{column}' is a loss, which ocrtune minimises; drop --direction maximize", key="--direction")
    if not says_loss and direction == "minimize" and re.search(r"hmean|f1|fscore|f_score", column.lower()):
        raise InputError(f"'{column}' is an H-mean, which ocrtune maximises; drop --direction minimize", key="--direction")
    if says_loss or direction == "minimize":
        return "val_loss", "minimize"
    return "hmean", "maximize"


def _metric_value(cell: Cell | None) -> tuple[float | None, bool]:
    """(number, written with %) of a metric cell; None for empty, NaN, '-', text."""
    if cell is None:
        return None, False
    v = cell.value
    if isinstance(v, str):
        s = v.strip()
        if s.endswith("%"):
            try:
                f = float(s[:-1])
            except ValueError:
                return None, False
            return (f if math.isfinite(f) else None), True
        if s.lower() in MISSING_TEXT:
            return None, False
        return None, False
    return (float(v) if _number(v) else None), False


def read_scores(table: Table, column: str, metric: str, unit: Unit = "auto") -> Scores:
    """The metric of every record, H-mean as a fraction 0..1: a column with a value above 1
    and none above 100 (or written with %, or ``--percent``) is percent and divided by 100.
    A value in (0, 1] (not written with %) in a column found to be percent is most likely a
    fraction: refused at its cell, unless ``--percent`` says so (then kept as a warning)."""
    file = table.file
    got = [_metric_value(r.cells.get(column)) for r in table.records]
    if metric != "hmean":
        if unit != "auto":
            raise InputError(f"applies to an H-mean metric only ('{column}' is read as {metric})",
                             key="--percent" if unit == "percent" else "--fraction")
        return Scores(tuple(v for v, _ in got), "other", None)
    cells = [(v, r.cells.get(column)) for (v, _), r in zip(got, table.records)]
    finite = [(v, c) for v, c in cells if v is not None]
    written_pct = any(p for _, p in got)

    def refuse(v: float, c: Cell | None, why: str) -> InputError:
        return InputError(why, file=file, line=c.line if c else None, column=c.column if c else None, key=column)

    neg = next(((v, c) for v, c in finite if v < 0), None)
    if neg is not None:
        raise refuse(*neg, f"an H-mean cannot be negative (got {neg[0]:g})")
    top = max(finite, key=lambda vc: vc[0], default=None)
    if unit == "fraction":
        if top is not None and top[0] > 1:
            raise refuse(*top, f"is {top[0]:g}, above 1, but --fraction says the column holds fractions 0..1 "
                         "(drop --fraction if it holds percent)")
        percent, why = False, ""
    elif unit == "percent" or written_pct:
        if top is not None and top[0] > 100:
            raise refuse(*top, f"is {top[0]:g}, above 100%")
        percent, why = True, "--percent" if unit == "percent" else "written with %"
    else:
        if top is not None and top[0] > 100:
            raise refuse(*top, f"is {top[0]:g}: an H-mean is a fraction 0..1 or a percent 0..100")
        percent = top is not None and top[0] > 1
        why = f"values up to {top[0]:g}" if top is not None else ""
    if not percent:
        return Scores(tuple(v for v, _ in got), "fraction", None)
    warnings: tuple[str, ...] = ()
    # A value in (0, 1] among percent is most likely a fraction written by another export:
    # read as percent it would become 100 times smaller, silently.
    mixed = next(((v, c) for (v, pct), c in zip(got, (r.cells.get(column) for r in table.records))
                  if v is not None and 0 < v <= 1 and not pct), None)
    if mixed is not None:
        v, c = mixed
        said = f"values up to {top[0]:g}" if top is not None and not written_pct else "other values written with %"
        if unit == "percent":
            warnings = (str(Problem(f"the column mixes percent and fractions: {v:g} is read as {v:g}% "
                                    f"({v / 100:g}) because of --percent; fix the file if it is a fraction",
                                    file, c.line if c else None, c.column if c else None, column)),)
        else:
            raise refuse(v, c, f"the column mixes percent and fractions: {said} read as percent, but {v:g} looks "
                               f"like a fraction (it would become {v / 100:g}); fix the file, or pass --percent "
                               "or --fraction to say which the column holds")
    values = tuple(None if v is None else float(f"{v / 100:.12g}") for v, _ in got)
    note = f"converted from percent to a fraction 0..1 (divided by 100; {why})"
    return Scores(values, "percent", note, warnings)


# --- the rows --------------------------------------------------------------------------------


def _text(cell: Cell | None) -> str | None:
    if cell is None or cell.value is None:
        return None
    return str(cell.text.strip() if cell.text is not None else cell.value)


def import_rows(table: Table, cols: Columns, params: Sequence[Mapping[str, Any]], scores: Scores) -> list[ImportedRow]:
    """One row per run. Failed: a State other than finished (crashed, failed, killed ...;
    running: "was still running when exported"), or no usable metric value."""
    rows = []
    for rec, mine, score in zip(table.records, params, scores.values):
        state = _text(rec.cells.get(cols.state)) if cols.state else None
        s = (state or "").strip().lower()
        if s == "running":
            status, error = Status.FAILED, "was still running when exported"
        elif s and s != "finished":
            status, error = Status.FAILED, f"state {s} in the file"
        elif score is None:
            status, error = Status.FAILED, f"no {cols.metric} in the file"
        else:
            status, error = Status.COMPLETED, None
        epochs = _epochs_of(rec.cells.get(cols.epochs), cols.epochs) if cols.epochs else None
        runtime = rec.cells.get(cols.runtime).value if cols.runtime and rec.cells.get(cols.runtime) else None  # type: ignore[union-attr]
        rows.append(ImportedRow(
            number=rec.number, line=rec.line, name=_text(rec.cells.get(cols.name)) if cols.name else None, state=state,
            params=dict(mine), status=status, score=score if status == Status.COMPLETED else None, error=error,
            epochs=epochs, runtime_s=float(runtime) if _number(runtime) and runtime >= 0 else None))
    return rows


def _epochs_of(cell: Cell | None, column: str | None) -> int | None:
    v = cell.value if cell is not None else None
    if not _number(v) or v < 0:
        return None
    steps = column is not None and _strip(column).removeprefix("summary.") == "_step"
    n = int(round(v)) + (1 if steps else 0)  # W&B counts steps from 0
    return n if n >= 1 else None


# --- the entry point -------------------------------------------------------------------------


def import_sweep(request: ImportRequest, on_done: Callable[[ImportOutcome], None] | None = None,
                 on_warning: Callable[[str], None] | None = None) -> SweepSummary:
    """Read and check ``request.file``, then write it as the new sweep ``request.name``: its
    settings (``ImportedSearch``), one plan holding every row, one finished trial per row,
    and the finished mark. An existing sweep of that name is refused unless ``force`` (then
    it is dropped first). Returns the sweep's summary; ``on_done`` gets what was done.
    ``on_warning`` gets each located line that was accepted but deserves a look (such as a
    fraction in a column read as percent because of ``--percent``); by default it is printed
    on stderr as ``warning: FILE:LINE:COL column: ...``."""
    from ocrtune.presets.load import load_preset
    from ocrtune.sweep.store import Store, check_name
    from ocrtune.sweep.store.trials import now
    from ocrtune.sweep.summary import summarize

    r = request
    check_name(r.name)
    if r.unit not in ("auto", "percent", "fraction"):
        raise InputError(f"must be auto, percent or fraction (got {r.unit!r})", key="--percent")
    metric, direction = pick_metric(r.metric, r.direction)
    mappings = parse_mappings(r.columns)
    loaded = load_preset(r.preset, (), list(r.presets_dir))
    table = read_table(Path(r.file), show_path(Path(r.file)))
    cols = plan_columns(table, r.metric, mappings)
    space, params = check_values(table, cols, loaded.preset)
    scores = read_scores(table, r.metric, metric, r.unit)
    for line in scores.warnings:
        if on_warning is not None:
            on_warning(line)
        else:
            print(f"warning: {line}", file=sys.stderr, flush=True)
    rows = import_rows(table, cols, params, scores)
    epochs = max((row.epochs for row in rows if row.epochs), default=None) or loaded.preset.trainer.max_epochs
    source = str(r.file)
    cfg = SweepConfig(
        name=r.name, preset=loaded.name, base=loaded.preset.model_dump(mode="json"),
        search=ImportedSearch(source=source, rows=len(rows)), metric=metric, epochs=int(epochs),
        dims=tuple(_dim_dict(d) for d in space.dims))

    if Store.exists(r.name, r.storage, runs_dir=r.runs_dir):
        if not r.force:
            raise InputError(f"a sweep named {r.name!r} exists already; choose another --name, or pass --force to "
                             "replace it", key="--name")
        old = Store.open(r.name, r.storage, runs_dir=r.runs_dir)
        try:
            old.drop()
        finally:
            old.close()
    store = Store.open(r.name, r.storage, runs_dir=r.runs_dir, create=True, direction=direction)
    try:
        try:
            store.set_config(cfg)
            plan = store.add_plan(Batch(tuple(dict(row.params) for row in rows), 0, False, f"imported from {source}"))
            for row in rows:
                attrs = {"error": row.error, "imported_name": row.name, "imported_from": source,
                         "imported_line": row.line, "imported_state": row.state}
                if row.epochs is not None:
                    attrs["epochs"] = row.epochs
                store.add_finished(plan, row.number, row.status, row.score,
                                   {k: v for k, v in attrs.items() if v is not None}, duration_s=row.runtime_s)
            store.set_finished({"reason": f"imported {len(rows)} runs from {source}", "at": now()})
        except BaseException:
            try:
                store.drop()  # no half-imported sweep: a second try needs no --force
            except Exception:  # noqa: BLE001 - the first error is the one to show
                pass
            raise
        summary = summarize(store, cfg)
        if on_done is not None:
            on_done(ImportOutcome(
                file=table.file, name=r.name, storage=store.url, metric=metric, column=r.metric, rows=len(rows),
                failed=sum(row.status != Status.COMPLETED for row in rows), keys=tuple(cfg.keys),
                unit_note=scores.note, ignored=cols.ignored, warnings=scores.warnings))
        return summary
    finally:
        store.close()


def _dim_dict(d: Dim) -> dict[str, Any]:
    out = asdict(d)
    out["values"] = list(d.values)
    return out


__all__ = [
    "Cell", "Columns", "Header", "ImportOutcome", "ImportRequest", "ImportedRow", "Record", "Scores", "Table",
    "check_values", "import_rows", "import_sweep", "parse_mappings", "pick_metric", "plan_columns", "read_scores",
    "read_table",
]
