"""Captions for image-text training: labels -> varied bank sentences; VQA-style metadata -> text."""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Iterable, Mapping, Sequence

from openmedclip.errors import InvalidInputError
from openmedclip.prompts.banks import SentenceBank, load_bank

_NORMAL_NAMES = ("No Finding", "normal")
_MODALITY_NOUNS = {
    "MRI": "MR image",
    "X-ray": "radiograph",
    "fundus photograph": "fundus photograph",
    "mammography": "mammogram",
}
"""How a caption names a modality-bank class; others read "<class> image"."""
_MODALITY_QUESTION = re.compile(r"^(?!.*\bnot\b).*(modality|(type|kind) of (imaging|image|scan))", re.I)


class CaptionSampler:
    """Draws one bank sentence per sample per epoch, deterministically from (seed, sample, epoch).

    Each sample walks through its class's sentences in its own shuffled order, reshuffled every
    ``len(sentences)`` epochs, so consecutive epochs give different captions and every sentence gets used.
    `bank` is a `SentenceBank`, a built-in bank name or path, or a plain ``{class: [sentences]}`` mapping.
    `normal_class` is used for samples with no labels; by default the bank's "No Finding" or "normal" class.
    """

    def __init__(
        self,
        bank: SentenceBank | Mapping[str, Sequence[str]] | str,
        seed: int = 0,
        *,
        normal_class: str | None = None,
    ):
        if isinstance(bank, str):
            bank = load_bank(bank)
        elif not isinstance(bank, SentenceBank):
            classes = {str(name): list(sentences) for name, sentences in bank.items()}
            bank = SentenceBank(modality="", classes=classes, name="mapping")
        empty = [name for name, sentences in bank.classes.items() if not sentences]
        if empty:
            raise InvalidInputError(f"caption bank classes without sentences: {', '.join(empty)}")
        self.bank = bank
        self.seed = seed
        self.normal_class = bank.resolve(normal_class) if normal_class else _find_normal(bank)

    def caption(self, class_name: str, sample_index: int | str, epoch: int = 0) -> str:
        """The caption of sample `sample_index` with class `class_name` (name or alias) at `epoch`."""
        name = self.bank.resolve(class_name)
        sentences = self.bank.classes[name]
        cycle, position = divmod(epoch, len(sentences))
        order = list(range(len(sentences)))
        random.Random(f"{self.seed}|{sample_index}|{name}|{cycle}").shuffle(order)
        return sentences[order[position]]

    def caption_for_labels(self, labels: Sequence[str], sample_index: int | str, epoch: int = 0) -> str:
        """A sentence per finding, shuffled per epoch; a normal-class sentence when `labels` is empty."""
        names = list(dict.fromkeys(self.bank.resolve(label) for label in labels))
        if not names:
            if self.normal_class is None:
                raise InvalidInputError(
                    f"sample {sample_index} has no labels and bank '{self.bank.name}' has no normal class"
                )
            names = [self.normal_class]
        random.Random(f"{self.seed}|{sample_index}|order|{epoch}").shuffle(names)
        return " ".join(self.caption(name, sample_index, epoch) for name in names)


def caption_from_fields(
    *,
    modality: str | None = None,
    organ: str | None = None,
    plane: str | None = None,
    qa: Iterable[tuple[str, str]] = (),
) -> str:
    """A caption from VQA-RAD/MedPix-like fields: "Axial CT image of the abdomen. The liver appears normal."

    `organ` may be a code such as "ABD"; `modality` a free string such as "MR - T2 weighted". Question-answer
    pairs become sentences; an open question about the modality or plane fills that field when not given.
    """
    statements: list[str] = []
    for question, answer in qa:
        question, answer = _clean(question), _clean(str(answer))
        if not question or not answer:
            continue
        is_closed = answer.lower() in {"yes", "no"}
        if not is_closed and modality is None and _MODALITY_QUESTION.search(question):
            modality = answer
        elif not is_closed and plane is None and re.search(r"\bplane\b", question, re.I):
            plane = answer
        else:
            statements.append(_qa_sentence(question, answer))
    header = _header(modality, organ, plane)
    sentences = list(dict.fromkeys(([header] if header else []) + statements))
    if not sentences:
        raise InvalidInputError("caption_from_fields needs at least one of modality, organ, plane or qa")
    return " ".join(sentences)


def _header(modality: str | None, organ: str | None, plane: str | None) -> str:
    noun = _modality_noun(modality) if modality else ("image" if organ or plane else "")
    if not noun:
        return ""
    words = " ".join(part for part in (plane and plane.strip(), noun) if part)
    if organ:
        words += f" of the {_organ_name(organ)}"
    return _sentence(words)


def _modality_noun(text: str) -> str:
    text = text.strip()
    base, _, detail = text.partition(" - ")
    name = _resolve("modality", base)
    if name is None:
        words = re.match(r"(\S+?)(?:[\s/-]+(.*))?$", base)  # no match for a blank or multi-line modality
        name = None if words is None else _resolve("modality", words[1])
        if words is None or name is None:
            return f"{text} image"
        detail = ", ".join(part for part in (words[2], detail) if part)
    noun = _MODALITY_NOUNS.get(name, f"{name} image")
    return f"{noun} ({detail})" if detail else noun


def _organ_name(organ: str) -> str:
    return _resolve("radiology_organ", organ) or organ.strip().lower()


def _qa_sentence(question: str, answer: str) -> str:
    yes = answer.lower() == "yes"
    if answer.lower() in {"yes", "no"}:
        there = re.match(r"(?:is|are|is/are) there (?:any |evidence of )?(?P<x>.+?)\s*\??$", question, re.I)
        if there:
            return _sentence(f"there is {'' if yes else 'no '}evidence of {there['x']}")
        normal = re.match(r"(?P<verb>is|are) (?P<x>.+?) normal(?: appearing)?\s*\??$", question, re.I)
        if normal:
            subject = re.sub(r"^this ", "the ", normal["x"], flags=re.I)
            verb = "appears" if normal["verb"].lower() == "is" else "appear"
            return _sentence(f"{subject} {verb} {'normal' if yes else 'abnormal'}")
    return f"{_capitalise(question.rstrip('?'))}? {_sentence(answer)}"


def _sentence(text: str) -> str:
    text = _capitalise(text.strip())
    return text if text.endswith((".", "?", "!")) else text + "."


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _find_normal(bank: SentenceBank) -> str | None:
    for name in _NORMAL_NAMES:
        try:
            return bank.resolve(name)
        except InvalidInputError:
            continue
    return None


@functools.cache
def _builtin(name: str) -> SentenceBank:
    return load_bank(name)


def _resolve(bank_name: str, name: str) -> str | None:
    try:
        return _builtin(bank_name).resolve(name)
    except InvalidInputError:
        return None
