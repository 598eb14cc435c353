"""Built-in sentence banks: coverage, validation, lookup and loading."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from openmedclip.errors import InvalidInputError
from openmedclip.prompts.banks import (
    MIN_SENTENCES,
    SentenceBank,
    find_class,
    list_banks,
    load_bank,
    validate_bank,
)

CHEXPERT = [
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
    "Fracture", "Support Devices",
]
EXPECTED = {
    "chest_xray": [*CHEXPERT, "Tuberculosis"],
    "pediatric_chest_xray": ["normal", "pneumonia"],
    "breast_ultrasound": ["malignant", "normal, benign"],
    "fundus": ["0", "1", "2", "3", "4"],
    "radiology_organ": ["chest", "abdomen", "head"],
    "modality": ["CT", "MRI", "X-ray", "ultrasound", "fundus photograph"],
    "body_region": ["Abdomen", "Head", "Reproductive and Urinary System", "Spine and Muscles", "Thorax"],
}


@pytest.fixture(scope="module")
def medmnist_info() -> dict:
    """``medmnist.INFO``, read from medmnist/info.py: importing the package loads torch and scikit-learn."""
    origin = importlib.util.find_spec("medmnist").origin
    spec = importlib.util.spec_from_file_location("medmnist_info", Path(origin).with_name("info.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.INFO


@pytest.fixture(scope="module")
def banks() -> dict[str, SentenceBank]:
    return {name: load_bank(name) for name in list_banks()}


@pytest.fixture(scope="module")
def clip_count():
    from open_clip.tokenizer import SimpleTokenizer

    tokenizer = SimpleTokenizer()
    return lambda text: len(tokenizer.encode(text)) + 2


def test_expected_banks_and_classes_present(banks):
    for name, classes in EXPECTED.items():
        assert name in banks, name
        for class_name in classes:
            assert len(banks[name].classes[class_name]) >= MIN_SENTENCES, (name, class_name)


def test_every_builtin_bank_validates(banks):
    for name, bank in banks.items():
        assert validate_bank(bank, context_length=77) == [], name


def test_every_sentence_fits_64_tokens(banks, clip_count):
    for name, bank in banks.items():
        texts = [s for sentences in bank.classes.values() for s in sentences]
        texts += [t for pair in bank.pairs.values() for t in pair]
        assert validate_bank(bank, tokenizer=clip_count, context_length=64) == [], name
        assert max(map(clip_count, texts)) <= 64, name


@pytest.mark.parametrize(
    ("flag", "bank"),
    [
        ("pneumoniamnist", "pediatric_chest_xray"),
        ("breastmnist", "breast_ultrasound"),
        ("retinamnist", "fundus"),
    ],
)
def test_medmnist_label_names_covered(banks, medmnist_info, flag, bank):
    for label in medmnist_info[flag]["label"].values():
        assert banks[bank].resolve(label) == label


def test_chestmnist_labels_resolve_through_aliases(banks, medmnist_info):
    for label in medmnist_info["chestmnist"]["label"].values():
        assert len(banks["chest_xray"].sentences(label)) >= MIN_SENTENCES, label


def test_chest_pairs_cover_every_finding_without_double_negatives(banks):
    bank = banks["chest_xray"]
    assert set(bank.pairs) == set(bank.classes)
    assert bank.pairs["Pneumothorax"] == ("pneumothorax", "no pneumothorax")
    positive, negative = bank.pairs["No Finding"]
    assert "no finding" not in negative.lower() and positive != negative


def test_medpix_location_categories_covered(banks, shared_data):
    import json

    categories = set()
    for path in (shared_data / "medpix2_traindev").glob("descriptions_*.jsonl"):
        for line in path.read_text().splitlines():
            categories.add(json.loads(line)["Location Category"])
    assert categories and categories <= set(banks["body_region"].classes)


def test_vqa_rad_organs_resolve(banks, shared_data):
    import csv

    with open(shared_data / "vqa_rad" / "image_organ.csv") as handle:
        organs = {row["image_organ"] for row in csv.DictReader(handle) if row["image_organ"]}
    assert {banks["radiology_organ"].resolve(o) for o in organs} == {"chest", "abdomen", "head"}


def test_find_class_by_name_and_alias():
    assert ("chest_xray", "Pleural Effusion") in find_class("EFFUSION")
    hits = find_class("Normal")
    assert hits[0] == ("pediatric_chest_xray", "normal")  # exact names come before aliases
    assert ("chest_xray", "No Finding") in hits
    assert find_class("no such finding") == []


def _bank(classes: dict[str, list[str]]) -> SentenceBank:
    return SentenceBank(modality="test", classes=classes, name="test")


def _ten(prefix: str) -> list[str]:
    return [f"{prefix} sentence number {i}." for i in range(10)]


def test_duplicate_detection_within_and_across_classes():
    a, b = _ten("alpha"), _ten("beta")
    a[3] = "  ALPHA sentence   number 0. "
    b[5] = "Alpha sentence number 1."
    problems = validate_bank(_bank({"a": a, "b": b}))
    assert len(problems) == 2
    assert "a sentence 4: duplicates a sentence 1" in problems[0]
    assert "b sentence 6: duplicates a sentence 2" in problems[1]


def test_too_few_empty_and_overlong_sentences():
    long_sentence = "Frontal chest radiograph " + "with a finding " * 40
    problems = validate_bank(_bank({"a": ["Short one.", "   ", long_sentence]}))
    assert any("3 sentences, at least 10" in p for p in problems)
    assert any("a sentence 2: empty" in p for p in problems)
    assert any("a sentence 3:" in p and "over the context length 77" in p for p in problems)


def test_custom_token_counter_accepts_counts_or_ids():
    bank = _bank({"a": _ten("alpha")})
    assert validate_bank(bank, tokenizer=lambda s: len(s.split()), context_length=3) != []
    assert validate_bank(bank, tokenizer=lambda s: list(range(3)), context_length=4) == []


def test_pair_and_alias_problems():
    bank = _bank({"a": _ten("alpha"), "b": _ten("beta")})
    bank.pairs = {"a": ("no finding", "no no finding"), "c": ("x", "y")}
    bank.aliases = {"a": ["shared"], "b": ["Shared"]}
    problems = " | ".join(validate_bank(bank))
    assert "double negative" in problems
    assert "c: prompt pair for a class the bank does not have" in problems
    assert "alias 'Shared' also names a" in problems


def test_load_user_yaml_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(
        "modality: CT\nclasses:\n  liver lesion:\n    aliases: [hepatic lesion]\n"
        "    positive: liver lesion\n    negative: no liver lesion\n    sentences: [One., Two.]\n"
    )
    bank = load_bank(path)
    assert bank.name == "mine" and bank.modality == "CT"
    assert bank.sentences("Hepatic Lesion") == ["One.", "Two."]
    assert bank.pairs == {"liver lesion": ("liver lesion", "no liver lesion")}
    assert load_bank(str(path)).classes == bank.classes


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("classes: [a, b]\n", "bad.yaml: classes: expected a mapping"),
        ("modality: CT\n", "bad.yaml: missing 'classes'"),
        ("classes:\n  a:\n    sentences: [x]\n    colour: red\n", "bad.yaml: classes.a.colour: unknown key (known:"),
        ("classes:\n  a:\n    sentence: [x]\n", "classes.a.sentence: unknown key (did you mean 'sentences'?)"),
        ("modalty: CT\nclasses: {}\n", "bad.yaml: modalty: unknown key (did you mean 'modality'?)"),
        ("classes:\n  0:\n    sentences: [x]\n", "classes.0: class names must be strings (quote them in YAML)"),
        ("classes:\n  a:\n    sentences: [x]\n    positive: p\n", "classes.a: 'positive' and 'negative' must be given"),
        ("classes:\n  a:\n    sentences: x\n", "classes.a.sentences: expected a list (got 'x')"),
        ("classes:\n  a:\n    sentences: [1]\n", "classes.a.sentences.0: expected a string (got 1)"),
        ("classes: {a: [\n", "bad.yaml: not valid YAML"),
    ],
)
def test_bad_bank_files_name_the_file(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InvalidInputError, match="bad.yaml") as info:
        load_bank(path)
    assert message in str(info.value)


def test_unknown_bank_and_class():
    with pytest.raises(InvalidInputError, match="chest_xray"):
        load_bank("no_such_bank")
    with pytest.raises(InvalidInputError, match="not in sentence bank"):
        load_bank("fundus").resolve("glaucoma")
