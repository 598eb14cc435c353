"""Model families: the interface every kind of CLIP model implements, and the decorator that registers one.

A family knows one way of building and reading models (open_clip's, MedCLIP's, ...). It supplies:

- **files**: which names and paths it reads (:meth:`ModelFamily.architectures`, :meth:`ModelFamily.recognises`)
  and how a name, folder or checkpoint turns into a typed config plus weights (:meth:`ModelFamily.resolve`);
- **build**: a randomly initialised module from that config, and :meth:`ModelFamily.convert_state_dict` mapping a
  checkpoint's keys onto it (loading is strict; ``tolerated_keys`` lists exactly the known-harmless extras);
- **input**: ``preprocess(MedicalImage) -> tensor`` with the geometry that maps model pixels back to source
  pixels, and a tokenizer with its context length;
- **output**: :meth:`ModelFamily.save` (and so export);
- **optional capabilities**: patch features (heat maps), tower locking, a frozen-text cache (training) and the
  padding id that text batches may be trimmed of (:meth:`ModelFamily.text_pad_id`).

Register a family from any code with ``@register_family``; registry entries (:mod:`openmedclip.models.registry`)
then name it. Nothing here imports torch, so listing families and models stays fast.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, cast

from openmedclip.errors import ModelLoadError

if TYPE_CHECKING:
    import torch

    from openmedclip.io import MedicalImage
    from openmedclip.models.loaded import LoadedModel
    from openmedclip.models.registry import RegistryEntry


@dataclass(frozen=True)
class Geometry:
    """How a preprocess maps a source image onto the model's input grid.

    The source (``source_size`` rows × columns) is resized to ``resized_size``; the model sees the window of
    ``model_size`` whose top-left corner is at ``offset`` in resized pixels (negative where the window extends
    into padding).
    """

    source_size: tuple[int, int]
    resized_size: tuple[int, int]
    offset: tuple[int, int]
    model_size: tuple[int, int]

    def to_source(self, row: float, column: float) -> tuple[float, float]:
        """The source-pixel coordinates (row, column; pixel centres at integers) of a model-pixel position."""
        scale_r = self.source_size[0] / self.resized_size[0]
        scale_c = self.source_size[1] / self.resized_size[1]
        return (row + self.offset[0] + 0.5) * scale_r - 0.5, (column + self.offset[1] + 0.5) * scale_c - 0.5


class Preprocess(Protocol):
    """What a family's preprocess offers: ``MedicalImage -> [C, H, W]`` float tensor, plus its geometry."""

    def __call__(self, image: MedicalImage) -> torch.Tensor: ...

    def geometry(self, source_size: tuple[int, int]) -> Geometry: ...


Tokenizer = Callable[[list[str]], "torch.Tensor"]
"""Texts -> ``[N, context_length]`` LongTensor."""


@dataclass(frozen=True)
class Resolved:
    """What :meth:`ModelFamily.resolve` found: everything needed to build and load, before anything is built."""

    family: str
    config: Any
    """The family's typed config."""
    architecture: str
    format: str
    """How it was found: 'open_clip-hub', 'open_clip-arch', 'checkpoint', 'config', ..."""
    weights: Path | None
    folder: Path | None = None
    hf_repo: str | None = None
    runtime: str = "auto"
    """'auto': a family may build covered architectures from plain-torch modules (faster to start); 'library':
    always the library's classes (what training and tower locking need). Set by ``load_model``."""


class ModelFamily(ABC):
    """One kind of model; subclass, set ``name`` and ``config_type``, and decorate with ``@register_family``."""

    name: ClassVar[str]
    config_type: ClassVar[type]
    tolerated_keys: ClassVar[frozenset[str]] = frozenset()
    """Keys that may be in only one of checkpoint and model (non-persistent buffers saved by older versions)."""

    def architectures(self) -> list[str]:
        """Plain names this family builds with random weights (or with ``checkpoint=``)."""
        return []

    def recognises(self, path: Path) -> bool:
        """Whether ``path`` (a file or folder) holds a model of this family."""
        return False

    def describe_entry(self, entry: RegistryEntry) -> str:
        """A short description of a registry entry's architecture, for the models table."""
        return entry.description

    def examples(self) -> list[Resolved]:
        """Tiny, randomly initialised configurations covering the family's tower types (for sweeps and docs)."""
        return []

    @abstractmethod
    def resolve(
        self, name_or_path: str | Path, *, checkpoint: Path | None, entry: RegistryEntry | None
    ) -> Resolved:
        """The config and weights that a registry entry, an architecture name or a path stands for."""

    @abstractmethod
    def build(self, resolved: Resolved, *, name: str) -> torch.nn.Module:
        """A randomly initialised module with the model protocol (see :mod:`openmedclip.models.protocol`)."""

    def convert_state_dict(self, state: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """A checkpoint's tensors under the module's key names (known, lossless renames only)."""
        return state

    @abstractmethod
    def load_weights(self, model: torch.nn.Module, resolved: Resolved, *, name: str) -> None:
        """Copy the resolved weights into ``model``, strictly (see :func:`openmedclip.models.strict.load_strict`)."""

    @abstractmethod
    def preprocess(self, resolved: Resolved, model: torch.nn.Module) -> tuple[Preprocess, Any]:
        """The inference preprocess and the (possibly completed) config it was built from."""

    @abstractmethod
    def tokenizer(self, resolved: Resolved, *, name: str) -> tuple[Tokenizer, int]:
        """The tokenizer and its context length."""

    def save(self, loaded: LoadedModel, folder: Path, **options: Any) -> Path:
        """Write ``loaded`` as a folder that ``load_model`` reads back: by default openmedclip's own folder
        (:mod:`openmedclip.models.saved_folder`); ``dtype`` stores floating weights in that type."""
        from openmedclip.models.saved_folder import save_folder

        unknown = set(options) - {"dtype"}
        if unknown:
            raise ModelLoadError(loaded.spec.name, f"unknown save options for {self.name} models: {sorted(unknown)}")
        return save_folder(self, loaded, folder, dtype=options.get("dtype"))

    def save_files(self, loaded: LoadedModel, folder: Path) -> None:
        """Write the files a saved folder needs beside its weights, so that it loads without the files it came
        from: by default the tokenizer's (``save_pretrained``) and the ``config.json`` of a BERT text tower."""
        save_pretrained = getattr(loaded.tokenizer, "save_pretrained", None)
        if save_pretrained is not None:
            save_pretrained(str(folder))
        for module in loaded.model.modules():
            config: Any = getattr(module, "config", None)
            if getattr(config, "model_type", None) == "bert" and hasattr(config, "save_pretrained"):
                config.save_pretrained(str(folder))
                break

    # -- optional capabilities ----------------------------------------------------------------------------

    def patch_features(self, model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
        """Per-location image features in the joint space, ``[B, rows, columns, D]`` (for heat maps)."""
        raise ModelLoadError(self.name, "this model family gives no patch features")

    def lock_towers(self, model: torch.nn.Module, *, image: bool | int, text: bool | int) -> None:
        """Freeze towers for training: True freezes one, an int N leaves its last N layer groups trainable."""
        if image is not False or text is not False:
            raise ModelLoadError(self.name, "this model family cannot lock its towers")

    similarity_kinds: ClassVar[tuple[str, ...]] = ("global",)
    """How this family can score image–text pairs: 'global' is the cosine of the pooled features; others (e.g.
    GLoRIA's word–region 'local') are computed by :meth:`similarity`."""

    def similarity(self, model: torch.nn.Module, pixels: torch.Tensor, tokens: torch.Tensor, kind: str) -> torch.Tensor:
        """``[N, T]`` scores of ``[N, C, H, W]`` pixels and ``[T, L]`` token ids by one of ``similarity_kinds``."""
        raise ModelLoadError(self.name, f"this model family scores only by global similarity, not '{kind}'")

    def zero_shot_scale(self, model: torch.nn.Module) -> float:
        """The multiplier of cosine similarities in zero-shot scoring: the learned temperature by default."""
        scale = cast("torch.Tensor", model.logit_scale)
        return float(scale.detach().float().exp().item())

    def add_logit_bias(self, loaded: LoadedModel, value: float) -> LoadedModel:
        """A SigLIP logit bias for a model without one, recorded in the config its checkpoints save."""
        raise ModelLoadError(self.name, "this model family cannot add a logit bias")

    def frozen_text_encoder(
        self, model: torch.nn.Module, *, max_entries: int
    ) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """A text encoder that reuses the frozen part of the text tower per caption, or None when not frozen."""
        return None

    def text_pad_id(self, model: torch.nn.Module) -> int | None:
        """The padding token id whose trailing columns may be cut from a token batch without changing the
        L2-normalised text features (the text tower masks that id and pools over the other positions), or None
        where the tower needs the full context (the default)."""
        return None


FamilyT = TypeVar("FamilyT", bound=type[ModelFamily])

FAMILIES: dict[str, ModelFamily] = {}
"""Registered families by name, in registration order."""


def register_family(cls: FamilyT) -> FamilyT:
    """Class decorator: register one instance of a :class:`ModelFamily` subclass under ``cls.name``."""
    if not getattr(cls, "name", None):
        raise TypeError(f"{cls.__name__} needs a class attribute 'name'")
    FAMILIES[cls.name] = cls()
    return cls


def get_family(name: str) -> ModelFamily:
    """The registered family ``name``; ``ModelLoadError`` listing the known ones otherwise."""
    from openmedclip.models.families import load_builtin_families

    load_builtin_families()
    if name not in FAMILIES:
        raise ModelLoadError(name, f"unknown model family (registered: {', '.join(FAMILIES)})")
    return FAMILIES[name]

