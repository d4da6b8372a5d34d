"""timm backbone as a feature encoder with a declared channel/stride contract.

The decoder is sized from ``Encoder.channels`` (timm's ``feature_info``), never from a dummy
forward pass. Weight loading is strict on purpose: timm's ``features_only`` load quietly skips
keys it cannot place, which turns a wrong checkpoint into random weights without a word.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path

import timm
import torch
from torch import Tensor, nn

from ocrtune.errors import InputError, OcrtuneError
from ocrtune.presets.schema import EncoderConfig

_KEY = "models.encoder"
# Top-level modules of classification heads: present in full-model checkpoints, absent from
# (and irrelevant to) the features-only model, so they may be dropped without a word.
_HEAD_MODULES = frozenset(
    {"classifier", "fc", "head", "head_drop", "conv_head", "bn2", "global_pool", "norm_head", "pre_logits"}
)
# Prefixes that wrappers (Lightning, DataParallel, our own DBNet) put in front of backbone keys.
_WRAPPER_PREFIXES = ("module.", "model.", "encoder.", "backbone.", "body.")
_MAX_LISTED = 8


class Encoder(nn.Module):
    """Runs a timm ``features_only`` model and returns its maps as NCHW tensors."""

    def __init__(self, body: nn.Module, channels: list[int], strides: list[int], nhwc: bool = False) -> None:
        super().__init__()
        self.model = body
        self.channels = list(channels)
        self.strides = list(strides)
        self._nhwc = nhwc

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = list(self.model(x))
        if self._nhwc:  # transformer backbones report channels-last features
            feats = [f.permute(0, 3, 1, 2).contiguous() for f in feats]
        return feats


def build_encoder(cfg: EncoderConfig) -> Encoder:
    """Create the backbone named by ``cfg`` and load the weights it asks for."""
    name = cfg.model_name
    _check_name(name)
    n_stages = _count_stages(name)
    if n_stages is not None:
        bad = [i for i in cfg.out_indices if i >= n_stages]
        if bad:
            raise InputError(
                f"{name} has {n_stages} feature stages (indices 0..{n_stages - 1}); "
                f"{bad} out of range",
                key=f"{_KEY}.out_indices",
            )
    if cfg.pretrained and cfg.pretrained_path:
        raise InputError(
            "set either pretrained: true (hub weights) or pretrained_path (local file), not both",
            key=f"{_KEY}.pretrained_path",
        )
    weights_path: Path | None = None
    if cfg.pretrained_path:
        weights_path = Path(cfg.pretrained_path).expanduser()
        if not weights_path.is_file():
            raise InputError(f"weights file not found: {weights_path}", key=f"{_KEY}.pretrained_path")

    body = _create(name, cfg.out_indices, cfg.pretrained)
    if weights_path is not None:
        load_encoder_weights(body, weights_path, name)

    info = body.feature_info
    fmt = getattr(body, "output_fmt", "NCHW")
    nhwc = str(getattr(fmt, "value", fmt)).upper() == "NHWC"
    return Encoder(body, info.channels(), info.reduction(), nhwc=nhwc)


def _check_name(name: str) -> None:
    if name.startswith(("hf-hub:", "hf_hub:", "local-dir:")):
        return  # resolved by timm itself; nothing to check offline
    if timm.is_model(name):
        return
    base = name.split(".", 1)[0]
    close = difflib.get_close_matches(base, timm.list_models(), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else " (see timm.list_models())"
    raise InputError(f"unknown timm model '{name}'{hint}", key=f"{_KEY}.model_name")


def _count_stages(name: str) -> int | None:
    """Stage count from the full model's ``feature_info``, built on the meta device (no memory)."""
    try:
        with torch.device("meta"):
            probe = timm.create_model(name, pretrained=False)
    except Exception:  # odd constructors: let the real build report problems
        return None
    info = getattr(probe, "feature_info", None)
    return len(info) if isinstance(info, (list, tuple)) and info else None


def _create(name: str, out_indices: list[int], pretrained: bool) -> nn.Module:
    kwargs = dict(features_only=True, out_indices=tuple(out_indices))
    if not pretrained:
        return timm.create_model(name, pretrained=False, **kwargs)
    try:
        return timm.create_model(name, pretrained=True, **kwargs)
    except Exception as exc:  # network/hub/cache errors come in many types (requests, httpx, OSError)
        raise OcrtuneError(
            f"could not download pretrained weights for '{name}' ({type(exc).__name__}: {exc}); "
            f"download them elsewhere and set {_KEY}.pretrained_path, or set {_KEY}.pretrained: false"
        ) from exc


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """Read a state_dict from .safetensors or a torch file, unwrapping common checkpoint dicts."""
    return _state_dict_of(_read_weights_file(path), path)


def _read_weights_file(path: Path) -> object:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        return torch.load(path, map_location="cpu", weights_only=True)
    except ImportError as exc:
        raise OcrtuneError("reading .safetensors needs the 'safetensors' package") from exc
    except Exception as exc:
        raise InputError(
            f"cannot read weights ({type(exc).__name__}: {exc})", file=path, key=f"{_KEY}.pretrained_path"
        ) from None


def _state_dict_of(obj: object, path: Path) -> dict[str, Tensor]:
    for wrapper in ("state_dict", "model", "model_state_dict", "module"):
        if isinstance(obj, Mapping) and not _is_tensor_dict(obj) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
    if not (isinstance(obj, Mapping) and obj and _is_tensor_dict(obj)):
        raise InputError(
            "not a state_dict (expected a mapping of parameter names to tensors)",
            file=path,
            key=f"{_KEY}.pretrained_path",
        )
    return dict(obj)


def _is_tensor_dict(obj: Mapping) -> bool:
    return all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())


def _strip_wrappers(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """Drop prefixes shared by every key (``model.encoder.model.`` ...)."""
    changed = True
    while changed:
        changed = False
        for p in _WRAPPER_PREFIXES:
            if all(k.startswith(p) for k in sd):
                sd = {k[len(p) :]: v for k, v in sd.items()}
                changed = True
    return sd


def _canonical(key: str) -> str:
    # timm's feature wrappers flatten ``stages.0`` into ``stages_0``; compare keys modulo that.
    return key.replace("_", ".")


def load_encoder_weights(body: nn.Module, path: Path, model_name: str) -> None:
    """Load a local checkpoint into a features-only model, failing loudly on any mismatch.

    Accepts keys of the features-only model or of the full classification model (then keys of
    the classifier head and of stages past the last ``out_index`` are ignored), or a checkpoint
    ``ocrtune train`` wrote (its encoder part: fine-tuning a new decoder/head on a trained encoder).
    """
    sd = _encoder_tensors(_read_weights_file(path), path, model_name)
    target = body.state_dict()
    by_canon = {_canonical(k): k for k in target}
    if len(by_canon) != len(target):  # ambiguous flattening: compare names exactly
        by_canon = {k: k for k in target}
    full_keys = _full_model_keys(model_name)

    mapped: dict[str, Tensor] = {}
    unexpected: list[str] = []
    for key, value in sd.items():
        dest = key if key in target else by_canon.get(_canonical(key))
        if dest:
            mapped[dest] = value
        elif key.split(".", 1)[0] in _HEAD_MODULES or _canonical(key) in full_keys:
            continue  # classifier head or a stage the features model does not build
        else:
            unexpected.append(key)
    missing = [k for k in target if k not in mapped and not k.endswith("num_batches_tracked")]
    shapes = [
        f"{k} {tuple(mapped[k].shape)} vs {tuple(v.shape)}"
        for k, v in target.items()
        if k in mapped and mapped[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        parts = []
        for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
            if items:
                shown = ", ".join(items[:_MAX_LISTED])
                more = f" (+{len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else ""
                parts.append(f"{len(items)} {label}: {shown}{more}")
        raise InputError(
            f"weights do not match {model_name}: " + "; ".join(parts), file=path, key=f"{_KEY}.pretrained_path"
        )
    for k, v in target.items():  # keep fresh BN counters when the checkpoint lacks them
        mapped.setdefault(k, v)
    body.load_state_dict(mapped, strict=True)


def _encoder_tensors(obj: object, path: Path, model_name: str) -> dict[str, Tensor]:
    """The backbone's tensors: an ocrtune checkpoint gives its encoder part (and must have been
    trained with the same encoder), any other file its state_dict without wrapper prefixes."""
    from ocrtune.model.checkpoint import from_object, is_ocrtune_checkpoint

    if not is_ocrtune_checkpoint(obj):
        return _strip_wrappers(_state_dict_of(obj, path))
    weights = from_object(obj, path, key=f"{_KEY}.pretrained_path")
    if weights.encoder_name != model_name:
        raise InputError(
            f"this ocrtune checkpoint's encoder is {weights.encoder_name}, not {model_name}",
            file=path, key=f"{_KEY}.pretrained_path",
        )
    return weights.encoder_state()


def _full_model_keys(name: str) -> set[str]:
    try:
        with torch.device("meta"):
            full = timm.create_model(name, pretrained=False)
    except Exception:
        return set()
    return {_canonical(k) for k in full.state_dict()}
