"""PMC-CLIP's text side, offline: the BERT config and the WordPiece tokenizer of PubMedBERT-fulltext.

Both come from the model folder or the Hugging Face cache of the text repository (either of its names), found by
:mod:`openmedclip.models.hf_local`; tiny example models carry theirs inline.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import BertConfig, BertTokenizer, PreTrainedTokenizerFast

from openmedclip.errors import ModelLoadError
from openmedclip.models.families.pmc_clip.config import PmcClipConfig
from openmedclip.models.hf_local import text_config_dir, tokenizer_dir

SPECIAL_TOKENS = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                  "mask_token": "[MASK]"}


def bert_config(config: PmcClipConfig, folder: Path | None, name: str) -> BertConfig:
    """The text tower's ``BertConfig``: inline, or from ``config.json`` in ``folder`` or the cache."""
    if config.text_config is not None:
        return BertConfig(**dict(config.text_config))
    source = text_config_dir(config.text_model, folder, name)
    try:
        return BertConfig.from_pretrained(str(source))
    except (OSError, ValueError, TypeError) as error:
        raise ModelLoadError(name, f"cannot read the text tower's config in {source}: {error}") from None


class PmcClipTokenizer:
    """Texts → ``[N, context_length]`` ids, as PMC-CLIP tokenizes: pad to the full length, truncate."""

    def __init__(self, tokenizer: Any, context_length: int):
        self.tokenizer = tokenizer
        self.context_length = context_length

    def __call__(self, texts: list[str]) -> torch.Tensor:
        encoded = self.tokenizer(
            list(texts), padding="max_length", truncation=True, max_length=self.context_length, return_tensors="pt"
        )
        return encoded["input_ids"]

    def __repr__(self) -> str:
        return f"PmcClipTokenizer({type(self.tokenizer).__name__}, context_length={self.context_length})"


def build_tokenizer(config: PmcClipConfig, folder: Path | None, name: str) -> Callable[[list[str]], torch.Tensor]:
    """PubMedBERT's uncased WordPiece tokenizer from its files (or the inline example vocabulary)."""
    if config.vocab:
        return PmcClipTokenizer(_inline_tokenizer(config.vocab), config.context_length)
    source = tokenizer_dir(config.text_model, folder, name)
    try:
        tokenizer = BertTokenizer.from_pretrained(str(source))
    except (OSError, ValueError, TypeError) as error:
        raise ModelLoadError(name, f"cannot load the tokenizer from {source}: {error}") from None
    return PmcClipTokenizer(tokenizer, config.context_length)


def _inline_tokenizer(vocab: tuple[str, ...]) -> PreTrainedTokenizerFast:
    """A BERT-style uncased WordPiece tokenizer over ``vocab`` (held in memory, no files)."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece

    ids = {token: index for index, token in enumerate(vocab)}
    backend = Tokenizer(WordPiece(ids, unk_token=SPECIAL_TOKENS["unk_token"]))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])]
    )
    backend.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(tokenizer_object=backend, **SPECIAL_TOKENS)
