"""Loading a state dict so that every key is accounted for, or failing with the keys named."""

from __future__ import annotations

from pathlib import Path

import torch
from open_clip.model import convert_to_custom_text_state_dict

from openmedclip.errors import ModelLoadError

TOLERATED_KEYS = frozenset(
    {
        # Non-persistent buffers of Hugging Face BERT-style text towers in recent transformers versions,
        # saved in checkpoints written with older ones (BiomedCLIP's among them). Recomputed on build.
        "text.transformer.embeddings.position_ids",
        "text.transformer.embeddings.token_type_ids",
    }
)
"""Keys that may be present in only one of checkpoint and model."""
SHOWN = 10


def load_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], *, name: str, source: Path) -> None:
    """Copy ``state`` into ``model``; raise ``ModelLoadError`` listing missing, unexpected or misshapen keys."""
    state = _adapt(model, state)
    expected = model.state_dict()
    missing = [key for key in expected if key not in state and key not in TOLERATED_KEYS]
    unexpected = [key for key in state if key not in expected and key not in TOLERATED_KEYS]
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


def load_base_only(model: torch.nn.Module, state: dict[str, torch.Tensor], base_weights: dict[str, str]) -> None:
    """Load frozen-tower weights into an otherwise random model: every key under each prefix must be present."""
    expected = model.state_dict()
    for prefix, location in base_weights.items():
        missing = [k for k in expected if k.startswith(prefix) and k not in state and k not in TOLERATED_KEYS]
        if missing:
            raise ModelLoadError(location, "base weights do not cover the tower: " + _listing("missing", missing))
    model.load_state_dict(state, strict=False)


def _adapt(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Known, lossless renames: pre-2.0 open_clip text keys, scalar vs 1-element ``logit_scale``."""
    state = dict(state)
    if "positional_embedding" in state and not hasattr(model, "positional_embedding"):
        state = convert_to_custom_text_state_dict(state)
    for key in ("logit_scale", "logit_bias"):
        target = getattr(model, key, None)
        if key in state and isinstance(target, torch.Tensor) and state[key].numel() == target.numel():
            state[key] = state[key].reshape(target.shape)
    return state


def _listing(label: str, keys: list[str]) -> str:
    more = f", ... ({len(keys) - SHOWN} more)" if len(keys) > SHOWN else ""
    return f"{len(keys)} {label} key(s): {', '.join(keys[:SHOWN])}{more}"
