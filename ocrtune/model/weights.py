"""Whether a preset's pretrained encoder weights can be had here, asked before any work starts.

``pretrained: true`` downloads ImageNet weights from the hub when the model is built, inside
each training run. On a machine without hub access that is discovered late (a minute of hub
retries per run, per sweep trial). This check answers first: weights in the local cache (the
Hugging Face cache or torch hub's), else whether the hub answers a bounded connection attempt
(``HF_HUB_OFFLINE=1`` means it does not). Only names and files are read; no model is built.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

HUB_HOST = "huggingface.co"
PROBE_S = 3.0
_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")


def unavailable_weights(model_name: str, probe_s: float = PROBE_S) -> str | None:
    """Why ``model_name``'s pretrained weights cannot be loaded here, or None when they can
    (cached, or the hub answers). Names resolved by timm itself (``hf-hub:``) are probed too."""
    cfg = _pretrained_cfg(model_name)
    if cfg is not None and _cached(cfg):
        return None
    if cfg is None and not model_name.startswith(("hf-hub:", "hf_hub:")):
        return f"timm has no pretrained weights for {model_name!r}"
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return f"the weights of {model_name!r} are not in the local cache and HF_HUB_OFFLINE is set"
    hosts = [HUB_HOST]
    url = getattr(cfg, "url", None) if cfg is not None else None
    if url and not getattr(cfg, "hf_hub_id", None):
        hosts = [urlparse(url).hostname or HUB_HOST]
    for host in hosts:
        try:
            socket.create_connection((host, 443), timeout=probe_s).close()
            return None
        except OSError as e:
            why = f"{host} is not reachable ({e.strerror or type(e).__name__})"
    return f"the weights of {model_name!r} are not in the local cache and {why}"


def _pretrained_cfg(name: str):  # type: ignore[no-untyped-def]
    try:
        from timm.models import get_pretrained_cfg

        return get_pretrained_cfg(name)
    except Exception:  # unknown names are the model builder's to report
        return None


def _cached(cfg) -> bool:  # type: ignore[no-untyped-def]
    hub_id = getattr(cfg, "hf_hub_id", None)
    if hub_id:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            pass
        else:
            filename = getattr(cfg, "hf_hub_filename", None)
            for f in ([filename] if filename else []) + list(_FILES):
                if isinstance(try_to_load_from_cache(hub_id, f), str):
                    return True
    url = getattr(cfg, "url", None)
    if url:
        try:
            import torch.hub

            return (Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)).is_file()
        except Exception:
            return False
    return False
