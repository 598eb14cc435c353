"""The CheXzero family: OpenAI's ViT-B/32 (QuickGELU) fine-tuned on MIMIC-CXR report impressions.

Files: a plain ``torch.save(model.state_dict())`` checkpoint (``best_64_5e-05_original_22000_0.864.pt``, keys of
OpenAI's layout, partly fp16) in ``$OPENMEDCLIP_MODELS/chexzero/``; a folder of several (the published ten) is an
ensemble whose zero-shot probabilities are averaged (:mod:`openmedclip.models.ensemble`). What differs from the
open_clip family is the input (CheXzero's own CXR preprocessing) and the scoring: cosine similarities without a
temperature, so a label's probability is ``exp(cos+) / (exp(cos+) + exp(cos-))`` over its ("{}", "no {}") pair.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

from openmedclip.models.families.open_clip import OpenClipFamily
from openmedclip.models.families.open_clip.config import OpenClipConfig, OpenClipEntry
from openmedclip.models.family import ModelFamily, Preprocess, Resolved, register_family
from openmedclip.models.registry import RegistryEntry, register_model

if TYPE_CHECKING:
    import torch

    from openmedclip.models.loaded import LoadedModel

ENSEMBLE_FORMAT = "chexzero-ensemble"


@dataclass(frozen=True)
class EnsembleConfig:
    """An ensemble's shared open_clip config and one checkpoint file per member."""

    member: OpenClipConfig
    checkpoints: tuple[Path, ...]

    @property
    def preprocess_cfg(self) -> dict:
        return self.member.preprocess_cfg


@register_family
class ChexzeroFamily(OpenClipFamily):
    """open_clip's CLIP with CheXzero's preprocessing and temperature-free scoring."""

    name: ClassVar[str] = "chexzero"

    def architectures(self) -> list[str]:
        return []  # plain architecture names belong to the open_clip family

    def recognises(self, path: Any) -> bool:
        return False  # reached through its registry name; a plain folder is read by the open_clip family

    def resolve(
        self, name_or_path: str | Path, *, checkpoint: Path | None, entry: RegistryEntry | None
    ) -> Resolved:
        """One checkpoint file, or a folder of several: the registry folder, or ``checkpoint=`` naming a folder."""
        from openmedclip.models.checkpoint import CHECKPOINT_SUFFIXES
        from openmedclip.models.families.open_clip.locate import hub_folder
        from openmedclip.models.locate import registry_folder

        if entry is None:
            return super().resolve(name_or_path, checkpoint=checkpoint, entry=entry)
        folder = checkpoint if checkpoint is None or checkpoint.is_dir() else checkpoint.parent
        folder = folder if folder is not None else registry_folder(entry)
        if checkpoint is not None and not checkpoint.is_dir():
            members = [checkpoint]
        else:
            members = sorted(path for path in folder.iterdir() if path.suffix.lower() in CHECKPOINT_SUFFIXES)
        one = dataclasses.replace(hub_folder(folder, str(name_or_path), members[0] if members else None, entry),
                                  family=self.name)
        if len(members) < 2:
            return one
        return dataclasses.replace(one, config=EnsembleConfig(one.config, tuple(members)), format=ENSEMBLE_FORMAT,
                                   weights=folder)

    def build(self, resolved: Resolved, *, name: str) -> torch.nn.Module:
        if not isinstance(resolved.config, EnsembleConfig):
            return super().build(resolved, name=name)
        from openmedclip.models.ensemble import ClipEnsemble

        member = dataclasses.replace(resolved, config=resolved.config.member)
        build = super().build
        return ClipEnsemble([build(member, name=name) for _ in resolved.config.checkpoints])

    def load_weights(self, model: torch.nn.Module, resolved: Resolved, *, name: str) -> None:
        if not isinstance(resolved.config, EnsembleConfig):
            return super().load_weights(model, resolved, name=name)
        for member, path in zip(cast("torch.nn.ModuleList", model.members), resolved.config.checkpoints, strict=True):
            super().load_weights(member, dataclasses.replace(resolved, config=resolved.config.member, weights=path),
                                 name=name)

    def tokenizer(self, resolved: Resolved, *, name: str) -> Any:
        config = resolved.config
        member = dataclasses.replace(resolved, config=config.member) if isinstance(config, EnsembleConfig) else resolved
        return super().tokenizer(member, name=name)

    def patch_features(self, model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
        members = getattr(model, "members", None)
        if members is None:
            return super().patch_features(model, pixels)
        import torch

        from openmedclip.models.ensemble import normalize_members

        features = super().patch_features
        joined = torch.cat([features(member, pixels) for member in members], dim=-1)
        return normalize_members(joined, len(members))

    def lock_towers(self, model: torch.nn.Module, *, image: bool | int, text: bool | int) -> None:
        if hasattr(model, "members") and (image is not False or text is not False):
            from openmedclip.errors import ModelLoadError

            raise ModelLoadError(self.name, "an ensemble cannot be fine-tuned; train one checkpoint (checkpoint=FILE)")
        super().lock_towers(model, image=image, text=text)

    def frozen_text_encoder(self, model: torch.nn.Module, *, max_entries: int) -> Any:
        return None if hasattr(model, "members") else super().frozen_text_encoder(model, max_entries=max_entries)

    def preprocess(self, resolved: Resolved, model: torch.nn.Module) -> tuple[Preprocess, Any]:
        from openmedclip.models.families.chexzero.preprocess import CANVAS, MEAN, STD, ChexzeroPreprocess

        image_size = getattr(getattr(model, "visual", None), "image_size", 224)
        size = int(image_size[0] if isinstance(image_size, (tuple, list)) else image_size)
        cfg = {"size": [size, size], "canvas": CANVAS, "mean": [MEAN] * 3, "std": [STD] * 3, "scale": "0-255",
               "interpolation": "bicubic", "resize_mode": "longest-then-pad"}
        config = resolved.config
        if isinstance(config, EnsembleConfig):
            member = dataclasses.replace(config.member, preprocess_cfg=cfg, key_renames={})
            return ChexzeroPreprocess(size), dataclasses.replace(config, member=member)
        return ChexzeroPreprocess(size), dataclasses.replace(config, preprocess_cfg=cfg, key_renames={})

    def zero_shot_scale(self, model: torch.nn.Module) -> float:
        return 1.0

    def save(self, loaded: LoadedModel, folder: Path, **options: Any) -> Path:
        """openmedclip's own folder (the open_clip hub format cannot record CheXzero's preprocessing)."""
        if hasattr(loaded.model, "members"):
            from openmedclip.errors import ModelLoadError

            raise ModelLoadError(loaded.spec.name, "an ensemble is saved as its members' checkpoints; save one member")
        return ModelFamily.save(self, loaded, folder, **options)


register_model(
    RegistryEntry(
        name="chexzero",
        family="chexzero",
        hf_repo="",
        description="CheXzero: ViT-B/32 CLIP fine-tuned on MIMIC-CXR images and report impressions",
        config=OpenClipEntry(architecture="ViT-B-32", model_overrides={"quick_gelu": True}),
        prompts="single",
        licence="MIT code; weights trained on MIMIC-CXR (PhysioNet credentialed data)",
        download_url="https://github.com/rajpurkarlab/CheXzero (Google Drive folder linked from its README)",
    ),
    replace=True,
)
