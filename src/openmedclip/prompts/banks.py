"""Sentence banks: per-modality YAML files mapping each class to varied, clinically phrased sentences.

A bank file looks like::

    modality: chest X-ray
    description: what the bank covers
    classes:
      Pneumothorax:
        aliases: [PTX]                  # optional, other names for the class
        positive: pneumothorax          # optional, CheXzero-style pair for multi-label scoring
        negative: no pneumothorax
        sentences:
          - Frontal chest radiograph showing a right apical pneumothorax.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import yaml
from pydantic import (
    BeforeValidator,
    ConfigDict,
    StrictStr,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from openmedclip.yaml_text import safe_load

from ..errors import InvalidInputError
from ..schemas import FileModel, describe_error

MIN_SENTENCES = 10
"""Fewest sentences a class needs to pass `validate_bank`."""

TokenCounter = Callable[[str], int | Sequence[int]]


def _class_name(name: Any) -> Any:
    if not isinstance(name, str):
        raise PydanticCustomError("class_name", "class names must be strings (quote them in YAML)")
    return name


class BankClass(FileModel):
    """One class of a bank file: its sentences, other names and an optional positive/negative prompt pair."""

    model_config = ConfigDict(coerce_numbers_to_str=True)
    sentences: list[StrictStr]
    """Varied, clinically phrased sentences describing an image of the class."""
    aliases: list[StrictStr] | None = None
    """Other names of the class (matched case-insensitively)."""
    positive: str | None = None
    """CheXzero-style prompt for multi-label scoring, e.g. ``pneumothorax``; needs `negative`."""
    negative: str | None = None
    """The negated prompt, e.g. ``no pneumothorax``; needs `positive`."""

    @model_validator(mode="after")
    def _pair_together(self) -> BankClass:
        if (self.positive is None) != (self.negative is None):
            raise PydanticCustomError("pair", "'positive' and 'negative' must be given together")
        return self


class BankFile(FileModel):
    """A sentence bank file: the sentences of each class of one modality."""

    model_config = ConfigDict(coerce_numbers_to_str=True)
    modality: str | None = None
    description: str | None = None
    classes: dict[Annotated[str, BeforeValidator(_class_name)], BankClass]
    """Class name -> its sentences, in file order."""


@dataclass
class SentenceBank:
    """Sentences per class for one modality, with optional aliases and positive/negative prompt pairs."""

    modality: str
    classes: dict[str, list[str]]
    pairs: dict[str, tuple[str, str]] = field(default_factory=dict)
    aliases: dict[str, list[str]] = field(default_factory=dict)
    name: str = ""
    description: str = ""

    @property
    def class_names(self) -> list[str]:
        """The class names, in file order."""
        return list(self.classes)

    def resolve(self, name: str) -> str:
        """The class that `name` names, matching class names first, then aliases (case-insensitive)."""
        key = _normalise(name)
        for class_name in self.classes:
            if _normalise(class_name) == key:
                return class_name
        for class_name, names in self.aliases.items():
            if key in {_normalise(alias) for alias in names}:
                return class_name
        raise InvalidInputError(
            f"class {name!r} is not in sentence bank '{self.name or self.modality}' "
            f"(classes: {', '.join(self.classes)})"
        )

    def sentences(self, name: str) -> list[str]:
        """The sentences of the class named `name` (a class name or an alias)."""
        return self.classes[self.resolve(name)]


class ClassRef(NamedTuple):
    """Where `find_class` found a class: the built-in bank's name and the class name in it."""

    bank: str
    class_name: str


def list_banks() -> list[str]:
    """Names of the built-in banks (file stems under ``openmedclip/prompts/banks``)."""
    return sorted(p.name[: -len(".yaml")] for p in _bank_dir().iterdir() if p.name.endswith(".yaml"))


def load_bank(name_or_path: str | Path) -> SentenceBank:
    """Load a built-in bank by name (see `list_banks`) or a bank YAML file by path."""
    if isinstance(name_or_path, Path) or Path(name_or_path).name != name_or_path or name_or_path.endswith(
        (".yaml", ".yml")
    ):
        path = Path(name_or_path)
        if not path.is_file():
            raise InvalidInputError(f"{path}: sentence bank file not found")
        return parse_bank(path.read_text(encoding="utf-8"), name=path.stem, source=str(path))
    return copy.deepcopy(_builtin_bank(name_or_path))


@functools.cache
def _builtin_bank(name: str) -> SentenceBank:
    """A built-in bank, parsed once per process (`load_bank` hands out copies)."""
    resource = _bank_dir().joinpath(f"{name}.yaml")
    if not resource.is_file():
        raise InvalidInputError(
            f"unknown sentence bank {name!r} (built-in: {', '.join(list_banks())}; or give the path of a .yaml file)"
        )
    return parse_bank(resource.read_text(encoding="utf-8"), name=name, source=f"built-in bank '{name}'")


def parse_bank(text: str, *, name: str = "", source: str = "<string>") -> SentenceBank:
    """Build a bank from YAML text; `source` and the place name problems, e.g.
    ``mine.yaml: classes.normal.sentence: unknown key (did you mean 'sentences'?)``."""
    try:
        data = safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"{source}: not valid YAML ({exc})") from exc
    try:
        bank_file = BankFile.model_validate(data)
    except ValidationError as err:
        raise InvalidInputError(f"{source}: {describe_error(err, BankFile)}") from None
    bank = SentenceBank(
        modality=bank_file.modality or "", classes={}, name=name, description=bank_file.description or ""
    )
    for class_name, entry in bank_file.classes.items():
        bank.classes[class_name] = list(entry.sentences)
        if entry.aliases:
            bank.aliases[class_name] = list(entry.aliases)
        if entry.positive is not None and entry.negative is not None:
            bank.pairs[class_name] = (entry.positive, entry.negative)
    return bank


def bank_to_dict(bank: SentenceBank) -> dict:
    """The YAML-ready mapping of a bank (the inverse of `parse_bank`)."""
    classes: dict[str, dict] = {}
    for class_name, sentences in bank.classes.items():
        entry: dict = {}
        if bank.aliases.get(class_name):
            entry["aliases"] = list(bank.aliases[class_name])
        if class_name in bank.pairs:
            entry["positive"], entry["negative"] = bank.pairs[class_name]
        entry["sentences"] = list(sentences)
        classes[class_name] = entry
    return {"modality": bank.modality, "description": bank.description, "classes": classes}


def find_class(name: str) -> list[ClassRef]:
    """Built-in banks with a class called `name` (case-insensitive): name matches first, then aliases."""
    by_name: list[ClassRef] = []
    by_alias: list[ClassRef] = []
    key = _normalise(name)
    for bank_name in list_banks():
        bank = load_bank(bank_name)
        for class_name in bank.classes:
            if _normalise(class_name) == key:
                by_name.append(ClassRef(bank_name, class_name))
            elif key in {_normalise(a) for a in bank.aliases.get(class_name, [])}:
                by_alias.append(ClassRef(bank_name, class_name))
    return by_name + by_alias


def bank_for_labels(labels: Sequence[str]) -> SentenceBank | None:
    """The built-in bank that names every label as a distinct class (most exact name matches first, then
    `list_banks` order), or None. Lets plain class names use curated sentences instead of templates."""
    best: tuple[int, SentenceBank] | None = None
    for bank_name in list_banks():
        bank = load_bank(bank_name)
        try:
            classes = [bank.resolve(label) for label in labels]
        except InvalidInputError:
            continue
        if len(set(classes)) != len(classes):
            continue
        exact = sum(_normalise(label) == _normalise(cls) for label, cls in zip(labels, classes))
        if best is None or exact > best[0]:
            best = (exact, bank)
    return best[1] if best else None


def validate_bank(
    bank: SentenceBank, tokenizer: TokenCounter | None = None, context_length: int = 77
) -> list[str]:
    """Problems with a bank, one line each; an empty list means it is fit for use.

    Checks: empty or duplicate sentences (ignoring case and whitespace) within and across classes, fewer
    than `MIN_SENTENCES` per class, sentences or pair prompts longer than `context_length` tokens, empty or
    double-negative pair prompts, aliases shared by two classes. `tokenizer` takes a sentence and returns its
    token count including start/end tokens, or its token ids; by default open_clip's `SimpleTokenizer`
    count plus 2.
    """
    count = _open_clip_count if tokenizer is None else tokenizer
    problems: list[str] = []
    seen: dict[str, str] = {}
    for class_name, sentences in bank.classes.items():
        if len(sentences) < MIN_SENTENCES:
            problems.append(f"{class_name}: {len(sentences)} sentences, at least {MIN_SENTENCES} needed")
        for i, sentence in enumerate(sentences):
            where = f"{class_name} sentence {i + 1}"
            key = _normalise(sentence)
            if not key:
                problems.append(f"{where}: empty")
                continue
            if key in seen:
                problems.append(f"{where}: duplicates {seen[key]}: {sentence!r}")
            else:
                seen[key] = where
            problems.extend(_length_problem(where, sentence, count, context_length))
    for class_name, (positive, negative) in bank.pairs.items():
        if class_name not in bank.classes:
            problems.append(f"{class_name}: prompt pair for a class the bank does not have")
        for role, text in (("positive", positive), ("negative", negative)):
            if not _normalise(text):
                problems.append(f"{class_name} {role} prompt: empty")
            problems.extend(_length_problem(f"{class_name} {role} prompt", text, count, context_length))
        if _normalise(negative).startswith("no no "):
            problems.append(f"{class_name} negative prompt: double negative {negative!r}")
        if _normalise(positive) == _normalise(negative):
            problems.append(f"{class_name}: positive and negative prompts are the same")
    owner: dict[str, str] = {_normalise(c): c for c in bank.classes}
    for class_name, names in bank.aliases.items():
        for alias in names:
            other = owner.setdefault(_normalise(alias), class_name)
            if other != class_name:
                problems.append(f"{class_name}: alias {alias!r} also names {other}")
    return problems


def _length_problem(where: str, text: str, count: TokenCounter, context_length: int) -> list[str]:
    result = count(text)
    n = result if isinstance(result, int) else len(result)
    return [f"{where}: {n} tokens, over the context length {context_length}"] if n > context_length else []


@functools.lru_cache(maxsize=1)
def _simple_tokenizer():
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer()


def _open_clip_count(text: str) -> int:
    return len(_simple_tokenizer().encode(text)) + 2


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", str(text)).strip().casefold()


def _bank_dir():
    return resources.files("openmedclip.prompts").joinpath("banks")
