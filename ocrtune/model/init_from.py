"""Start a model from another run's weights (``ocrtune train --init RUN|CKPT``).

Every tensor whose name and shape match is copied; the rest keep their fresh initialisation
and are reported by part (encoder, decoder, head), so a preset with another decoder or head
still starts from the trained encoder and the user sees exactly what did not carry over. A
different encoder is refused rather than half-loaded: its few same-named tensors (a stem conv)
would be noise, not a start. ``match_weights`` is pure (it only compares names and shapes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocrtune.errors import InputError

if TYPE_CHECKING:
    from ocrtune.model.checkpoint import TrainedWeights
    from ocrtune.presets.schema import Preset

KEY = "--init"
_COUNTER = "num_batches_tracked"


class Part(str, Enum):
    ENCODER = "encoder"
    DECODER = "decoder"
    HEAD = "head"
    OTHER = "other"


def part_of(name: str) -> Part:
    """``model.encoder.model.conv1.weight`` -> encoder; names outside the DBNet -> other."""
    bits = name.split(".")
    if len(bits) > 1 and bits[0] == "model":
        try:
            return Part(bits[1])
        except ValueError:
            pass
    return Part.OTHER


@dataclass(frozen=True)
class Mismatch:
    name: str
    source: tuple[int, ...]
    target: tuple[int, ...]


@dataclass(frozen=True)
class PartReport:
    """What happened to one part's tensors. ``missing``: in the model, not in the checkpoint
    (kept fresh); ``unexpected``: in the checkpoint, not in the model (ignored)."""

    part: Part
    loaded: tuple[str, ...] = ()
    mismatched: tuple[Mismatch, ...] = ()
    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()

    @property
    def in_model(self) -> int:
        return len(self.loaded) + len(self.mismatched) + len(self.missing)


@dataclass(frozen=True)
class InitReport:
    source: str  # the checkpoint file
    encoder: str  # its encoder (the same as the model's: a different one is refused)
    parts: tuple[PartReport, ...]

    def _count(self, attr: str) -> int:
        return sum(len(getattr(p, attr)) for p in self.parts)

    @property
    def loaded(self) -> int:
        return self._count("loaded")

    @property
    def mismatched(self) -> int:
        return self._count("mismatched")

    @property
    def missing(self) -> int:
        return self._count("missing")

    @property
    def unexpected(self) -> int:
        return self._count("unexpected")

    @property
    def in_model(self) -> int:
        return sum(p.in_model for p in self.parts)

    def part(self, part: Part) -> PartReport:
        return next((p for p in self.parts if p.part == part), PartReport(part))

    def record(self) -> dict[str, Any]:
        """What ``summary.json`` keeps under ``init``."""
        return {
            "source": self.source,
            "encoder": self.encoder,
            "loaded": self.loaded,
            "skipped": {"shape_mismatch": self.mismatched, "missing": self.missing, "unexpected": self.unexpected},
            "parts": {
                p.part.value: {"loaded": len(p.loaded), "shape_mismatch": len(p.mismatched), "missing": len(p.missing),
                               "unexpected": len(p.unexpected)}
                for p in self.parts
            },
        }

    def headline(self) -> str:
        return headline_of(self.record())

    def details(self) -> list[str]:
        """One line per tensor that was not loaded (``--verbose``)."""
        out: list[str] = []
        for p in self.parts:
            out += [f"{p.part.value}: {m.name} has shape {list(m.source)} in the checkpoint, {list(m.target)} here"
                    for m in p.mismatched]
            out += [f"{p.part.value}: {n} not in the checkpoint (fresh)" for n in p.missing]
            out += [f"{p.part.value}: {n} only in the checkpoint (ignored)" for n in p.unexpected]
        return out


def headline_of(record: Mapping[str, Any]) -> str:
    """One line for an ``init`` record (``InitReport.record``, as ``summary.json`` keeps it):
    what ``train --init`` printed, and what ``runs show`` prints again later."""
    parts = {name: p for name, p in (record.get("parts") or {}).items() if isinstance(p, Mapping)}
    in_model = {name: p.get("loaded", 0) + p.get("shape_mismatch", 0) + p.get("missing", 0) for name, p in parts.items()}
    by_part = ", ".join(f"{name} {p.get('loaded', 0)}/{in_model[name]}" for name, p in parts.items() if in_model[name])
    skip = record.get("skipped") or {}
    line = (f"weights from {record.get('source')}: loaded {record.get('loaded', 0)} of {sum(in_model.values())} "
            f"tensors ({by_part})")
    skipped = [f"{n} {what}" for n, what in ((skip.get("shape_mismatch", 0), "of another shape"),
                                             (skip.get("missing", 0), "not in the checkpoint"),
                                             (skip.get("unexpected", 0), "only in the checkpoint")) if n]
    return line + ("; not loaded: " + ", ".join(skipped) if skipped else "")


def match_weights(
    source: Mapping[str, Any], target: Mapping[str, Any], *, source_label: str = "", encoder: str = ""
) -> tuple[InitReport, dict[str, Any]]:
    """Which of ``source``'s tensors fit ``target`` (both name -> tensor, compared by shape):
    the report, and the tensors to load. BatchNorm's step counters (``num_batches_tracked``)
    are loaded where they fit but not counted: they are bookkeeping, not weights, and would
    otherwise make a model whose layers all changed look partly loaded."""
    chosen: dict[str, Any] = {}
    rows: dict[Part, dict[str, list[Any]]] = {
        p: {"loaded": [], "mismatched": [], "missing": [], "unexpected": []} for p in Part
    }
    for name, want in target.items():
        row = rows[part_of(name)]
        have = source.get(name)
        if name.endswith(_COUNTER):
            if have is not None and tuple(have.shape) == tuple(want.shape):
                chosen[name] = have
            continue
        if have is None:
            row["missing"].append(name)
        elif tuple(have.shape) != tuple(want.shape):
            row["mismatched"].append(Mismatch(name, tuple(have.shape), tuple(want.shape)))
        else:
            row["loaded"].append(name)
            chosen[name] = have
    for name in source:
        if name not in target and not name.endswith(_COUNTER):
            rows[part_of(name)]["unexpected"].append(name)
    parts = tuple(
        PartReport(p, *(tuple(r[k]) for k in ("loaded", "mismatched", "missing", "unexpected")))
        for p, r in rows.items()
        if any(r.values())
    )
    return InitReport(source_label, encoder, parts), chosen


def check_encoder(weights: TrainedWeights, model_name: str, key: str = KEY) -> None:
    """Refuse a checkpoint whose encoder is another model: fine-tuning starts from its encoder."""
    if weights.encoder_name != model_name:
        raise InputError(
            f"the checkpoint's encoder is {weights.encoder_name}, the preset's models.encoder.model_name is "
            f"{model_name}; fine-tuning needs the same encoder",
            file=str(weights.path), key=key,
        )


def read_init_source(ref: str | Path, runs_dir: Path, preset: Preset) -> TrainedWeights:
    """The checkpoint ``--init`` names, read and checked against ``preset`` before any work."""
    from ocrtune.model.checkpoint import find_checkpoint, read_checkpoint

    weights = read_checkpoint(find_checkpoint(ref, runs_dir, KEY).resolve(), KEY)
    check_encoder(weights, preset.models.encoder.model_name)
    return weights


def preset_for_init(preset: Preset, weights: TrainedWeights) -> Preset:
    """The preset to build the model with: no hub download or ``pretrained_path`` read for an
    encoder the checkpoint replaces whole (it holds every stage the model builds)."""
    enc = preset.models.encoder
    if not (enc.pretrained or enc.pretrained_path) or not weights.out_indices:
        return preset
    if max(enc.out_indices) > max(weights.out_indices):
        return preset  # stages the checkpoint lacks keep their pretrained weights
    encoder = enc.model_copy(update={"pretrained": False, "pretrained_path": None})
    models = preset.models.model_copy(update={"encoder": encoder})
    return preset.model_copy(update={"models": models})


def init_module(module: Any, weights: TrainedWeights) -> InitReport:
    """Copy every fitting tensor of ``weights`` into ``module`` (a DBNetModule); refuse when
    nothing fits. Optimizer and schedule are not touched: the run starts them fresh."""
    from ocrtune.model.checkpoint import EMA_PREFIX

    # the model's own moving average is not a target: it restarts at the loaded weights below
    target = {k: v for k, v in module.state_dict().items() if not k.startswith(EMA_PREFIX)}
    report, chosen = match_weights(weights.state_dict, target, source_label=str(weights.path),
                                   encoder=weights.encoder_name)
    if not report.loaded:
        raise InputError(
            f"no tensor of the checkpoint fits this model ({report.mismatched} of another shape, "
            f"{report.missing} not in the checkpoint)",
            file=str(weights.path), key=KEY,
        )
    module.load_state_dict(chosen, strict=False)
    module.reset_ema()
    return report
