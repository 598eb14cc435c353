"""A BERT WordPiece tokenizer read from a folder's ``tokenizer.json`` with the ``tokenizers`` library alone.

Gives the ids open_clip's ``HFTokenizer`` gives through transformers' ``AutoTokenizer`` (whitespace cleaned,
``[CLS] … [SEP]``, truncated and padded to the context length; tested on every prompt bank), without importing
transformers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

BERT_TOKENIZERS = ("BertTokenizer", "BertTokenizerFast")


def _settings(folder: Path) -> dict[str, Any]:
    path = folder / "tokenizer_config.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def supports(folder: Path, text_cfg: dict[str, Any]) -> bool:
    """Whether the tokenizer in ``folder`` is a BERT tokenizer with a ``tokenizer.json`` and default settings."""
    if text_cfg.get("tokenizer_kwargs") or text_cfg.get("tokenizer_mode"):
        return False
    try:
        settings = _settings(folder)
    except (OSError, ValueError):
        return False
    return (folder / "tokenizer.json").is_file() and settings.get("tokenizer_class") in BERT_TOKENIZERS


class NativeBertTokenizer:
    """``texts -> [N, context_length]`` LongTensor of BERT token ids."""

    def __init__(self, folder: Path, context_length: int):
        from tokenizers import Tokenizer

        self.folder = folder
        self.context_length = context_length
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        pad_token = str(_settings(folder).get("pad_token", "[PAD]"))
        pad_id = self.tokenizer.token_to_id(pad_token)
        if pad_id is None:
            raise ValueError(f"{folder / 'tokenizer.json'} has no pad token {pad_token!r}")
        self.tokenizer.enable_truncation(context_length)
        self.tokenizer.enable_padding(length=context_length, pad_id=pad_id, pad_token=pad_token)

    def __call__(self, texts: str | list[str]) -> torch.Tensor:
        texts = [texts] if isinstance(texts, str) else texts
        encoded = self.tokenizer.encode_batch([" ".join(text.split()) for text in texts])
        return torch.tensor([item.ids for item in encoded], dtype=torch.long).reshape(len(texts), self.context_length)

    def save_pretrained(self, destination: str | Path) -> None:
        """Copy the tokenizer's files into ``destination`` (what ``load_model`` reads back)."""
        from openmedclip.models.hf_local import TOKENIZER_FILES

        for name in (*TOKENIZER_FILES, "special_tokens_map.json"):
            source, target = self.folder / name, Path(destination) / name
            if source.is_file() and source.resolve() != target.resolve():
                shutil.copyfile(source, target)
