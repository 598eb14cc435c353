"""MedCLIP's tokenizer: the text tower's WordPiece vocabulary, lower-cased, at most 77 tokens."""

from __future__ import annotations

from pathlib import Path

from openmedclip.models.families.medclip.config import MedclipConfig
from openmedclip.models.family import Tokenizer
from openmedclip.models.hf_local import tokenizer_dir
from openmedclip.models.wordpiece import WordPieceTokenizer


def build_tokenizer(config: MedclipConfig, folder: Path | None, name: str) -> tuple[Tokenizer, int]:
    """Texts -> ``[N, context_length]`` token ids, padded with the tower's [PAD] id.

    Bio_ClinicalBERT's repository has no ``tokenizer_config.json``, so MedCLIP's ``AutoTokenizer`` falls back to
    ``do_lower_case=True`` (on a cased vocabulary); it is set explicitly here so that a folder holding another
    tokenizer config cannot change it. Padding to the full context is harmless: the text tower drops the columns
    past the longest text of a batch.
    """
    from transformers import AutoTokenizer

    length = config.context_length
    wordpiece = AutoTokenizer.from_pretrained(
        str(tokenizer_dir(config.text_tower, folder, name)), do_lower_case=True, model_max_length=length
    )

    return WordPieceTokenizer(wordpiece, length), length
