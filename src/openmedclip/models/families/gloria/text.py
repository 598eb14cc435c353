"""GLoRIA's text input: its report cleaning, then the BERT tokenizer (padded to the context length).

Cleaning, as GLoRIA prepares captions: newlines become spaces; the text is split into sentences at numbered-list
markers (``1.``) and at full stops; each sentence is lower-cased and split into ``\\w+`` words; sentences of one word
or none are dropped (so a bare class name such as "Pneumonia" becomes an empty caption); non-ASCII characters are
removed from the words; the remaining words are joined by single spaces.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from openmedclip.models.wordpiece import in_memory_wordpiece

_NUMBERED = re.compile(r"[0-9]+\.")
_WORD = re.compile(r"\w+")


def clean_text(text: str) -> str:
    """``text`` as GLoRIA's tokenizer sees it (see the module docstring)."""
    sentences = [part for point in _NUMBERED.split(text.replace("\n", " ")) for part in point.split(".")]
    kept = []
    for sentence in sentences:
        words = _WORD.findall(sentence.replace("\ufffd\ufffd", " ").lower())
        if len(words) <= 1:
            continue
        ascii_words = [word.encode("ascii", "ignore").decode("ascii") for word in words]
        kept.append(" ".join(word for word in ascii_words if word))
    return " ".join(kept)


def load_bert_tokenizer(folder: Path | None, vocab: Sequence[str]) -> Any:
    """The BERT tokenizer in ``folder``, or one over the word pieces ``vocab`` (ids in order)."""
    from transformers import AutoTokenizer

    if folder is not None:
        return AutoTokenizer.from_pretrained(str(folder))
    return in_memory_wordpiece(vocab)


def vocabulary(tokenizer: Any) -> list[str]:
    """The tokenizer's word pieces by id."""
    by_id = {index: piece for piece, index in tokenizer.get_vocab().items()}
    return [by_id.get(index, "") for index in range(max(by_id) + 1)]
