"""CXR-BERT's tokenizer: a plain uncased BERT WordPiece tokenizer read from the model folder (no remote code).

As upstream does, trailing ``!``, ``?`` and ``.`` are stripped from each text before tokenizing. Texts are padded
to the context length; the model masks the padding, so embeddings equal those of upstream's padding to the
longest text in a batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import BertTokenizerFast  # type: ignore[attr-defined]  # exported lazily

from openmedclip.errors import ModelLoadError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


class CxrBertTokenizer:
    """Texts -> ``[N, context_length]`` token ids."""

    def __init__(self, tokenizer: Any, context_length: int):
        self.tokenizer = tokenizer
        self.context_length = context_length

    def __call__(self, texts: list[str]) -> torch.Tensor:
        encoded = self.tokenizer(
            [text.rstrip("!?.") for text in texts],
            padding="max_length",
            truncation=True,
            max_length=self.context_length,
            return_tensors="pt",
        )
        return encoded["input_ids"].long()

    def __repr__(self) -> str:
        return f"CxrBertTokenizer(vocab={self.tokenizer.vocab_size}, context_length={self.context_length})"


def load_tokenizer(folder: Path | None, vocab: tuple[str, ...], context_length: int, name: str) -> CxrBertTokenizer:
    """The tokenizer of ``folder`` (its ``vocab.txt`` and ``tokenizer_config.json``), or of an in-memory vocab."""
    try:
        if vocab:
            tokenizer = BertTokenizerFast(vocab={token: index for index, token in enumerate(vocab)})
        elif folder is not None and (folder / "vocab.txt").is_file():
            tokenizer = BertTokenizerFast.from_pretrained(str(folder))
        else:
            raise ModelLoadError(name, f"no CXR-BERT vocab.txt in {folder}")
    except (OSError, ValueError, TypeError) as error:
        raise ModelLoadError(name, f"cannot load the CXR-BERT tokenizer from {folder}: {error}") from None
    return CxrBertTokenizer(tokenizer, context_length)
