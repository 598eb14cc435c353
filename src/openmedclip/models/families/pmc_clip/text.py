"""PMC-CLIP's text side, offline: the BERT config and the WordPiece tokenizer of PubMedBERT-fulltext.

Both come from the model folder or the Hugging Face cache of the text repository (either of its names), found by
:mod:`openmedclip.models.hf_local`; tiny example models carry theirs inline.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from transformers import BertConfig, BertTokenizer

from openmedclip.errors import ModelLoadError
from openmedclip.models.families.pmc_clip.config import PmcClipConfig
from openmedclip.models.hf_local import text_config_dir, tokenizer_dir
from openmedclip.models.wordpiece import WordPieceTokenizer, in_memory_wordpiece


def bert_config(config: PmcClipConfig, folder: Path | None, name: str) -> BertConfig:
    """The text tower's ``BertConfig``: inline, or from ``config.json`` in ``folder`` or the cache."""
    if config.text_config is not None:
        return BertConfig(**dict(config.text_config))
    source = text_config_dir(config.text_model, folder, name)
    try:
        return BertConfig.from_pretrained(str(source))
    except (OSError, ValueError, TypeError) as error:
        raise ModelLoadError(name, f"cannot read the text tower's config in {source}: {error}") from None


def build_tokenizer(config: PmcClipConfig, folder: Path | None, name: str) -> Callable[[list[str]], torch.Tensor]:
    """PubMedBERT's uncased WordPiece tokenizer from its files (or the inline example vocabulary)."""
    if config.vocab:
        return WordPieceTokenizer(in_memory_wordpiece(config.vocab), config.context_length)
    source = tokenizer_dir(config.text_model, folder, name)
    try:
        tokenizer = BertTokenizer.from_pretrained(str(source))
    except (OSError, ValueError, TypeError) as error:
        raise ModelLoadError(name, f"cannot load the tokenizer from {source}: {error}") from None
    return WordPieceTokenizer(tokenizer, config.context_length)

