"""The BioViL family: Microsoft's BioViL and BioViL-T chest X-ray models (hi-ml), read without remote code.

Files (one folder, as the Hugging Face repositories publish them): the image checkpoint, a plain state dict of
hi-ml's ``ImageModel`` (torchvision ResNet-50 + 1×1-conv projector), beside CXR-BERT's ``config.json``,
``vocab.txt``, ``tokenizer_config.json`` and ``pytorch_model.bin``. Both towers project into a 128-d space and are
compared by cosine similarity without a temperature. Heavy libraries are imported only when a model is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal, cast

from openmedclip.models.families.biovil.config import (
    TEXT_FILES,
    BiovilConfig,
    BiovilEntry,
    ImageSettings,
)
from openmedclip.models.family import ModelFamily, Preprocess, Resolved, Tokenizer, register_family
from openmedclip.models.registry import RegistryEntry, register_model

if TYPE_CHECKING:
    import torch

VARIANTS: tuple[Literal["biovil", "biovil-t"], ...] = ("biovil", "biovil-t")

TEXT_TOLERATED = frozenset({"bert.embeddings.position_ids", "bert.embeddings.token_type_ids"})
"""Buffers that CXR-BERT files written with transformers < 4.31 carry (recomputed on build)."""

EXAMPLE_VOCAB = (
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "no", "chest", "x", "-", "ray", "head", "ct", "pneumonia",
    "effusion", "##s",
)
EXAMPLE_TEXT = {
    "vocab_size": len(EXAMPLE_VOCAB), "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
    "intermediate_size": 24, "max_position_embeddings": 32, "projection_size": 8, "pad_token_id": 0,
}


@register_family
class BiovilFamily(ModelFamily):
    """hi-ml's BioViL image model and CXR-BERT."""

    name: ClassVar[str] = "biovil"
    config_type: ClassVar[type] = BiovilConfig
    tolerated_keys: ClassVar[frozenset[str]] = frozenset(
        {"logit_scale", *("text." + key for key in TEXT_TOLERATED)}
    )
    """The training temperature (not in the published files) and CXR-BERT's stale buffers."""

    def recognises(self, path: Path) -> bool:
        from openmedclip.models.families.biovil.locate import image_variant

        return image_variant(path) is not None

    def describe_entry(self, entry: RegistryEntry) -> str:
        image: ImageSettings = entry.config.image
        kind = "ResNet-50" if image.variant == "biovil" else "ResNet-50 + prior-image ViT pooler"
        return f"{kind} {image.crop} px + CXR-BERT"

    def examples(self) -> list[Resolved]:
        return [
            Resolved(
                self.name,
                BiovilConfig(ImageSettings(variant, width_divisor=16, num_classes=4, joint_dim=8, resize=72,
                                           crop=64, pooler_dim=16, pooler_blocks=1),
                             dict(EXAMPLE_TEXT), context_length=16, vocab=EXAMPLE_VOCAB),
                f"example-{variant}",
                "biovil-arch",
                None,
            )
            for variant in VARIANTS
        ]

    def resolve(
        self, name_or_path: str | Path, *, checkpoint: Path | None, entry: RegistryEntry | None
    ) -> Resolved:
        from openmedclip.models.families.biovil import locate
        from openmedclip.models.registry import registry

        if entry is not None:
            return locate.resolve_entry(entry, checkpoint)
        path = Path(name_or_path).expanduser()
        folder = path if path.is_dir() else path.parent
        variant = locate.image_variant(path)
        settings = next(
            (e.config for e in registry().values() if e.family == self.name and e.config.image.variant == variant),
            BiovilEntry(),
        )
        return locate.resolve_folder(folder, settings, str(name_or_path), checkpoint)

    def build(self, resolved: Resolved, *, name: str) -> torch.nn.Module:
        from openmedclip.models.families.biovil.model import BiovilModel

        return BiovilModel(resolved.config)

    def load_weights(self, model: torch.nn.Module, resolved: Resolved, *, name: str) -> None:
        from openmedclip.models.checkpoint import read_state_dict
        from openmedclip.models.families.biovil.locate import FOLDER_FORMAT, text_weights
        from openmedclip.models.families.biovil.model import BiovilModel
        from openmedclip.models.families.biovil.text import untie_check
        from openmedclip.models.strict import load_strict

        if resolved.weights is None:
            return
        if resolved.format == FOLDER_FORMAT and resolved.folder is not None:
            towers = cast(BiovilModel, model)
            load_strict(towers.image, read_state_dict(resolved.weights, name), name=name, source=resolved.weights)
            text_file = text_weights(resolved.folder, name)
            state = untie_check(read_state_dict(text_file, name), "", name)
            load_strict(towers.text, state, name=name, source=text_file, tolerated=TEXT_TOLERATED)
            return
        state = untie_check(read_state_dict(resolved.weights, name), "text.", name)
        load_strict(model, state, name=name, source=resolved.weights, tolerated=self.tolerated_keys)

    def preprocess(self, resolved: Resolved, model: torch.nn.Module) -> tuple[Preprocess, BiovilConfig]:
        from openmedclip.models.families.biovil.preprocess import BiovilPreprocess

        image: ImageSettings = resolved.config.image
        return BiovilPreprocess(image.resize, image.crop), resolved.config

    def tokenizer(self, resolved: Resolved, *, name: str) -> tuple[Tokenizer, int]:
        from openmedclip.models.families.biovil.tokenizer import load_tokenizer

        config: BiovilConfig = resolved.config
        context_length = min(config.context_length, int(config.text.get("max_position_embeddings", 512)))
        return load_tokenizer(resolved.folder, config.vocab, context_length, name), context_length

    def patch_features(self, model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
        """The projected patch embeddings ``[B, rows, columns, 128]`` (15 × 15 at 480 px; 14 × 14 for BioViL-T)."""
        from openmedclip.models.families.biovil.model import BiovilModel

        assert isinstance(model, BiovilModel)
        return model.patch_features(pixels)

    def zero_shot_scale(self, model: torch.nn.Module) -> float:
        return 1.0

    def text_pad_id(self, model: torch.nn.Module) -> int | None:
        """CXR-BERT masks padding and the feature is the [CLS] token's."""
        from openmedclip.models.families.biovil.model import BiovilModel

        return model.text.pad_token_id if isinstance(model, BiovilModel) else None


def _entry(name: str, repo: str, revision: str, image: ImageSettings, description: str) -> RegistryEntry:
    settings = BiovilEntry(image)
    return RegistryEntry(
        name=name,
        family="biovil",
        hf_repo=repo,
        description=description,
        config=settings,
        prompts="radiology_findings",
        licence="MIT",
        revision=revision,
        files=(settings.image_file, *TEXT_FILES, "pytorch_model.bin"),
        checksums={settings.image_file: IMAGE_MD5[image.variant]},
    )


IMAGE_MD5 = {"biovil": "md5:02ce6ee460f72efd599295f440dbb453", "biovil-t": "md5:a83080e2f23aa584a4f2b24c39b1bb64"}

register_model(
    _entry("biovil", "microsoft/BiomedVLP-CXR-BERT-specialized", "v1.1", ImageSettings(),
           "BioViL: ResNet-50 and CXR-BERT-specialized trained on MIMIC-CXR images and reports"),
    replace=True,
)
register_model(
    _entry("biovil-t", "microsoft/BiomedVLP-BioViL-T", "v1.0", ImageSettings("biovil-t", crop=448),
           "BioViL-T: ResNet-50 (single-image path of the temporal model) and its CXR-BERT, trained on MIMIC-CXR"),
    replace=True,
)
