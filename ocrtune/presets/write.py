"""Write new and blended presets as commented YAML, keeping the source's comments and order."""

from __future__ import annotations

import datetime as _dt
import io
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Sequence

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.representer import RoundTripRepresenter
from ruamel.yaml.scalarfloat import ScalarFloat

from ocrtune.errors import InputError, Problem
from ocrtune.presets.compare import BlendedValue
from ocrtune.presets.load import LoadedPreset, find_preset, load_preset, parse_scalar, read_yaml


class _ExactFloatRepresenter(RoundTripRepresenter):
    """Keep a float's original spelling only when it reads back as the same number.

    ruamel re-formats round-tripped floats from their recorded width and precision, which can
    change the last digit (6.797303101020006e-05 -> ...005); preset values must stay exact.
    """

    def represent_scalar_float(self, data: Any) -> Any:
        node = super().represent_scalar_float(data)
        try:
            same = float(node.value) == float(data)
        except ValueError:
            same = False
        if not same:
            node = self.represent_scalar("tag:yaml.org,2002:float", repr(float(data)))
        return node


_ExactFloatRepresenter.add_representer(ScalarFloat, _ExactFloatRepresenter.represent_scalar_float)


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.Representer = _ExactFloatRepresenter
    y.preserve_quotes = True
    y.indent(mapping=2, sequence=4, offset=2)
    y.width = 100
    return y


def dump(doc: Any) -> str:
    buf = io.StringIO()
    _yaml().dump(doc, buf)
    return buf.getvalue()


def write_atomic(path: Path, text: str, overwrite: bool = False) -> None:
    """Write via a temp file + rename, so a failure never leaves half a preset."""
    if path.exists() and not overwrite:
        raise InputError("already exists (pass --force to overwrite)", file=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def set_path(doc: CommentedMap, key: str, value: Any, comment: str | None = None) -> None:
    """Set ``a.b.c`` in a round-trip tree, creating sections, keeping everything else."""
    parts = key.split(".")
    node = doc
    for part in parts[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, CommentedMap):
            nxt = CommentedMap()
            node[part] = nxt
        node = nxt
    node[parts[-1]] = value
    if comment:
        node.yaml_add_eol_comment(comment, parts[-1])


def lookup(tree: Any, key: str) -> tuple[bool, Any]:
    """``(found, value)`` of dotted ``key``; a key set to null is found."""
    node = tree
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def new_preset(
    name: str,
    source: str,
    overrides: Sequence[str] = (),
    out_dir: Path = Path("presets"),
    dirs: Sequence[str | Path] = (),
    overwrite: bool = False,
) -> Path:
    """Copy ``source`` (comments included) to ``out_dir/name.yaml`` with ``--set`` changes applied.

    The copy says what it derives from (header line and description); scores the source reported
    are dropped once anything changes, since they were measured on the source.
    """
    _check_name(name)
    load_preset(source, overrides, dirs)  # validates the result before anything is written
    src, src_path = load_preset(source, (), dirs), find_preset(source, dirs)
    doc = read_yaml(src_path)
    if not isinstance(doc, CommentedMap):
        doc = CommentedMap()
    keys = [_set_key(item) for item in overrides]
    changed = [k for k in keys if k != "description"]
    _set_description(doc, f"derived from {source}" + (f" with {', '.join(changed)} changed" if changed else ""))
    if overrides:
        doc["reported"] = None
    for item in overrides:
        key, _, raw = item.partition("=")
        key = key.strip()
        set_path(doc, key, parse_scalar(raw, key), comment=_was(key, src, source))
    _fix_extends(doc, src_path, out_dir, dirs)
    if "reported" in doc and doc["reported"] is None:
        doc.yaml_add_eol_comment("not yet measured", "reported")
    changes = f" with {len(overrides)} change(s)" if overrides else ""
    header = f"# Created {_dt.date.today().isoformat()} by `ocrtune presets new {name} --from {source}`{changes}.\n"
    path = out_dir / f"{name}.yaml"
    text = header + _OUR_HEADER.sub("", dump(doc))  # the source's own opening comment stays below it
    write_atomic(path, text, overwrite)
    load_preset(path, (), dirs)  # the file on disk must load exactly like the check above
    return path


def blend_preset(
    name: str,
    a: str,
    b: str,
    blended: Sequence[BlendedValue],
    weight: float,
    log: bool,
    out_dir: Path = Path("presets"),
    dirs: Sequence[str | Path] = (),
    overwrite: bool = False,
) -> Path:
    """Write a preset that extends ``a`` and sets each blended value, commented with its origin."""
    _check_name(name)
    how = "geometric" if log else "linear"
    doc = CommentedMap()
    doc["extends"] = a
    doc["description"] = f"{how} blend of {a} and {b} at weight {weight:g}"
    for bv in blended:
        if bv.how == "from-a":
            note = f"kept from {a}; {b} has {bv.b!r}"
        else:
            note = f"{a} {bv.a!r} -> {b} {bv.b!r} ({bv.how}, w={weight:g})"
        set_path(doc, bv.key, bv.value, comment=note)
    doc["reported"] = None
    doc.yaml_add_eol_comment("not yet measured", "reported")
    doc.yaml_set_start_comment(
        f"Created {_dt.date.today().isoformat()} by `ocrtune presets blend {a} {b} --name {name}"
        f" --weight {weight:g}{' --log' if log else ''}`."
    )
    path = out_dir / f"{name}.yaml"
    _check_loads(doc, out_dir, name, dirs)
    write_atomic(path, dump(doc), overwrite)
    return path


_OUR_HEADER = re.compile(r"\A(?:# Created \S+ by `ocrtune presets (?:new|blend) [^\n]*\n)+")


def _set_key(item: str) -> str:
    return item.partition("=")[0].strip()


def _set_description(doc: CommentedMap, text: str) -> None:
    """Replace the description in place, or add it right after ``extends``."""
    if "description" in doc:
        doc["description"] = text
    else:
        doc.insert(1 if "extends" in doc else 0, "description", text)


def _was(key: str, src: LoadedPreset, label: str) -> str:
    """What ``key`` was in the source, wherever in its chain (or its defaults) that came from."""
    found, old = lookup(src.data, key)
    if found:
        return f"was {old!r} in {label}"
    found, old = lookup(src.preset.model_dump(mode="json"), key)
    return f"was {old!r} in {label} (default)" if found else f"not set in {label}"


def _check_loads(doc: CommentedMap, out_dir: Path, name: str, dirs: Sequence[str | Path]) -> None:
    """Validate a document before writing it, resolving ``extends`` as it will be on disk."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".yaml", dir=out_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(dump(doc))
        load_preset(Path(tmp), (), dirs)
    except InputError as e:  # name the setting, not the temporary file
        raise InputError(
            problems=[Problem(f"{p.message} in the blended preset", "blend", None, None, p.key) for p in e.problems]
        ) from None
    finally:
        Path(tmp).unlink(missing_ok=True)


def _fix_extends(doc: CommentedMap, src_path: Path, out_dir: Path, dirs: Sequence[str | Path] = ()) -> None:
    """Make ``extends`` name, from the new file's folder, the same base it names from the source."""
    ref = doc.get("extends")
    if not isinstance(ref, str):
        return
    wanted = find_preset(ref, dirs, relative_to=src_path.parent).resolve()
    try:
        found = find_preset(ref, dirs, relative_to=out_dir).resolve()
    except InputError:
        found = None
    if found != wanted:
        doc["extends"] = str(wanted)


def _check_name(name: str) -> None:
    if not name or "/" in name or os.sep in name or name.startswith((".", "_")):
        raise InputError("preset names are plain file stems (no '/', not starting with '.' or '_')", key=name)
