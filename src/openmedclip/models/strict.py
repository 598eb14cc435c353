"""Loading a state dict so that every key is accounted for, or failing with the keys named."""

from __future__ import annotations

from pathlib import Path

import torch

from openmedclip.errors import ModelLoadError

SHOWN = 10


def load_strict(
    model: torch.nn.Module,
    state: dict[str, torch.Tensor],
    *,
    name: str,
    source: Path,
    tolerated: frozenset[str] = frozenset(),
) -> None:
    """Copy ``state`` into ``model``; raise ``ModelLoadError`` listing missing, unexpected or misshapen keys.

    Keys naming the model's own non-persistent buffers (recomputed on build: e.g. a BERT tower's
    ``embeddings.position_ids`` saved by older transformers, or an ``attn_mask`` that TorchScript saves) are
    dropped. ``tolerated`` names exactly the other keys that may be in only one of the two (a family's
    known-harmless buffers).
    """
    expected = model.state_dict()
    recomputed = {key for key, _ in model.named_buffers()} - set(expected)
    missing = [key for key in expected if key not in state and key not in tolerated]
    unexpected = [key for key in state if key not in expected and key not in tolerated | recomputed]
    misshapen = [
        f"{key} {tuple(value.shape)} vs model {tuple(expected[key].shape)}"
        for key, value in state.items()
        if key in expected and value.shape != expected[key].shape
    ]
    problems = [
        _listing(label, keys)
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshapen))
        if keys
    ]
    if problems:
        raise ModelLoadError(name, f"checkpoint {source} does not match the architecture: " + "; ".join(problems))
    model.load_state_dict({key: value for key, value in state.items() if key in expected}, strict=False)


def load_base_only(
    model: torch.nn.Module,
    state: dict[str, torch.Tensor],
    base_weights: dict[str, str],
    tolerated: frozenset[str] = frozenset(),
) -> None:
    """Load frozen-tower weights into an otherwise random model: every key under each prefix must be present."""
    expected = model.state_dict()
    for prefix, location in base_weights.items():
        missing = [k for k in expected if k.startswith(prefix) and k not in state and k not in tolerated]
        if missing:
            raise ModelLoadError(location, "base weights do not cover the tower: " + _listing("missing", missing))
    model.load_state_dict(state, strict=False)


def _listing(label: str, keys: list[str]) -> str:
    more = f", ... ({len(keys) - SHOWN} more)" if len(keys) > SHOWN else ""
    return f"{len(keys)} {label} key(s): {', '.join(keys[:SHOWN])}{more}"
