"""The CheXzero family: OpenAI's ViT-B/32 (QuickGELU) fine-tuned on MIMIC-CXR report impressions.

Files: a plain ``torch.save(model.state_dict())`` checkpoint (``best_64_5e-05_original_22000_0.864.pt``, keys of
OpenAI's layout, partly fp16) in ``$OPENMEDCLIP_MODELS/chexzero/``. What differs from the open_clip family is the
input (CheXzero's own CXR preprocessing) and the scoring: cosine similarities without a temperature, so a label's
probability is ``exp(cos+) / (exp(cos+) + exp(cos-))`` over its ("{}", "no {}") pair.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from openmedclip.models.families.open_clip import OpenClipFamily
from openmedclip.models.families.open_clip.config import OpenClipConfig, OpenClipEntry
from openmedclip.models.family import Preprocess, Resolved, register_family
from openmedclip.models.registry import RegistryEntry, register_model

if TYPE_CHECKING:
    import torch


@register_family
class ChexzeroFamily(OpenClipFamily):
    """open_clip's CLIP with CheXzero's preprocessing and temperature-free scoring."""

    name: ClassVar[str] = "chexzero"

    def architectures(self) -> list[str]:
        return []  # plain architecture names belong to the open_clip family

    def recognises(self, path: Any) -> bool:
        return False  # reached through its registry name; a plain folder is read by the open_clip family

    def preprocess(self, resolved: Resolved, model: torch.nn.Module) -> tuple[Preprocess, OpenClipConfig]:
        import dataclasses

        from openmedclip.models.families.chexzero.preprocess import CANVAS, MEAN, STD, ChexzeroPreprocess

        image_size = getattr(getattr(model, "visual", None), "image_size", 224)
        size = int(image_size[0] if isinstance(image_size, (tuple, list)) else image_size)
        cfg = {"size": [size, size], "canvas": CANVAS, "mean": [MEAN] * 3, "std": [STD] * 3, "scale": "0-255",
               "interpolation": "bicubic", "resize_mode": "longest-then-pad"}
        return ChexzeroPreprocess(size), dataclasses.replace(resolved.config, preprocess_cfg=cfg, key_renames={})

    def zero_shot_scale(self, model: torch.nn.Module) -> float:
        return 1.0

    def save(self, loaded: Any, folder: Any, **options: Any) -> Any:
        from openmedclip.errors import ModelLoadError

        raise ModelLoadError(loaded.spec.name, "CheXzero models keep their own preprocessing, which the open_clip hub "
                             "format cannot record; use its checkpoint as it is")


register_model(
    RegistryEntry(
        name="chexzero",
        family="chexzero",
        hf_repo="",
        description="CheXzero: ViT-B/32 CLIP fine-tuned on MIMIC-CXR images and report impressions",
        config=OpenClipEntry(architecture="ViT-B-32", model_overrides={"quick_gelu": True}),
        licence="MIT code; weights trained on MIMIC-CXR (PhysioNet credentialed data)",
        download_url="https://github.com/rajpurkarlab/CheXzero (Google Drive folder linked from its README)",
    ),
    replace=True,
)
