"""The GLoRIA family: global-local chest X-ray representations (ResNet-50 + Bio_ClinicalBERT, CheXpert reports).

Files, in ``$OPENMEDCLIP_MODELS/gloria/``: GLoRIA's PyTorch-Lightning checkpoint ``chexpert_resnet50.ckpt``
(``state_dict`` with ``gloria.``-prefixed keys; its pickled OmegaConf hyper-parameters are read as inert records,
never run, and not used: the architecture is fixed by the entry), plus Bio_ClinicalBERT's ``config.json`` and
``vocab.txt`` (in that folder or the Hugging Face cache; the BERT weights are in the checkpoint).

- ``encode_image`` / ``encode_text`` give the global features; zero-shot scores them by cosine times a fixed 10
  (the temperature of GLoRIA's global contrastive loss; the model has no learned one). GLoRIA's own zero-shot
  instead averages the global and local similarity, takes the best of a class's prompts and z-scores each class
  over the image batch, so its scores depend on the other images; ours are per image.
- :func:`local_similarity` / :func:`similarity` give GLoRIA's word–region similarity and the global/local average.
- ``patch_features`` are the local features ``[B, 19, 19, 768]`` (layer3 → local embedder): the features GLoRIA's
  local similarity compares with words, not average-pooled into the global feature.
- Text goes through GLoRIA's report cleaning (:func:`openmedclip.models.families.gloria.text.clean_text`) before
  the Bio_ClinicalBERT tokenizer (97 tokens). GLoRIA's released inference counts a caption's characters where it
  means its words when choosing the words of the local similarity; here the true word count is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

from openmedclip.errors import ModelLoadError
from openmedclip.models.families.gloria.config import BIO_CLINICALBERT, CHECKPOINT_FILE, GloriaConfig
from openmedclip.models.family import ModelFamily, Preprocess, Resolved, Tokenizer, register_family
from openmedclip.models.registry import RegistryEntry, register_model

if TYPE_CHECKING:
    import torch

    from openmedclip.models.families.gloria.model import GloriaModel
    from openmedclip.models.families.gloria.scoring import Kind
    from openmedclip.models.loaded import LoadedModel

DOWNLOAD_URL = "https://stanfordmedicine.box.com/s/j5h7q99f3pfi7enc0dom73m4nsm6yzvh"
POSITION_IDS = "text_encoder.model.embeddings.position_ids"


def _tiny_vocab() -> tuple[str, ...]:
    words = "a the of no with left right small large lung pleural effusion pneumonia edema opacity heart chest x ray"
    return ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words.split(), "##s", "##ed", "##al", "##ia", "head", "ct")


def _gloria_checkpoint(folder: Path) -> Path | None:
    """The checkpoint in ``folder``: ``chexpert_resnet50.ckpt``, else its only ``*.ckpt``."""
    named = folder / CHECKPOINT_FILE
    if named.is_file():
        return named
    found = sorted(folder.glob("*.ckpt"))
    return found[0] if len(found) == 1 else None


def _has_gloria_keys(path: Path) -> bool:
    """Whether the zip pickle at ``path`` names GLoRIA's key prefix (read as bytes; nothing is unpickled)."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        pickles = [name for name in archive.namelist() if name.endswith("/data.pkl")]
        return bool(pickles) and b"gloria.img_encoder." in archive.read(pickles[0])


@register_family
class GloriaFamily(ModelFamily):
    """GLoRIA's Lightning checkpoint read into :class:`~openmedclip.models.families.gloria.model.GloriaModel`."""

    name: ClassVar[str] = "gloria"
    config_type: ClassVar[type] = GloriaConfig
    tolerated_keys: ClassVar[frozenset[str]] = frozenset({POSITION_IDS})

    def recognises(self, path: Path) -> bool:
        if path.is_dir():
            found = _gloria_checkpoint(path)
            return found is not None and _has_gloria_keys(found)
        return path.suffix.lower() == ".ckpt" and _has_gloria_keys(path)

    def describe_entry(self, entry: RegistryEntry) -> str:
        return "ResNet-50 + Bio_ClinicalBERT (global and local features)"

    def examples(self) -> list[Resolved]:
        bert = {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37,
                "max_position_embeddings": 32, "vocab_size": len(_tiny_vocab())}
        config = GloriaConfig(bert_config=bert, vocab=_tiny_vocab(), resnet_layers=(1, 1, 1, 1),
                              resnet_planes=(8, 8, 16, 16), image_size=64, context_length=24)
        return [Resolved(self.name, config, "example-gloria-tiny", "gloria-arch", None)]

    def resolve(
        self, name_or_path: str | Path, *, checkpoint: Path | None, entry: RegistryEntry | None
    ) -> Resolved:
        from openmedclip.models.locate import download_hint, registry_folder

        if entry is not None:
            try:
                folder = registry_folder(entry)
            except ModelLoadError:
                if checkpoint is not None:  # the text tower's files beside it or in the cache
                    folder = checkpoint.parent
                else:
                    needs = f"{CHECKPOINT_FILE}, and {BIO_CLINICALBERT}'s config.json and vocab.txt"
                    hint = download_hint(entry)
                    raise ModelLoadError(entry.name, f"no local copy found: it needs {needs}. {hint}") from None
            config = entry.config if isinstance(entry.config, GloriaConfig) else GloriaConfig()
            name, given = entry.name, None
        else:
            path = Path(name_or_path).expanduser()
            folder = path if path.is_dir() else path.parent
            config, name, given = GloriaConfig(), str(name_or_path), path if path.is_file() else None
        weights = checkpoint or given or _gloria_checkpoint(folder)
        if weights is None:
            raise ModelLoadError(name, f"no {CHECKPOINT_FILE} in {folder}; download it from {DOWNLOAD_URL}")
        return Resolved(self.name, config, "gloria-resnet50", "checkpoint", weights, folder=folder)

    def build(self, resolved: Resolved, *, name: str) -> torch.nn.Module:
        from transformers import BertConfig

        from openmedclip.models.families.gloria.model import GloriaModel
        from openmedclip.models.families.gloria.text import vocabulary
        from openmedclip.models.hf_local import text_config_dir

        config: GloriaConfig = resolved.config
        if config.bert_config is not None:
            bert_config = BertConfig(**config.bert_config)
        else:
            bert_config = BertConfig.from_pretrained(str(text_config_dir(config.bert, resolved.folder, name)))
        vocab = list(config.vocab) or vocabulary(self._bert_tokenizer(resolved, name))
        return GloriaModel(config, bert_config, vocab)

    def convert_state_dict(self, state: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """Lightning's ``gloria.`` module prefix removed."""
        prefix = "gloria."
        return {key[len(prefix):] if key.startswith(prefix) else key: value for key, value in state.items()}

    def load_weights(self, model: torch.nn.Module, resolved: Resolved, *, name: str) -> None:
        from openmedclip.models.checkpoint import read_state_dict
        from openmedclip.models.families.gloria.lightning_checkpoint import read_lightning_state_dict
        from openmedclip.models.strict import load_strict

        if resolved.weights is None:
            return
        path = resolved.weights
        if path.suffix.lower() == ".safetensors" or not path.is_file():
            state = read_state_dict(path, name)
        else:
            state = read_lightning_state_dict(path, name)
        load_strict(model, self.convert_state_dict(state, model), name=name, source=path,
                    tolerated=self.tolerated_keys)

    def preprocess(self, resolved: Resolved, model: torch.nn.Module) -> tuple[Preprocess, GloriaConfig]:
        from openmedclip.models.families.gloria.preprocess import GloriaPreprocess

        return GloriaPreprocess(), resolved.config

    def tokenizer(self, resolved: Resolved, *, name: str) -> tuple[Tokenizer, int]:
        from openmedclip.models.families.gloria.text import clean_text
        from openmedclip.models.wordpiece import WordPieceTokenizer

        length = resolved.config.context_length
        return WordPieceTokenizer(self._bert_tokenizer(resolved, name), length, prepare=clean_text), length

    def _bert_tokenizer(self, resolved: Resolved, name: str) -> Any:
        from openmedclip.models.families.gloria.text import load_bert_tokenizer
        from openmedclip.models.hf_local import tokenizer_dir

        config: GloriaConfig = resolved.config
        folder = None if config.vocab else tokenizer_dir(config.bert, resolved.folder, name)
        return load_bert_tokenizer(folder, config.vocab)

    # -- optional capabilities ----------------------------------------------------------------------------

    def patch_features(self, model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
        """The local features ``[B, h, w, D]`` (19 × 19 at 299 px)."""
        return cast("GloriaModel", model).local_image_features(pixels).permute(0, 2, 3, 1)

    def zero_shot_scale(self, model: torch.nn.Module) -> float:
        return float(cast("GloriaModel", model).temperature)

    def text_pad_id(self, model: torch.nn.Module) -> int | None:
        """BERT masks padding; the sentence feature, a mean over all positions, changes only in scale."""
        from openmedclip.models.families.gloria.model import GloriaModel

        return model.text_encoder.pad_id if isinstance(model, GloriaModel) else None

    similarity_kinds: ClassVar[tuple[str, ...]] = ("global", "local", "both")

    def similarity(self, model: torch.nn.Module, pixels: torch.Tensor, tokens: torch.Tensor, kind: str) -> torch.Tensor:
        """``[N, T]`` GLoRIA similarities ('global', 'local' or their average 'both') of pixels and token ids."""
        from openmedclip.models.families.gloria.scoring import model_similarity

        return model_similarity(cast("GloriaModel", model), pixels, tokens, cast("Kind", kind))


def similarity(loaded: LoadedModel, pixels: torch.Tensor, tokens: torch.Tensor,
               kind: Literal["global", "local", "both"] = "both") -> torch.Tensor:
    """``[n_images, n_texts]`` GLoRIA similarities ('global', 'local' or 'both') of a loaded GLoRIA model."""
    from openmedclip.models.families.gloria.scoring import similarity as score

    return score(loaded, pixels, tokens, kind)


def local_similarity(loaded: LoadedModel, pixels: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """``[n_images, n_texts]`` GLoRIA local similarities of preprocessed pixels and token ids."""
    return similarity(loaded, pixels, tokens, "local")


register_model(
    RegistryEntry(
        name="gloria",
        family="gloria",
        hf_repo="",
        description="GLoRIA: ResNet-50 + Bio_ClinicalBERT with global and word-region (local) image–text "
                    "alignment, trained on CheXpert reports",
        config=GloriaConfig(),
        needs=(BIO_CLINICALBERT,),
        prompts="chexpert_attributes",
        licence="Apache-2.0",
        download_url=DOWNLOAD_URL,
        files=(CHECKPOINT_FILE,),
    ),
    replace=True,
)

__all__ = ["GloriaConfig", "GloriaFamily", "local_similarity", "similarity"]
