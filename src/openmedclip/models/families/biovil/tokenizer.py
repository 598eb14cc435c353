"""CXR-BERT's tokenizer: a plain uncased BERT WordPiece tokenizer read from the model folder (no remote code).

As upstream does, trailing ``!``, ``?`` and ``.`` are stripped from each text before tokenizing. Texts are padded
to the context length; the model masks the padding, so embeddings equal those of upstream's padding to the
longest text in a batch.
"""

from __future__ import annotations

from pathlib import Path

from transformers import BertTokenizerFast  # type: ignore[attr-defined]  # exported lazily

from openmedclip.errors import ModelLoadError
from openmedclip.models.wordpiece import WordPieceTokenizer, in_memory_wordpiece


def strip_trailing_punctuation(text: str) -> str:
    """CXR-BERT's prompt cleaning: trailing ``!``, ``?`` and ``.`` removed."""
    return text.rstrip("!?.")


def load_tokenizer(folder: Path | None, vocab: tuple[str, ...], context_length: int, name: str) -> WordPieceTokenizer:
    """The tokenizer of ``folder`` (its ``vocab.txt`` and ``tokenizer_config.json``), or of an in-memory vocab."""
    try:
        if vocab:
            tokenizer = in_memory_wordpiece(vocab)
        elif folder is not None and any((folder / file).is_file() for file in ("vocab.txt", "tokenizer.json")):
            tokenizer = BertTokenizerFast.from_pretrained(str(folder))
        else:
            raise ModelLoadError(name, f"no CXR-BERT vocab.txt in {folder}")
    except (OSError, ValueError, TypeError) as error:
        raise ModelLoadError(name, f"cannot load the CXR-BERT tokenizer from {folder}: {error}") from None
    return WordPieceTokenizer(tokenizer, context_length, prepare=strip_trailing_punctuation)
