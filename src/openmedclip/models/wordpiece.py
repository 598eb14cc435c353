"""BERT WordPiece tokenizers of the BERT-based families (PMC-CLIP, MedCLIP, BioViL, GLoRIA), as one callable.

Each family reads its tokenizer files with ``from_pretrained(folder)`` (never ``BertTokenizerFast(vocab_file=...)``,
which ignores the vocabulary in transformers 5) or holds a tiny vocabulary in memory (example models); this module
turns either into ``texts -> [N, context_length]`` token ids that a saved model folder can write back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

SPECIAL_TOKENS = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                  "mask_token": "[MASK]"}


class WordPieceTokenizer:
    """Texts -> ``[N, context_length]`` ids: each text rewritten by ``prepare`` (a family's own cleaning, if any),
    then tokenized with [CLS]/[SEP], truncated and padded to the context length."""

    def __init__(self, tokenizer: Any, context_length: int, prepare: Callable[[str], str] | None = None):
        self.tokenizer = tokenizer
        self.context_length = context_length
        self.prepare = prepare

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        prepared = [self.prepare(text) for text in texts] if self.prepare else list(texts)
        encoded = self.tokenizer(prepared, padding="max_length", truncation=True, max_length=self.context_length,
                                 return_tensors="pt")
        return encoded["input_ids"].long()

    def save_pretrained(self, folder: str) -> None:
        """Write the tokenizer files (``vocab.txt``, ``tokenizer_config.json``, ...) into ``folder``."""
        self.tokenizer.save_pretrained(folder)

    def __repr__(self) -> str:
        prepare = f", prepare={getattr(self.prepare, '__name__', self.prepare)}" if self.prepare else ""
        return (f"WordPieceTokenizer({type(self.tokenizer).__name__}, vocab={len(self.tokenizer)}, "
                f"context_length={self.context_length}{prepare})")


def in_memory_wordpiece(vocab: Sequence[str], *, lowercase: bool = True) -> Any:
    """A BERT-style WordPiece tokenizer over ``vocab`` (ids in order; it holds the special tokens), no files."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from transformers import PreTrainedTokenizerFast

    ids = {token: index for index, token in enumerate(vocab)}
    backend = Tokenizer(WordPiece(ids, unk_token=SPECIAL_TOKENS["unk_token"]))
    backend.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])]
    )
    backend.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(tokenizer_object=backend, **SPECIAL_TOKENS)
