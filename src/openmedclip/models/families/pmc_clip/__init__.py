"""The PMC-CLIP family: ModifiedResNet-50 + PubMedBERT-fulltext, trained on PMC-OA figure-caption pairs.

Files in ``$OPENMEDCLIP_MODELS/pmc-clip/`` (or the Hugging Face cache of the dataset repository ``axiong/pmc_oa``):
the training checkpoint ``checkpoint.pt``, or the three extracted components (see
:mod:`openmedclip.models.families.pmc_clip.weights`); plus the text tower's ``config.json`` and ``vocab.txt``
(BiomedBERT-base-uncased-abstract-fulltext, formerly PubMedBERT) in that folder or in the hub cache.
A folder holding the components is also read as a path. Heavy libraries are imported only when a model is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, cast

from openmedclip.errors import ModelLoadError
from openmedclip.models.families.pmc_clip.config import CHECKPOINT, COMPONENT_FILES, TEXT_REPO, PmcClipConfig
from openmedclip.models.family import ModelFamily, Preprocess, Resolved, Tokenizer, register_family
from openmedclip.models.locate import download_hint, registry_folder
from openmedclip.models.registry import RegistryEntry, register_model

if TYPE_CHECKING:
    import torch

    from openmedclip.models.families.pmc_clip.model import PmcClipModel

FAMILY = "pmc_clip"
EXAMPLE_VOCAB = (
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    *"abcdefghijklmnopqrstuvwxyz0123456789", *(f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789"),
    *".,;:-()/%'\"",
)
"""A character-level WordPiece vocabulary for the tiny example model ([CLS] at id 2, as in PubMedBERT)."""


@register_family
class PmcClipFamily(ModelFamily):
    """PMC-CLIP's own architecture, rebuilt from open_clip's ModifiedResNet and a transformers BertModel."""

    name: ClassVar[str] = FAMILY
    config_type: ClassVar[type] = PmcClipConfig

    def recognises(self, path: Path) -> bool:
        folder = path if path.is_dir() else path.parent
        return all((folder / file).is_file() for file in COMPONENT_FILES)

    def describe_entry(self, entry: RegistryEntry) -> str:
        config: PmcClipConfig = entry.config
        depth = "50" if tuple(config.vision_layers) == (3, 4, 6, 3) else str(list(config.vision_layers))
        return f"ModifiedResNet-{depth} {config.image_size} px + {config.text_model.split('/')[-1]}"

    def examples(self) -> list[Resolved]:
        bert = {"vocab_size": len(EXAMPLE_VOCAB), "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                "intermediate_size": 37, "max_position_embeddings": 80, "pad_token_id": 0}
        config = PmcClipConfig(embed_dim=16, image_size=64, vision_layers=(1, 1, 1, 1), vision_width=8,
                               vision_heads=32, text_config=bert, vocab=EXAMPLE_VOCAB)
        return [Resolved(FAMILY, config, "example-modified-resnet-bert", "pmc-clip-example", None)]

    def resolve(
        self, name_or_path: str | Path, *, checkpoint: Path | None, entry: RegistryEntry | None
    ) -> Resolved:
        if entry is not None:
            folder = registry_folder(entry)
            config: PmcClipConfig = entry.config
        else:
            path = Path(name_or_path).expanduser()
            folder, config = (path if path.is_dir() else path.parent), PmcClipConfig()
        weights = checkpoint if checkpoint is not None else _weights_in(folder, entry, str(name_or_path))
        kind = "components" if weights.is_dir() else "checkpoint"
        return Resolved(FAMILY, config, _architecture(config), f"pmc-clip-{kind}", weights, folder,
                        entry.hf_repo if entry is not None else None)

    def build(self, resolved: Resolved, *, name: str) -> torch.nn.Module:
        from openmedclip.models.families.pmc_clip.model import PmcClipModel
        from openmedclip.models.families.pmc_clip.text import bert_config

        return PmcClipModel(resolved.config, bert_config(resolved.config, resolved.folder, name))

    def convert_state_dict(self, state: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The training checkpoint's MLM/fusion parts and unused text stem set aside (by name)."""
        from openmedclip.models.families.pmc_clip.weights import without_unused

        return without_unused(state)

    def load_weights(self, model: torch.nn.Module, resolved: Resolved, *, name: str) -> None:
        from openmedclip.models.families.pmc_clip.weights import STALE_BUFFERS, read_weights
        from openmedclip.models.strict import load_strict

        if resolved.weights is None:
            return
        state = self.convert_state_dict(read_weights(resolved.weights, name), model)
        load_strict(model, state, name=name, source=resolved.weights, tolerated=STALE_BUFFERS)

    def preprocess(self, resolved: Resolved, model: torch.nn.Module) -> tuple[Preprocess, PmcClipConfig]:
        from openmedclip.models.families.pmc_clip.preprocess import build_preprocess

        return build_preprocess(resolved.config.image_size), resolved.config

    def tokenizer(self, resolved: Resolved, *, name: str) -> tuple[Tokenizer, int]:
        from openmedclip.models.families.pmc_clip.text import build_tokenizer

        return build_tokenizer(resolved.config, resolved.folder, name), resolved.config.context_length

    def patch_features(self, model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
        return cast("PmcClipModel", model).patch_features(pixels)


def _architecture(config: PmcClipConfig) -> str:
    return f"pmc-clip:ModifiedResNet{list(config.vision_layers)}x{config.vision_width}+{config.text_model}"


def _weights_in(folder: Path, entry: RegistryEntry | None, name: str) -> Path:
    from openmedclip.models.families.pmc_clip.weights import find_weights

    weights = find_weights(folder)
    if weights is None:
        hint = download_hint(entry) if entry is not None else "put them in that folder"
        raise ModelLoadError(name, f"{folder} holds no PMC-CLIP weights: {_files_sentence()}. {hint}")
    return weights


def _files_sentence() -> str:
    return f"{CHECKPOINT} (or the three extracted components {', '.join(COMPONENT_FILES)})"


register_model(
    RegistryEntry(
        name="pmc-clip",
        family=FAMILY,
        hf_repo="axiong/pmc_oa",
        description="PMC-CLIP: ModifiedResNet-50 + PubMedBERT, trained on 1.6M PMC-OA figure-caption pairs",
        config=PmcClipConfig(),
        needs=(TEXT_REPO,),
        licence="MIT (the code's LICENSE file; its setup.py classifier says Apache-2.0); no separate terms "
        "stated for the weights",
        repo_type="dataset",
        files=(CHECKPOINT,),
    ),
    replace=True,
)
