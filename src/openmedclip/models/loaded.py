"""The one object every task works with: a model plus how to feed it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import torch

    from openmedclip.models.family import ModelFamily, Preprocess, Tokenizer
    from openmedclip.models.protocol import ClipModel


@dataclass(frozen=True)
class ModelSpec:
    """Where a model came from and how it was built (for reports, caches and error messages)."""

    name: str
    """Registry name, architecture name or path the user gave."""
    family: str
    """The model family that built it (e.g. 'open_clip')."""
    architecture: str
    """Architecture name within the family (``custom:<vision>+<text>`` when it has none)."""
    source: str
    """Resolved location of the weights ('random' when built without weights)."""
    format: str
    """How it was found: 'open_clip-arch', 'open_clip-hub', 'checkpoint', 'config', ..."""
    config: Any
    """The family's typed model config, as built (e.g. ``OpenClipConfig``)."""
    folder: str | None = None
    """The model folder, when it came from one."""
    hf_repo: str | None = None
    """The Hugging Face repository of a registry entry."""


@dataclass
class LoadedModel:
    """A CLIP-style model ready for inference.

    ``model`` follows :class:`openmedclip.models.protocol.ClipModel`; ``preprocess`` maps a
    :class:`openmedclip.io.MedicalImage` to a ``[C, H, W]`` float tensor (and tells its geometry);
    ``tokenizer`` maps a list of strings to a ``[N, context_length]`` LongTensor.
    The model is in eval mode, on ``device``, with its floating weights in ``dtype``.
    """

    model: torch.nn.Module
    preprocess: Preprocess
    tokenizer: Tokenizer
    context_length: int
    spec: ModelSpec
    device: torch.device
    dtype: torch.dtype

    @property
    def family(self) -> ModelFamily:
        """The family object, for its optional capabilities (patch features, tower locking, ...)."""
        from openmedclip.models.family import get_family

        return get_family(self.spec.family)

    @property
    def logit_scale(self) -> float:
        """The learned temperature as a multiplier (``exp`` of the stored log value)."""
        return float(cast("ClipModel", self.model).logit_scale.detach().float().exp().item())

    @property
    def zero_shot_scale(self) -> float:
        """What zero-shot scoring multiplies cosine similarities by (the temperature; 1 for CheXzero-style models)."""
        return self.family.zero_shot_scale(self.model)

    @property
    def ensemble_size(self) -> int:
        """How many members' features its features join (see :mod:`openmedclip.models.ensemble`); 1 for one model."""
        return int(getattr(self.model, "ensemble_size", 1))

    @property
    def logit_bias(self) -> float | None:
        """The learned logit bias of SigLIP-style models, else None."""
        bias = getattr(self.model, "logit_bias", None)
        return None if bias is None else float(bias.detach().float().item())
