"""Sweep search spaces in the W&B sweep style, checked against the preset schema.

A sweep that tunes a key the model never reads wastes every GPU hour it gets (a competitor's
sweep tuned ``models.head.thresh``, which does not exist). So every key must be a leaf of the
preset schema, every distribution must fit the leaf's type, and the range ends (or listed
values) must pass the preset's own validation, all before any training starts.

Accepted forms (a file may hold either the parameters mapping itself, or a W&B sweep file with
``parameters:``; keys may be dotted or nested, and W&B's nested ``parameters:`` works too)::

    models.optimizer.lr: {distribution: log_uniform, min: 2.5e-4, max: 6e-4}
    models.scheduler.T_max: {values: [20, 22, 24]}
    models.optimizer.weight_decay: {value: 1e-4}

Distributions: ``uniform``, ``log_uniform`` / ``log_uniform_values`` (both mean: min and max
are the actual values, sampled uniformly in log space; W&B's own ``log_uniform`` takes natural
log exponents, which is easy to get wrong and useless for values like a learning rate, so here
the two names mean the same), ``int_uniform`` (bounds inclusive), ``q_uniform`` (``q`` step),
``categorical`` / ``values: [...]``, ``constant`` / ``value: x``. Without ``distribution``,
``min``/``max`` mean ``int_uniform`` on an integer key and ``uniform`` on a float key (W&B
looks at the bounds instead, so ``thresh: {min: 0, max: 1}`` would only ever try 0 and 1).
"""

from __future__ import annotations

import itertools
import math
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ValidationError

from ocrtune.errors import InputError, Problem
from ocrtune.presets.load import did_you_mean, key_position, problem_for, show_path, read_yaml, to_plain
from ocrtune.presets.schema import FieldError, Preset, model_type, field_names
from ocrtune.sweep.types import Coupling, derived_values

Kind = Literal["fixed", "choice", "uniform", "log_uniform", "int_uniform", "q_uniform"]
Leaf = Literal["float", "int", "bool", "other"]

DISTRIBUTIONS: dict[str, Kind] = {
    "uniform": "uniform", "log_uniform": "log_uniform", "log_uniform_values": "log_uniform",
    "int_uniform": "int_uniform", "q_uniform": "q_uniform", "categorical": "choice", "constant": "fixed",
}
SPEC_KEYS = {"distribution", "min", "max", "q", "values", "value"}
_RANGE = {"distribution", "min", "max"}
_ALLOWED: dict[Kind, set[str]] = {
    "uniform": _RANGE, "log_uniform": _RANGE, "int_uniform": _RANGE, "q_uniform": _RANGE | {"q"},
    "choice": {"distribution", "values"}, "fixed": {"distribution", "value"},
}
# W&B sweep-file keys besides ``parameters``: the first three are read, the rest ignored.
WANDB_KEYS = {"method", "metric", "name", "description", "program", "command", "early_terminate", "run_cap", "project", "entity"}
_ALIASES = {"learning_rate": "lr", "wd": "weight_decay", "epochs": "max_epochs", "lr_min": "eta_min", "min_lr": "eta_min"}
METHODS = {"grid", "random", "bayes", "tpe", "hierarchical"}


@dataclass(frozen=True)
class Dim:
    """One swept key. ``low``/``high`` for ranges (inclusive), ``values`` for choice/fixed.

    Store layers map kinds one to one: uniform/log_uniform/q_uniform -> a float
    distribution (log, step=q), int_uniform -> an int distribution, choice -> categorical.
    """

    key: str
    kind: Kind
    leaf: Leaf
    low: float | None = None
    high: float | None = None
    q: float | None = None
    values: tuple[Any, ...] = ()

    def sample(self, rng: np.random.Generator) -> Any:
        """One random value (plain Python types, ready for YAML/JSON)."""
        if self.kind == "fixed":
            return self.values[0]
        if self.kind == "choice":
            return self.values[int(rng.integers(len(self.values)))]
        lo, hi = float(self.low), float(self.high)  # type: ignore[arg-type]
        if self.kind == "uniform":
            return float(rng.uniform(lo, hi))
        if self.kind == "log_uniform":
            return float(10 ** rng.uniform(math.log10(lo), math.log10(hi)))
        if self.kind == "int_uniform":
            return int(rng.integers(int(lo), int(hi) + 1))
        steps = self._steps()
        return _tidy(float(steps[int(rng.integers(len(steps)))]) * float(self.q))  # type: ignore[arg-type]

    def grid(self, n: int) -> tuple[Any, ...]:
        """Values a grid search visits: listed values as given, ranges as ``n`` points
        (log-spaced for log_uniform; integer ranges and q steps deduplicated)."""
        if self.kind in ("fixed", "choice"):
            return self.values
        lo, hi = float(self.low), float(self.high)  # type: ignore[arg-type]
        if self.kind == "log_uniform":
            return tuple(_tidy(float(v)) for v in np.geomspace(lo, hi, n))
        if self.kind == "uniform":
            return tuple(_tidy(float(v)) for v in np.linspace(lo, hi, n))
        if self.kind == "int_uniform":
            return tuple(dict.fromkeys(int(round(v)) for v in np.linspace(lo, hi, n)))
        q, steps = float(self.q), self._steps()  # type: ignore[arg-type]
        if len(steps) > n:
            steps = steps[np.round(np.linspace(0, len(steps) - 1, n)).astype(int)]
        return tuple(_tidy(float(k) * q) for k in steps)

    def _steps(self) -> np.ndarray:
        """q_uniform draws a multiple of q inside [min, max] (W&B rounds a uniform draw, which
        can land outside the range)."""
        q = float(self.q)  # type: ignore[arg-type]
        return np.arange(math.ceil(self.low / q - 1e-9), math.floor(self.high / q + 1e-9) + 1)  # type: ignore[operator]


@dataclass(frozen=True)
class Space:
    """A validated search space, plus what a W&B sweep file said about method and metric."""

    dims: tuple[Dim, ...]
    file: str | None = None
    method: str | None = None
    metric: str | None = None
    goal: str | None = None
    ignored: tuple[str, ...] = field(default=())  # W&B keys present but unused

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(d.key for d in self.dims)

    def __getitem__(self, key: str) -> Dim:
        for d in self.dims:
            if d.key == key:
                return d
        raise KeyError(key)


Couple = Callable[[Sequence[str]], Sequence[Coupling]]


def load_space(path: str | Path, base: Preset | None = None, reserved: Mapping[str, str] | None = None,
               couple: Couple | None = None) -> Space:
    """Read a space YAML file; every problem comes back as one located ``InputError``."""
    p = Path(path)
    return parse_space(read_space_file(p, "sweep space file"), base=base, file=show_path(p), reserved=reserved,
                       couple=couple)


def read_space_file(path: Path, label: str, key: str | None = None) -> Any:
    """The YAML document of a space file (sweeps' and tune-postprocess's); a missing path or
    one that is not a file is one located line."""
    if not path.is_file():
        what = "is not a file" if path.exists() else "not found"
        raise InputError(f"{label} {what}", file=show_path(path), key=key)
    return read_yaml(path)


def parse_space(doc: Any, base: Preset | None = None, file: str | None = None,
                reserved: Mapping[str, str] | None = None, couple: Couple | None = None) -> Space:
    """Parse and validate a space mapping (ruamel maps keep positions for the messages).

    ``base`` is the preset the sweep trains (default: schema defaults); range ends are
    validated inside it, so cross-key rules such as ``eta_min < lr`` apply too. ``reserved``
    maps keys (or sections) that the trials set themselves or never read to the reason: a
    schema key is not enough, since sweeping such a key trains the same model for every value.
    ``couple`` gives the settings that follow the swept keys (``plan/coupling.py``); values are
    validated with them applied, as the trials will run. Where ``reserved`` is given (the space
    trains or tunes with ``base``; not an ``--objective`` sweep, which hands the values to a
    function, nor an import of runs that already happened), a varied key that ``base`` never
    reads (``plan/inert.py``) is refused too.
    """
    probs: list[Problem] = []
    if not isinstance(doc, Mapping) or not doc:
        raise InputError("a sweep space must be a non-empty mapping of keys to specs", file=file, line=1, column=1)
    params, method, metric, goal, ignored = _wandb_header(doc, file, probs)
    found: dict[str, tuple[Mapping[str, Any], Problem]] = {}
    _walk(params, (), file, found, probs)
    for key, (_, where) in list(found.items()):
        why = reserved_reason(key, reserved)
        if why is not None:
            probs.append(_with(where, why))
            del found[key]
    dims = [d for d in (_dim(key, spec, where, file, probs) for key, (spec, where) in found.items()) if d]
    couplings = tuple(couple([d.key for d in dims])) if couple is not None else ()
    for d in dims:
        _check_in_preset(d, found[d.key][0], found[d.key][1], base, dims, file, probs, couplings)
    if base is not None and reserved is not None:  # a training sweep's or tuning's space
        from ocrtune.sweep.plan.inert import inert_keys

        probs.extend(_with(found[key][1], why) for key, why in inert_keys(base, dims).items())
    if probs:
        probs.sort(key=lambda p: (p.line or 0, p.column or 0))
        raise InputError(problems=probs)
    return Space(tuple(dims), file, method, metric, goal, tuple(ignored))


def param_dim(key: str, low: float, high: float, log: bool = True, base: Preset | None = None,
              reserved: Mapping[str, str] | None = None, couple: Couple | None = None) -> Dim:
    """Validate ``--param`` with ``--range`` for the hierarchical strategy: a float leaf
    whose range ends both pass the preset's validation (and not one of ``reserved``)."""
    why = reserved_reason(key, reserved)
    if why is not None:
        raise InputError(why, file="--param", key=key)
    if leaf_kind(key) == "int":
        raise InputError("the hierarchical strategy needs a float key; sweep integer keys with "
                         "--strategy grid and a space file", file="--param", key=key)
    spec = {"distribution": "log_uniform" if log else "uniform", "min": low, "max": high}
    return parse_space({key: spec}, base=base, file="--param", reserved=reserved, couple=couple).dims[0]


def reserved_reason(key: str, reserved: Mapping[str, str] | None) -> str | None:
    """Why ``key`` cannot be swept if it is, or lies in a section that is, one of ``reserved``."""
    for k, why in (reserved or {}).items():
        if key == k or key.startswith(k + "."):
            return why
    return None


def leaf_kind(key: str) -> Leaf | None:
    """Type of the schema leaf at a dotted key; None if the key is unknown or a section."""
    model: Any = Preset
    parts = key.split(".")
    for i, part in enumerate(parts):
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            return None
        ann = fields[part].annotation
        if i < len(parts) - 1:
            model = model_type(ann)
        elif isinstance(model_type(ann), type) and issubclass(model_type(ann), BaseModel):
            return None
        else:
            return _leaf_of(ann)
    return None


def leaf_keys() -> list[str]:
    """Every dotted leaf key of the preset schema (for did-you-mean across sections)."""
    out: list[str] = []

    def walk(prefix: tuple[str, ...]) -> None:
        for name in field_names(prefix) or []:
            path = (*prefix, name)
            if field_names(path) is None:
                out.append(".".join(path))
            else:
                walk(path)

    walk(())
    return out


# --- internals -------------------------------------------------------------------------------


def _tidy(v: float) -> float:
    """Drop float noise (0.30000000000000004 -> 0.3) so stored values read cleanly."""
    return float(f"{v:.12g}")


_UnionType = type(int | str)


def _leaf_of(ann: Any) -> Leaf:
    args = [a for a in (typing.get_args(ann) if typing.get_origin(ann) in (typing.Union, _UnionType) else (ann,)) if a is not type(None)]
    args = [typing.get_args(a)[0] if typing.get_origin(a) is typing.Annotated else a for a in args]
    named = [a for a in args if typing.get_origin(a) is not typing.Literal]
    if named and len(named) < len(args) and all(a in (int, float) for a in named):
        args = named  # a number or a named setting (num_workers: auto): ranges are of the number
    if args == [bool]:
        return "bool"
    if args and all(a in (int, float) for a in args):
        return "float" if float in args else "int"
    return "other"


def _at(node: Any, key: Any, file: str | None, name: str, msg: str, value: bool = False) -> Problem:
    line, col = key_position(node, key, value=value)
    return Problem(msg, file, line, col, name)


def _wandb_header(doc: Mapping[str, Any], file: str | None, probs: list[Problem]) -> tuple[Any, Any, Any, Any, list[str]]:
    """A W&B sweep file: (parameters, method, metric name, goal, ignored keys); a bare
    parameters mapping passes through."""
    if "parameters" not in doc:
        return doc, None, None, None, []
    for k in doc:
        if k != "parameters" and k not in WANDB_KEYS:
            probs.append(_at(doc, k, file, str(k), "unknown sweep file key" + did_you_mean(str(k), [*WANDB_KEYS, "parameters"])))
    ignored = [str(k) for k in doc if k in WANDB_KEYS - {"method", "metric", "name", "description"}]
    method, m = doc.get("method"), doc.get("metric")
    if method is not None and method not in METHODS:
        probs.append(_at(doc, "method", file, "method", f"must be one of {sorted(METHODS)} (got {method!r})", True))
    if m is not None and not isinstance(m, Mapping):
        probs.append(_at(doc, "metric", file, "metric", "must be a mapping like {name: val/hmean, goal: maximize}", True))
        m = None
    m = m or {}
    if m.get("goal") not in (None, "maximize", "minimize"):
        probs.append(_at(m, "goal", file, "metric.goal", f"must be maximize or minimize (got {m['goal']!r})", True))
    params = doc["parameters"]
    if not isinstance(params, Mapping) or not params:
        probs.append(_at(doc, "parameters", file, "parameters", "must be a non-empty mapping of keys to specs"))
        raise InputError(problems=probs)
    return params, method, m.get("name"), m.get("goal"), ignored


def _walk(node: Mapping[str, Any], prefix: tuple[str, ...], file: str | None, found: dict, probs: list[Problem]) -> None:
    """Flatten dotted/nested keys down to their spec mappings, locating each key."""
    for k, v in node.items():
        path = (*prefix, *str(k).split("."))
        key = ".".join(path)
        where = _at(node, k, file, key, "")
        if isinstance(v, Mapping) and set(map(str, v)) & SPEC_KEYS:
            if key in found:
                probs.append(_with(where, "is given twice"))
            found[key] = (v, where)
        elif isinstance(v, Mapping) and set(v) == {"parameters"} and isinstance(v["parameters"], Mapping):
            _walk(v["parameters"], path, file, found, probs)  # W&B nested form
        elif isinstance(v, Mapping) and v and _key_problem(key):
            probs.append(_with(where, _key_problem(key) or ""))
        elif isinstance(v, Mapping) and v and leaf_kind(key) is None:
            _walk(v, path, file, found, probs)  # a section: nested keys
        else:
            hint = did_you_mean(str(next(iter(v))), SPEC_KEYS) if isinstance(v, Mapping) and v else ""
            probs.append(_with(where, "expected a spec such as {values: [...]}, {value: x} or "
                               "{distribution: log_uniform, min: a, max: b}" + hint))


def _with(p: Problem, msg: str) -> Problem:
    return Problem(msg, p.file, p.line, p.column, p.key)


def _key_problem(key: str) -> str | None:
    """Why a dotted key is not a schema key (None if it is one, leaf or section)."""
    parts = key.split(".")
    for i, part in enumerate(parts):
        names = field_names(tuple(parts[:i]))
        if names is None:
            return f"'{'.'.join(parts[:i])}' is a value, not a section"
        if part not in names:
            where = f" in {'.'.join(parts[:i])}" if i else ""
            return f"unknown key '{part}'{where}" + _suggest(key, part, names)
    return None


def _suggest(key: str, part: str, siblings: list[str]) -> str:
    """Did-you-mean: same leaf name elsewhere (models.head.thresh -> ...postprocess.thresh),
    else a close sibling, else the closest full key."""
    leaves = leaf_keys()
    last = key.split(".")[-1]
    last = _ALIASES.get(last, last)
    same = [k for k in leaves if k.split(".")[-1] == last]
    if same:
        return f" (did you mean '{max(same, key=lambda k: len(os.path.commonprefix([k, key])))}'?)"
    near = did_you_mean(part, siblings)
    return near or did_you_mean(key, leaves)


def _plain(v: Any) -> Any:
    """ruamel scalars (ScalarFloat, quoted strings) -> plain Python values."""
    if isinstance(v, bool) or v is None:
        return v
    for t in (int, float, str):
        if isinstance(v, t):
            return t(v)
    return to_plain(v)


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _dim(key: str, spec: Mapping[str, Any], where: Problem, file: str | None, probs: list[Problem]) -> Dim | None:
    """One spec mapping -> Dim, or None after recording its problems."""
    bad = _key_problem(key)
    if bad is None and leaf_kind(key) is None:
        bad = f"'{key}' is a section, not a value; sweep one of its keys"
    if bad:
        probs.append(_with(where, bad))
        return None
    leaf = leaf_kind(key) or "other"
    n0 = len(probs)
    dist = spec.get("distribution")
    if dist is not None:
        kind = DISTRIBUTIONS.get(str(dist))
        if kind is None:
            probs.append(_at(spec, "distribution", file, key, f"unsupported distribution {dist!r}"
                             + (did_you_mean(str(dist), DISTRIBUTIONS) or f"; use one of {sorted(DISTRIBUTIONS)}"), True))
            return None
    elif "values" in spec:
        kind = "choice"
    elif "value" in spec:
        kind = "fixed"
    else:
        kind = "int_uniform" if leaf == "int" else "uniform"
    for k in spec:
        if k not in _ALLOWED[kind]:
            probs.append(_at(spec, k, file, key, f"unexpected '{k}' for {kind}" + did_you_mean(str(k), _ALLOWED[kind])))
    if kind == "fixed":
        if "value" not in spec:
            probs.append(_with(where, "constant needs 'value'"))
        return None if len(probs) > n0 else Dim(key, kind, leaf, values=(_plain(spec["value"]),))
    if kind == "choice":
        vals = spec.get("values")
        if not isinstance(vals, (list, tuple)) or not vals:
            probs.append(_at(spec, "values", file, key, "values must be a non-empty list", True) if "values" in spec
                         else _with(where, "categorical needs 'values'"))
            return None
        return None if len(probs) > n0 else Dim(key, kind, leaf, values=tuple(_plain(v) for v in vals))
    if leaf not in ("float", "int"):
        probs.append(_with(where, f"is not numeric ({leaf}); list the options with values: [...]"))
        return None
    if leaf == "int" and kind != "int_uniform":
        probs.append(_with(where, f"is an integer key; use int_uniform or values: [...] instead of {kind}"))
        return None
    for end in ("min", "max") + (("q",) if kind == "q_uniform" else ()):
        if end not in spec:
            probs.append(_with(where, f"{kind} needs '{end}'"))
        elif not _num(spec[end]) or (kind == "int_uniform" and float(spec[end]) != int(spec[end])):
            what = "an integer" if kind == "int_uniform" else "a finite number"
            probs.append(_at(spec, end, file, key, f"{end} must be {what} (got {spec[end]!r})", True))
    if len(probs) > n0:
        return None
    lo, hi = float(spec["min"]), float(spec["max"])
    if not lo < hi:
        probs.append(_at(spec, "min", file, key, f"min must be below max (got {lo:g} >= {hi:g}); use value: for a fixed value", True))
    elif kind == "log_uniform" and lo <= 0:
        probs.append(_at(spec, "min", file, key, f"log_uniform needs min > 0 (got {lo:g}); min and max are the "
                         "actual values, not exponents as in W&B's log_uniform", True))
    elif kind == "q_uniform" and not (float(spec["q"]) > 0 and math.floor(hi / spec["q"] + 1e-9) >= math.ceil(lo / spec["q"] - 1e-9)):
        probs.append(_at(spec, "q", file, key, f"q must be > 0 with a multiple of q between min and max (got {spec['q']!r})", True))
    if len(probs) > n0:
        return None
    q = float(spec["q"]) if kind == "q_uniform" else None
    if kind == "int_uniform":
        return Dim(key, kind, leaf, int(lo), int(hi))
    return Dim(key, kind, leaf, lo, hi, q)


def _corners(d: Dim) -> tuple[Any, ...]:
    return d.values if d.kind in ("fixed", "choice") else (d.low, d.high)


def _check_in_preset(d: Dim, spec: Mapping[str, Any], where: Problem, base: Preset | None,
                     dims: list[Dim], file: str | None, probs: list[Problem],
                     couplings: Sequence[Coupling] = ()) -> None:
    """Every value the sweep can set must pass the preset's validation (range ends for ranges).

    Cross-key rules (``eta_min < lr``) are checked against every combination of the other
    swept keys' ends (first 64), since any of them can be drawn; an error blamed on another
    swept key is left for that key's own check, so each problem is reported once.
    """
    data = (base or Preset()).model_dump()
    others = [o for o in dims if o.key != d.key]
    combos = list(itertools.islice(itertools.product(*(_corners(o) for o in others)), 64))
    swept = {o.key for o in dims}
    labels = ["value" if d.kind == "fixed" else f"values[{i}]" if d.kind == "choice" else ("min", "max")[i]
              for i in range(len(_corners(d)))]
    for label, value in zip(labels, _corners(d)):
        for combo in combos:
            trial = set_dotted(data, d.key, value)
            values = {d.key: value}
            for o, ov in zip(others, combo):
                trial = set_dotted(trial, o.key, ov)
                values[o.key] = ov
            for k, v in derived_values(values, couplings).items():
                trial = set_dotted(trial, k, v)
            err = _first_error(trial, d.key, swept)
            if err is None:
                continue
            p, cross = err
            blame = "" if p.key == d.key else f" (makes {p.key} invalid)"
            pairs = [(o.key, ov) for o, ov in zip(others, combo) if cross]
            pairs = [kv for kv in pairs if kv[0] in p.message] or pairs  # name the keys that matter
            with_ = ", ".join(f"{k}={v!r}" for k, v in pairs)
            msg = f"{label} {value!r} is rejected by the preset{' with ' + with_ if with_ else ''}{blame}: {p.message}"
            if d.kind == "log_uniform" and label == "min" and p.key == d.key and not cross:
                msg += "; min and max are actual values, not exponents"
            name = label.split("[")[0]
            probs.append(_with(_at(spec, name, file, d.key, "", value=True) if name in spec else where, msg))
            break


def _first_error(data: dict[str, Any], key: str, swept: set[str]) -> tuple[Problem, bool] | None:
    """First validation error that concerns ``key`` or an unswept key, and whether it comes
    from a cross-key rule."""
    try:
        Preset.model_validate(data)
    except ValidationError as e:
        for err in e.errors():
            p = problem_for(err, data, {}, None)
            if p.key == key or p.key not in swept:
                return p, isinstance((err.get("ctx") or {}).get("error"), FieldError)
    return None


def set_dotted(data: Mapping[str, Any], key: str, value: Any) -> dict[str, Any]:
    """Copy of ``data`` with the dotted ``key`` set (only the touched path is copied)."""
    parts = key.split(".")
    out = dict(data)
    node = out
    for part in parts[:-1]:
        child = node.get(part)
        child = dict(child) if isinstance(child, Mapping) else {}
        node[part] = child
        node = child
    node[parts[-1]] = value
    return out
