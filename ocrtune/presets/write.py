"""Write new and blended presets as commented YAML, keeping the source's comments and order."""

from __future__ import annotations

import copy
import datetime as _dt
import io
import math
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.representer import RoundTripRepresenter
from ruamel.yaml.scalarfloat import ScalarFloat

from ocrtune.errors import InputError
from ocrtune.presets.compare import ENCODER, BlendCaveats, BlendedValue, blend_caveats, flatten, is_number
from ocrtune.presets.load import (
    SUFFIXES,
    LoadedPreset,
    apply_overrides,
    find_preset,
    load_preset,
    parse_scalar,
    preset_dirs,
    read_yaml,
    show_path,
    validate,
)
from ocrtune.presets.sources import DATA, EPOCHS, NOT_COPIED, PER_RUN_KEYS, Source
from ocrtune.train.rundir import write_text_atomic


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
        add_note(node, parts[-1], comment)


def add_note(node: CommentedMap, key: str, comment: str) -> None:
    """Put ``comment`` at the end of ``key``'s line, replacing only that line's comment.

    ruamel keeps the comment lines that follow a value in the same token as the value's own
    comment; replacing the token would drop them (a user's note about the next section).
    """
    slots = node.ca.items.get(key)
    old = getattr(slots[2], "value", None) if slots and len(slots) > 2 else None
    node.yaml_add_eol_comment(comment, key)
    below = old.partition("\n")[2] if isinstance(old, str) else ""
    if below:
        node.ca.items[key][2].value += "\n" + below


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
    name = _clean_name(name, None)
    path = out_dir / f"{name}.yaml"
    _check_free(name, path, dirs, overwrite)
    load_preset(source, overrides, dirs)  # source and --set problems, before the disk is touched
    src, src_path = load_preset(source, (), dirs), find_preset(source, dirs)
    doc = read_yaml(src_path)
    if not isinstance(doc, CommentedMap):
        doc = CommentedMap()
    _drop_derivation_notes(doc, src_path)
    ref = doc.get("extends")
    if isinstance(ref, str):
        _fix_extends(doc, find_preset(ref, dirs, relative_to=src_path.parent), path, dirs)
    keys = [_set_key(item) for item in overrides]
    changed = [k for k in keys if k != "description"]
    _set_description(doc, f"derived from {source}" + (f" with {', '.join(changed)} changed" if changed else ""))
    if overrides:
        doc["reported"] = None
    changes = f" with {len(overrides)} change(s)" if overrides else ""
    header = f"# Created {_dt.date.today().isoformat()} by `ocrtune presets new {name} --from {source}`{changes}.\n"
    if changed:
        # the source's own header describes the source's values ("exactly as the sweep proposed
        # them"), which these overrides changed: this file's header says what it is instead
        _drop_header_comment(doc)
        sets = ", ".join(item.strip() for item in overrides if _set_key(item) != "description")
        header += (f"# Derived from {source} ({show_path(src_path)}) with these overrides: {sets}.\n"
                   f"# Every other value is {source}'s ({source}'s header comment, about its own values, is left out).\n")
    _write_checked(path, header, doc, overrides, lambda key: _was(key, src, source), dirs, overwrite)
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
    overrides: Sequence[str] = (),
) -> Blend:
    """Write a preset that extends ``a`` and sets each blended value, commented with its origin.

    ``--set`` overrides apply to the blended result (checked against it, not against ``a``); the
    returned values are those of the written preset, so a report never shows a value it overrode.
    """
    name = _clean_name(name, "--name")
    path = out_dir / f"{name}.yaml"
    _check_free(name, path, dirs, overwrite)
    pa, pb = load_preset(a, (), dirs), load_preset(b, (), dirs)
    how = "geometric" if log else "linear"
    doc = CommentedMap()
    doc["extends"] = a
    _fix_extends(doc, find_preset(a, dirs), path, dirs)
    doc["description"] = f"{how} blend of {a} and {b} at weight {weight:g}"
    planned = blend_caveats(blended, a, b)
    for bv in blended:
        if bv.how == "from-a":
            note = f"kept from {a}; {b} has {bv.b!r}"
        else:
            note = f"{a} {bv.a!r} -> {b} {bv.b!r} ({bv.how}, w={weight:g})"
        set_path(doc, bv.key, bv.value, comment=note)
    doc["reported"] = None
    values = {bv.key: bv.value for bv in blended}
    sets = f" with {len(overrides)} --set" if overrides else ""
    header = (
        f"# Created {_dt.date.today().isoformat()} by `ocrtune presets blend {a} {b} --name {name}"
        f" --weight {weight:g}{' --log' if log else ''}`{sets}.\n"
    )
    if planned.encoder is not None:  # the file says it too, not only the command's output
        enc = planned.encoder
        kept = "the --set one" if ENCODER in {_set_key(o) for o in overrides} else f"{a}'s"
        header += (f"# {a} and {b} use different encoders ({enc.a}, {enc.b}): this blend uses {kept} and"
                   " interpolates sizes tuned for each; check the values marked below.\n")

    def was(key: str) -> str:
        return f"was {values[key]!r} in the blend" if key in values else _was(key, pa, a)

    written = _write_checked(path, header, doc, overrides, was, dirs, overwrite)
    values_written = _as_written(blended, overrides, pa, pb, written)
    return Blend(path, values_written, blend_caveats(values_written, a, b))


def derived_preset(
    path: Path,
    extends: str | None,
    values: Sequence[tuple[str, Any, str]],
    header: str,
    description: str,
    dirs: Sequence[str | Path] = (),
    overwrite: bool = True,
) -> LoadedPreset:
    """Write a preset at ``path`` that ``extends`` a base (or stands alone when None) and sets
    each ``(key, value, comment)``, checked by loading it where it lies; a preset that does
    not load leaves nothing behind (the previous file, if any, is put back)."""
    doc = CommentedMap()
    if extends is not None:
        doc["extends"] = extends
        _fix_extends(doc, find_preset(extends, dirs), path, dirs)
    doc["description"] = description
    for key, value, note in values:
        set_path(doc, key, value, comment=note or None)
    head = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return _write_checked(path, head, doc, (), lambda key: "", dirs, overwrite)


@dataclass(frozen=True)
class FromSource:
    """A preset written from a run directory or a sweep trial (``presets new --from``)."""

    path: Path
    extends: str | None  # the preset it extends (None: standalone, every setting written)
    values: list[tuple[str, Any, str]]  # (key, value, comment) as the file sets them
    dropped: list[tuple[str, Any, str]]  # per-run values not copied: (key, source's value, why)
    source: str  # "run 2024-05-01-baseline", "sweep lr-b4 trial 7"


def preset_from_source(
    name: str,
    src: Source,
    overrides: Sequence[str] = (),
    out_dir: Path = Path("presets"),
    dirs: Sequence[str | Path] = (),
    overwrite: bool = False,
    keep_epochs: bool = False,
    keep_data: bool = False,
) -> FromSource:
    """Write ``out_dir/name.yaml`` with the settings a run or a sweep trial trained with.

    It ``extends`` the preset the source started from when that is found by name, setting only
    the keys that differ from it, each commented; otherwise it stands alone with every resolved
    setting. The values set for that run only (its epochs, its data root: ``PER_RUN_KEYS``) are
    not copied unless ``keep_epochs`` / ``keep_data``; the preset keeps its own (returned in
    ``dropped``). ``--set`` overrides apply last. Written through ``derived_preset``: a preset
    that does not load leaves nothing behind.
    """
    name = _clean_name(name, None)
    path = out_dir / f"{name}.yaml"
    _check_free(name, path, dirs, overwrite)
    target = dict(src.settings)
    notes = dict(src.notes)
    dropped: list[tuple[str, Any, str]] = []
    keep = {EPOCHS: (keep_epochs, "--keep-epochs"), DATA: (keep_data, "--keep-data")}
    for key in PER_RUN_KEYS:
        if key not in src.per_run or _same(target.get(key), src.own.get(key)):
            continue
        kept, flag = keep[key]
        if kept:
            notes[key] = f"{src.per_run[key]} in {src.label} (kept by {flag})"
        else:
            own = _show(src.own.get(key))
            dropped.append((key, target.get(key), f"{src.per_run[key]}; the preset keeps {src.own_from} {own}, {flag} copies it"))
            target[key] = src.own.get(key)
    base: dict[str, Any] | None = None
    if src.preset is not None:
        try:
            base = _plain_settings(load_preset(src.preset, (), dirs).preset)
        except InputError:
            base = None
    description = src.description
    set_keys: list[str] = []
    if overrides:  # checked against the source's settings, located at --set, before the disk
        data = _unflatten(target)
        origins: dict[Any, Any] = {}
        apply_overrides(data, origins, overrides)
        validate(data, origins, default_file=src.label)
        for item in overrides:
            key, _, raw = item.partition("=")
            key = key.strip()
            value = parse_scalar(raw, key)
            if key == "description":
                description = value
                continue
            was = f"was {_show(target[key])} in {src.label}" if key in target else f"not set in {src.label}"
            for k, v in (flatten(value, key) if isinstance(value, dict) else {key: value}).items():
                target[k] = v
                notes[k] = f"--set; {was}"
                set_keys.append(k)
    values: list[tuple[str, Any, str]] = []
    for key, value in target.items():
        if base is None:
            values.append((key, value, notes.get(key, "")))
        elif key not in base or not _same(base[key], value):
            why = notes.get(key) or src.other_note or f"as {src.label} had it"
            values.append((key, value, f"{why}; {src.preset} has {_show(base[key])}" if key in base else why))
    if not any(k == "reported" or k.startswith("reported.") for k in set_keys):
        values.append(("reported", None, ""))  # scores it reaches are not yet measured
    flags = "".join(f" {f}" for kept, f in keep.values() if kept)
    sets = f" with {len(overrides)} --set" if overrides else ""
    header = [f"Created {_dt.date.today().isoformat()} by `ocrtune presets new {name} --from {src.ref}{flags}`{sets}.",
              *src.header]
    if set_keys:  # the lines above describe the source as it ran, not these values
        given = ", ".join(item.strip() for item in overrides if _set_key(item) != "description")
        header.append(f"Then these overrides: {given} (any scores above were measured without them).")
    if base is None:
        named = src.preset or src.recorded
        header.append((f"Its preset {named} is not found by name" if named else "It records no preset")
                      + ": every resolved setting is written.")
    for key, value, why in dropped:
        header.append(f"Not copied: {key}={_show(value)} ({why}).")
    derived_preset(path, src.preset if base is not None else None, values, "\n".join(header), description, dirs,
                   overwrite=overwrite)
    return FromSource(path, src.preset if base is not None else None, values, dropped, src.label)


def _show(v: Any) -> str:
    """A value as YAML spells it (null, true), strings quoted."""
    if v is None or isinstance(v, bool):
        return {None: "null", True: "true", False: "false"}[v]
    return repr(v) if isinstance(v, str) else str(v)


def _same(a: Any, b: Any) -> bool:
    if is_number(a) and is_number(b):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
    return a == b


def _plain_settings(preset: Any) -> dict[str, Any]:
    flat = flatten(preset.model_dump(mode="json"))
    return {k: v for k, v in flat.items() if not any(k == n or k.startswith(n + ".") for n in NOT_COPIED)}


def _unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = copy.deepcopy(value)
    return out


@dataclass(frozen=True)
class Blend:
    """A written blend: its file and, per blended or ``--set`` key, the value it holds; what
    was taken from one side rather than blended, and whether the encoders differ."""

    path: Path
    values: list[BlendedValue]
    caveats: BlendCaveats


def _as_written(
    blended: Sequence[BlendedValue],
    overrides: Sequence[str],
    pa: LoadedPreset,
    pb: LoadedPreset,
    written: LoadedPreset,
) -> list[BlendedValue]:
    """The blended values as the file has them; a ``--set`` key is marked ``how="--set"``
    (one the blend left alone is added, with what ``a`` and ``b`` have)."""
    final, da, db = (p.preset.model_dump(mode="json") for p in (written, pa, pb))
    keys = list(dict.fromkeys(_set_key(item) for item in overrides))
    out = []
    for bv in blended:
        how = "--set" if bv.key in keys else bv.how
        out.append(replace(bv, value=lookup(final, bv.key)[1], how=how))
    done = {bv.key for bv in blended}
    for key in keys:
        if key not in done:
            va, vb, value = (lookup(tree, key)[1] for tree in (da, db, final))
            out.append(BlendedValue(key, va, vb, value, "--set"))
    return out


# --- internals -------------------------------------------------------------------------

_NAME = re.compile(r"[^\W_][\w.-]*")
_OUR_HEADER = re.compile(r"\A(?:# Created \S+ by `ocrtune presets (?:new|blend) [^\n]*\n)+")


# The command in the header line presets new/blend write, and the notes they put beside values
# (see new_preset, blend_preset, _was); a note's ``label`` must be a preset that command names.
_OUR_COMMAND = re.compile(r"\A# Created \S+ by `ocrtune presets (?:new|blend) ([^`\n]*)`")
_OUR_NOTES = (
    re.compile(r"was .+ in (?P<label>.+?)(?: \(default\))?"),
    re.compile(r"not set in (?P<label>.+)"),
    re.compile(r"kept from (?P<label>.+?); .+ has .+"),
    re.compile(r".+ -> .+ \((?:linear|log), w=[^)\s]+\)"),
    re.compile(r"not yet measured"),
)


def _drop_derivation_notes(doc: CommentedMap, src_path: Path) -> None:
    """Remove the notes presets new/blend wrote beside the source's values (``was 9 in the blend``).

    They explain how the source was made and are wrong for a preset derived from it. Only a file
    that starts with our header has them; the user's own comments, and any comment lines after
    a note, are kept.
    """
    found = _OUR_COMMAND.match(src_path.read_text(encoding="utf-8"))
    if found is None:
        return
    named = f" {found.group(1)} "

    def ours(text: str) -> bool:
        for pattern in _OUR_NOTES:
            m = pattern.fullmatch(text)
            if m is not None:
                label = m.groupdict().get("label")
                if label is None or label == "the blend" or f" {label} " in named:
                    return True
        return False

    def walk(node: Any) -> None:
        if isinstance(node, CommentedMap):
            for key, slots in list(node.ca.items.items()):
                token = slots[2] if len(slots) > 2 else None
                value = getattr(token, "value", None)
                if isinstance(value, str):
                    first, nl, rest = value.partition("\n")
                    if first.lstrip().startswith("#") and ours(first.strip()[1:].strip()):
                        if rest:
                            token.value = nl + rest  # the comment lines below stay
                        else:
                            slots[2] = None
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            return
        for child in children:
            walk(child)

    walk(doc)


def _drop_header_comment(doc: CommentedMap) -> None:
    """Remove the comment lines above a document's first key (ruamel keeps them on the map)."""
    comment = getattr(doc.ca, "comment", None)
    if comment and len(comment) > 1:
        comment[1] = None


def _clean_name(name: str, option: str | None) -> str:
    """The file stem for ``name``: a trailing .yaml/.yml is dropped, anything but a plain stem refused."""
    stem = next((name[: -len(s)] for s in SUFFIXES if name.endswith(s)), name)
    if not _NAME.fullmatch(stem):
        raise InputError(
            f"preset name {name!r} is not a plain file stem: use letters, digits, '.', '-' and '_',"
            " starting with a letter or digit",
            key=option,
        )
    return stem


def _check_free(name: str, path: Path, dirs: Sequence[str | Path], overwrite: bool) -> None:
    """Refuse to overwrite a file, or to shadow a preset found by the same name, unless forced.

    A second ``run8`` earlier on the search path silently changes what every command means by
    ``run8`` (``compare baseline run8`` in that folder would compare the copy).
    """
    if overwrite:
        return
    if path.exists():
        raise _exists(path)
    for d in (path.parent, *preset_dirs(dirs)):
        for s in SUFFIXES:
            other = d / f"{name}{s}"
            if other.is_file():
                raise InputError(
                    f"a preset of that name already exists: {show_path(other)}; the new one would shadow it"
                    " (choose another name, or pass --force)",
                    key=name,
                )


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


def _write_checked(
    path: Path,
    header: str,
    doc: CommentedMap,
    overrides: Sequence[str],
    was: Callable[[str], str],
    dirs: Sequence[str | Path],
    overwrite: bool,
) -> LoadedPreset:
    """Write ``doc`` plus ``overrides`` to ``path`` only if it loads there; otherwise leave no trace.

    A preset can only be checked at its own name: ``extends`` resolves from its folder, and a
    cycle back to it exists only once it is there. So the file is put in place, loaded, and
    taken back (the previous file restored) if that fails.
    """

    def text() -> str:
        return header + _OUR_HEADER.sub("", dump(doc))

    with _staged(path, text(), overwrite) as put:
        _check_at(path, overrides, dirs)  # --set problems stay located at --set
        for item in overrides:
            key, _, raw = item.partition("=")
            key = key.strip()
            set_path(doc, key, parse_scalar(raw, key), comment=was(key))
        if "reported" in doc and doc["reported"] is None:
            add_note(doc, "reported", "not yet measured")
        put(text())
        return _check_at(path, (), dirs)


def _check_at(path: Path, overrides: Sequence[str], dirs: Sequence[str | Path]) -> LoadedPreset:
    try:
        return load_preset(path, overrides, dirs)
    except InputError as e:
        raise InputError(
            problems=[p if p.file == "--set" else replace(p, message=f"{p.message} (nothing written)") for p in e.problems]
        ) from None


@contextmanager
def _staged(path: Path, text: str, overwrite: bool) -> Iterator[Callable[[str], None]]:
    """Put ``text`` at ``path`` for the body; if the body fails, put back what was there before.

    Yields a function that replaces the staged text. Folders created here are removed again.
    Without ``overwrite`` an existing file (even one that appeared a moment ago) is never touched.
    """
    made = [d for d in (path.parent, *path.parent.parents) if not d.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    backup: Path | None = None
    placed = False
    try:
        if overwrite and path.exists():
            backup = _temp_copy(path)
            _put(path, text, exclusive=False)
        else:
            _put(path, text, exclusive=True)
        placed = True
        yield lambda t: _put(path, t, exclusive=False)
    except BaseException:
        if backup is not None:
            os.replace(backup, path)
            backup = None
        elif placed:
            path.unlink(missing_ok=True)
        for d in made:
            try:
                d.rmdir()
            except OSError:
                break
        raise
    finally:
        if backup is not None:
            backup.unlink(missing_ok=True)


def _put(path: Path, text: str, exclusive: bool) -> None:
    """The run directory's atomic writer; ``exclusive`` never replaces a file."""
    try:
        write_text_atomic(path, text, exclusive=exclusive)
    except FileExistsError:
        raise _exists(path) from None


def _exists(path: Path) -> InputError:
    return InputError("already exists (pass --force to overwrite)", file=show_path(path))


def _temp_copy(path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".bak", dir=path.parent)
    os.close(fd)
    shutil.copy2(path, tmp)
    return Path(tmp)


def _fix_extends(doc: CommentedMap, wanted: Path, path: Path, dirs: Sequence[str | Path]) -> None:
    """Make ``extends`` name, from the new file at ``path``, the base ``wanted``.

    A reference that finds another file from there, or finds it only from the current folder,
    or would find the new file itself, is replaced by the base's absolute path.
    """
    ref = doc.get("extends")
    if not isinstance(ref, str):
        return
    wanted = wanted.resolve()
    if _found_from(ref, path.parent, dirs) != wanted or Path(ref).stem == path.stem:
        doc["extends"] = str(wanted)


def _found_from(ref: str, folder: Path, dirs: Sequence[str | Path]) -> Path | None:
    """The file a preset in ``folder`` gets for ``extends: ref``, ignoring the cwd fallback for paths."""
    as_path = Path(ref)
    if not as_path.is_absolute() and (as_path.suffix in SUFFIXES or os.sep in ref):
        tried = [folder / ref, *(folder / (ref + s) for s in SUFFIXES)]
        return next((c.resolve() for c in tried if c.is_file()), None)
    try:
        return find_preset(ref, dirs, relative_to=folder).resolve()
    except InputError:
        return None
