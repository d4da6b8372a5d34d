"""Find, read, merge (``extends:``), override (``--set``) and validate presets.

Every value remembers where it came from (file, line, column, or the ``--set`` option), so a
validation error points at the exact place to fix.
"""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Sequence

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from ocrtune.errors import InputError, Problem
from ocrtune.presets.schema import FieldError, Preset, field_names

ENV_DIRS = "OCRTUNE_PRESETS"
SUFFIXES = (".yaml", ".yml")
BUILTIN_PACKAGE = "ocrtune.builtin_presets"  # the top-level presets/ folder, as packaged (pyproject.toml)
CHECKOUT_DIR = Path(__file__).resolve().parents[2] / "presets"

KeyPath = tuple[str, ...]


@dataclass(frozen=True)
class Origin:
    """Where a value was set: a file position or a command-line override."""

    file: str
    line: int | None = None
    column: int | None = None
    # which setting came last: a --set (1, 2, ...) over the preset file (0) over its bases (-1, -2, ...)
    rank: int = 0

    def problem(self, key: str, message: str) -> Problem:
        return Problem(message, self.file, self.line, self.column, key)


@dataclass
class LoadedPreset:
    name: str
    path: Path | None
    preset: Preset
    data: dict[str, Any]  # merged plain data, as validated (no defaults filled in)
    origins: dict[KeyPath, Origin] = field(default_factory=dict)
    chain: list[Path] = field(default_factory=list)  # the file and every file it extends


def builtin_dir() -> Path:
    """The presets that ship with ocrtune.

    An installed wheel holds them in the ``ocrtune.builtin_presets`` package; an editable install
    maps that package to the checkout's ``presets/``; a checkout run without any install has no
    such package, so it reads ``presets/`` next to the package directly.
    """
    try:
        root = resources.files(BUILTIN_PACKAGE)
    except ModuleNotFoundError:
        return CHECKOUT_DIR
    if isinstance(root, Path):
        return root
    # a folder without __init__.py is a namespace package: a MultiplexedPath whose entries are paths
    found = [entry.parent for entry in root.iterdir() if isinstance(entry, Path)]
    return found[0] if found else CHECKOUT_DIR


def check_presets_dirs(dirs: Sequence[str | Path]) -> None:
    """Every ``--presets-dir`` must be a folder: a mistyped one would silently add nothing to the
    search (``$OCRTUNE_PRESETS`` may list folders that exist on some machines only: not checked)."""
    for d in dirs:
        p = Path(d)
        if not p.is_dir():
            raise InputError("not a folder" if p.exists() else "folder not found", file="--presets-dir", key=str(d))


def preset_dirs(extra: Sequence[str | Path] = ()) -> list[Path]:
    """Search order: ``--presets-dir`` options, ``$OCRTUNE_PRESETS``, ./presets, built-in.
    Folders that do not exist are skipped here; the CLI refuses a missing ``--presets-dir``
    (``check_presets_dirs``) before any command runs."""
    dirs = [Path(d) for d in extra]
    env = os.environ.get(ENV_DIRS, "")
    dirs += [Path(d) for d in env.split(os.pathsep) if d]
    dirs += [Path.cwd() / "presets", builtin_dir()]
    seen: set[Path] = set()
    out = []
    for d in dirs:
        r = d.resolve()
        if r not in seen:
            seen.add(r)
            out.append(d)
    return out


def available_presets(dirs: Sequence[str | Path] = ()) -> dict[str, Path]:
    """Name -> file for every listable preset (names starting with ``_`` are bases)."""
    found: dict[str, Path] = {}
    for d in preset_dirs(dirs):
        if not d.is_dir():
            continue
        for p in sorted(d.iterdir()):
            if p.suffix in SUFFIXES and not p.stem.startswith("_"):
                found.setdefault(p.stem, p)
    return found


def find_preset(ref: str | Path, dirs: Sequence[str | Path] = (), relative_to: Path | None = None) -> Path:
    """Resolve a preset name or path to a file."""
    ref_s = str(ref)
    as_path = Path(ref_s)
    candidates: list[Path] = []
    if relative_to is not None and not as_path.is_absolute():
        candidates += [relative_to / ref_s] + [relative_to / (ref_s + s) for s in SUFFIXES]
    candidates += [as_path] if as_path.suffix in SUFFIXES or os.sep in ref_s else []
    for c in candidates:
        if c.is_file():
            return c
    search = preset_dirs(dirs)
    for d in search:
        for s in SUFFIXES:
            p = d / f"{ref_s}{s}"
            if p.is_file():
                return p
    names = sorted(available_presets(dirs))
    hint = did_you_mean(ref_s, names)
    existing = [str(d) for d in search if d.is_dir()]
    if existing:
        where = f"looked in {', '.join(existing)}"
    else:
        where = f"none of the preset folders exists ({', '.join(str(d) for d in search)})"
    raise InputError(f"preset not found{hint}; {where}", key=ref_s)


def read_yaml(path: Path) -> Any:
    """Round-trip read keeping comments, order and line/column marks."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read preset: {e.strerror}", file=show_path(path)) from None
    except UnicodeDecodeError as e:
        line = text_line_of(path.read_bytes(), e.start)
        raise InputError(f"not UTF-8 text (byte {e.start}: {e.reason})", file=show_path(path), line=line) from None
    try:
        return _yaml().load(text)
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        msg = (e.problem or e.context or "invalid YAML").strip()
        raise InputError(
            f"invalid YAML: {msg}",
            file=show_path(path),
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from None
    except YAMLError as e:
        raise InputError(f"invalid YAML: {e}", file=show_path(path)) from None


def load_preset(
    ref: str | Path,
    overrides: Sequence[str] = (),
    dirs: Sequence[str | Path] = (),
) -> LoadedPreset:
    """Load a preset by name or path, apply ``--set`` overrides and validate it."""
    path = find_preset(ref, dirs)
    data, origins, chain = _resolve(path, dirs, ())
    apply_overrides(data, origins, overrides)
    preset = validate(data, origins, default_file=show_path(path))
    is_path = isinstance(ref, Path) or Path(str(ref)).suffix in SUFFIXES or os.sep in str(ref)
    return LoadedPreset(path.stem if is_path else str(ref), path, preset, data, origins, chain)


def validate(data: dict[str, Any], origins: dict[KeyPath, Origin], default_file: str | None = None) -> Preset:
    """Validate merged data; every pydantic error becomes one located line."""
    try:
        return Preset.model_validate(data)
    except ValidationError as e:
        problems = [problem_for(err, data, origins, default_file) for err in e.errors()]
        problems.sort(key=lambda p: (p.file != "--set", p.file or "", p.line or 0, p.column or 0))
        raise InputError(problems=problems) from None


def apply_overrides(data: dict[str, Any], origins: dict[KeyPath, Origin], overrides: Iterable[str]) -> None:
    """Apply ``key.path=value`` overrides; values are YAML scalars (``5e-4``, ``true``, ``[1,2]``)."""
    for n, item in enumerate(overrides, start=1):
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(f"expected KEY=VALUE, got {item!r}", file="--set")
        set_value(data, origins, key, parse_scalar(raw, key), Origin("--set", rank=n), where="--set")


def set_value(data: dict[str, Any], origins: dict[KeyPath, Origin], key: str, value: Any, origin: Origin,
              where: str = "--set") -> None:
    """Set the dotted ``key`` to a typed ``value`` (no text to parse), recording its origin
    for located errors. Sections on the way are created, and recorded as set there too: a
    mistyped section (``model.optimizer.lr``) is then blamed on this setting, not on the file.
    A value on the way is an error."""
    parts = tuple(key.split("."))
    if any(not p for p in parts):
        raise InputError("empty key segment", file=where, key=key)
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        nxt = node.get(part) if isinstance(node, dict) else None
        if nxt is None:
            nxt = {}
            node[part] = nxt
            origins[parts[: i + 1]] = origin
        elif not isinstance(nxt, dict):
            raise InputError(f"'{'.'.join(parts[: i + 1])}' is a value, not a section", file=where, key=key)
        node = nxt
    node[parts[-1]] = value
    _drop_origins(origins, parts)
    origins[parts] = origin


def parse_scalar(raw: str, key: str = "") -> Any:
    """Parse one override value as YAML, so ``5e-4`` is a float and ``none`` stays a string."""
    raw = raw.strip()
    if raw == "":
        return None
    try:
        value = YAML(typ="safe", pure=True).load(raw)
    except YAMLError:
        raise InputError(f"cannot parse value {raw!r}", file="--set", key=key) from None
    if isinstance(value, str) and _looks_numeric(value):
        # YAML 1.2 reads "5e-4" as a string (no dot); users mean a number.
        return float(value)
    if isinstance(value, str) and "#" in raw and not raw.startswith(("'", '"')):
        return raw  # a '#' in a command-line value is text, not a YAML comment
    return value


def to_plain(node: Any) -> Any:
    """ruamel containers -> plain dicts/lists."""
    if isinstance(node, dict):
        return {str(k): to_plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [to_plain(v) for v in node]
    return node


# --- internals -------------------------------------------------------------------------


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.preserve_quotes = True
    return y


def show_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _resolve(
    path: Path, dirs: Sequence[str | Path], stack: tuple[Path, ...]
) -> tuple[dict[str, Any], dict[KeyPath, Origin], list[Path]]:
    real = path.resolve()
    doc = read_yaml(path)
    shown = show_path(path)
    if doc is None:
        doc = CommentedMap()
    if not isinstance(doc, dict):
        raise InputError("a preset must be a mapping of keys to values", file=shown, line=1, column=1)
    origins: dict[KeyPath, Origin] = {}
    own = _collect(doc, (), shown, origins, rank=-len(stack))
    parent_ref = own.pop("extends", None)
    origins.pop(("extends",), None)
    if parent_ref is None and not own:
        # an empty file (or only comments, {} or null) would silently train with the built-in defaults
        raise InputError("empty preset: it sets nothing and extends nothing, so it would train with the built-in"
                         " defaults; add settings or `extends: NAME`", file=shown)
    if parent_ref is None:
        return own, origins, [path]
    if not isinstance(parent_ref, str):
        line, col = key_position(doc, "extends", value=True)
        raise InputError("extends must be a preset name or path", file=shown, line=line, column=col, key="extends")
    try:
        parent_path = find_preset(parent_ref, dirs, relative_to=path.parent)
    except InputError as e:
        line, col = key_position(doc, "extends", value=True)
        raise InputError(e.problems[0].message, file=shown, line=line, column=col, key="extends") from None
    if parent_path.resolve() in (*stack, real):  # this extends: closes the loop, so it is the one to fix
        line, col = key_position(doc, "extends", value=True)
        cycle = " -> ".join(show_path(p) for p in (*stack, real, parent_path.resolve()))
        raise InputError(f"extends cycle: {cycle}", file=shown, line=line, column=col, key="extends")
    base, base_origins, chain = _resolve(parent_path, dirs, (*stack, real))
    _merge(base, own, base_origins, origins, ())
    return base, base_origins, [path, *chain]


def _collect(node: Any, prefix: KeyPath, file: str, origins: dict[KeyPath, Origin], rank: int = 0) -> Any:
    """Plain copy of a ruamel tree, recording each key's position."""
    if isinstance(node, CommentedMap):
        out: dict[str, Any] = {}
        for k, v in node.items():
            key = str(k)
            line, col = key_position(node, k)
            origins[(*prefix, key)] = Origin(file, line, col, rank)
            out[key] = _collect(v, (*prefix, key), file, origins, rank)
        return out
    if isinstance(node, CommentedSeq):
        return [_collect(v, (*prefix, str(i)), file, origins, rank) for i, v in enumerate(node)]
    return to_plain(node)


def key_position(node: Any, key: Any, value: bool = False) -> tuple[int | None, int | None]:
    try:
        line, col = node.lc.value(key) if value else node.lc.key(key)
        return line + 1, col + 1
    except (AttributeError, KeyError, TypeError):
        return None, None


def _merge(
    base: dict[str, Any], over: dict[str, Any], base_o: dict[KeyPath, Origin], over_o: dict[KeyPath, Origin], prefix: KeyPath
) -> None:
    """Deep-merge ``over`` into ``base``: mappings merge, everything else replaces."""
    for k, v in over.items():
        path = (*prefix, k)
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            base_o[path] = over_o[path]
            _merge(base[k], v, base_o, over_o, path)
        else:
            base[k] = v
            _drop_origins(base_o, path)
            base_o.update({p: o for p, o in over_o.items() if p[: len(path)] == path})


def _drop_origins(origins: dict[KeyPath, Origin], path: KeyPath) -> None:
    for p in [p for p in origins if p[: len(path)] == path and len(p) > len(path)]:
        del origins[p]


def problem_for(err: Any, data: dict[str, Any], origins: dict[KeyPath, Origin], default_file: str | None) -> Problem:
    loc = tuple(str(x) for x in err["loc"])
    rule = (err.get("ctx") or {}).get("error")
    etype = err["type"]
    if isinstance(rule, FieldError):
        blamed = _set_last(loc, rule, data, origins)
        loc = (*loc, *blamed.split("."))
        msg = rule.messages[blamed]
    elif etype == "extra_forbidden":
        msg = "unknown key" + did_you_mean(loc[-1], field_names(loc[:-1]) or [])
    elif etype == "missing":
        msg = "required key is missing"
    else:
        msg = _message(err)
    key = ".".join(loc) if loc else "(preset)"
    origin = _nearest_origin(loc, origins)
    if origin is None:
        return Problem(msg, default_file, None, None, key)
    return origin.problem(key, msg)


def _set_last(loc: KeyPath, rule: FieldError, data: dict[str, Any], origins: dict[KeyPath, Origin]) -> str:
    """The key of a broken cross-key rule that was set last: the change that broke it."""

    def rank(rel: str) -> float:
        path = (*loc, *rel.split("."))
        origin = _nearest_origin(path, origins) if _present(data, path) else None
        return origin.rank if origin is not None else -math.inf  # a default is never the change

    return max(rule.messages, key=rank)  # ties: the rule's first key


def _present(data: Any, path: KeyPath) -> bool:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


def _nearest_origin(loc: KeyPath, origins: dict[KeyPath, Origin]) -> Origin | None:
    for n in range(len(loc), 0, -1):
        o = origins.get(loc[:n])
        if o is not None:
            return o
    return None


_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def _message(err: Any) -> str:
    etype, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    for name, op in _BOUNDS.items():
        if etype == name:
            bound = next(iter(ctx.values()))
            return f"must be {op} {bound} (got {value!r})"
    if etype == "value_error":
        return str(ctx.get("error", err["msg"]))
    if etype == "literal_error":
        return f"must be one of {ctx.get('expected')} (got {value!r})"
    if etype == "model_type":
        return f"must be a mapping of keys (got {value!r})"
    return f"{err['msg'][0].lower()}{err['msg'][1:]} (got {value!r})"


def did_you_mean(word: str, options: Iterable[str]) -> str:
    match = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def text_line_of(data: bytes, offset: int) -> int:
    """1-based line number of a byte offset."""
    return data.count(b"\n", 0, offset) + 1


def _looks_numeric(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return s.strip().lower() not in {"nan", "inf", "-inf", "+inf", "infinity", "-infinity"}
