"""Suite files: the built-in suites parse; a malformed suite fails with a message naming the file."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from openmedclip.errors import InvalidInputError
from openmedclip.eval.suite import list_suites, load_suite, missing_paths, parse_suite, resolve_spec

MODALITIES = {"X-ray": 2, "MRI": 2, "US": 2, "CT": 3, "Retinal-Fundus": 4, "Histopathology": 8}
"""UniMed-CLIP's README columns and how many of the 21 datasets fall in each."""


def test_builtin_suites_ship_with_the_package():
    assert {"local", "unimed21"} <= set(list_suites())


def test_local_suite_covers_the_shared_data():
    suite = load_suite("local")
    assert list(suite.datasets) == [
        "pneumoniamnist", "breastmnist", "retinamnist", "vqa-rad-organ",
        "medpix-retrieval", "medpix-modality", "medpix-region",
    ]
    pneumonia = suite.datasets["pneumoniamnist"]
    assert pneumonia.tasks == ("zeroshot", "probe")
    assert pneumonia.train_source() == {"type": "medmnist", "path": "medmnist/pneumoniamnist.npz", "split": "train"}
    assert suite.datasets["medpix-modality"].prompts == {"bank": "modality"}
    assert suite.datasets["medpix-retrieval"].tasks == ("retrieval",)


def test_unimed21_lists_21_class_folder_datasets():
    suite = load_suite("unimed21")
    assert len(suite.datasets) == 21
    assert all(d.source["type"] == "folders" and d.source["path"] == f"{d.name}/test" for d in suite.datasets.values())
    assert all(d.classes and d.tasks == ("zeroshot",) for d in suite.datasets.values())
    assert len(suite.datasets["skin_cancer"].classes) == 16
    assert list(suite.datasets["NCK_CRC"].classes) == ["ADI", "DEB", "LYM", "MUC", "MUS", "NORM", "STR", "TUM"]
    assert Counter(d.modality for d in suite.datasets.values()) == MODALITIES
    assert set(suite.datasets["BACH"].prompts) == {"sentences"}


def test_suite_level_templates_are_resolved_into_the_entry():
    suite = parse_suite("name: x\ntemplates: {us: ['an ultrasound of {}.']}\n"
                        "datasets: {a: {source: " + GOOD + ", tasks: [zeroshot], prompts: {templates: us}}}")
    assert suite.datasets["a"].prompts["templates"] == ["an ultrasound of {}."]


def test_paths_resolve_against_the_data_root(tmp_path):
    spec = resolve_spec({"type": "table", "path": "a/b.csv", "root": "/abs/images"}, tmp_path)
    assert spec == {"type": "table", "path": str(tmp_path / "a" / "b.csv"), "root": "/abs/images"}
    assert missing_paths(spec) == [str(tmp_path / "a" / "b.csv"), "/abs/images"]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    return path


GOOD = "{type: medmnist, path: x.npz, split: test}"
ZS = "name: x\ndatasets: {a: {source: " + GOOD + ", tasks: [zeroshot]"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("datasets: {a: {source: " + GOOD + ", tasks: [zeroshot]}}", ": missing 'name'"),
        ("name: x", ": missing 'datasets'"),
        ("name: x\ndatasets: {}", ": datasets: needs at least 1 item"),
        ("name: x\ndatasets: {a: {tasks: [zeroshot]}}", ": datasets.a: missing 'source'"),
        ("name: x\ndatasets: {a: {source: x.npz, tasks: [zeroshot]}}", "datasets.a.source: expected a mapping"),
        ("name: x\ndatasets: {a: {source: {type: medmnist}, tasks: [zeroshot]}}", "datasets.a.source: missing 'path'"),
        ("name: x\ndatasets: {a: {source: {type: dicomdir, path: p}, tasks: [zeroshot]}}", "unknown source type"),
        ("name: x\ndatasets: {a: {source: " + GOOD + ", tasks: [zeroshot], train: {type: dicomdir}}}",
         "datasets.a.train: unknown source type 'dicomdir'"),
        ("name: x\ndatasets: {a: {source: " + GOOD + ", tasks: [segmentation]}}",
         "datasets.a.tasks: unknown task(s) ['segmentation']"),
        ("name: x\ndatasets: {a: {source: " + GOOD + "}}", "datasets.a: missing 'tasks'"),
        ("name: x\ndatasets: {a: {source: " + GOOD + ", tasks: []}}", "datasets.a.tasks: needs at least 1 item"),
        ("name: x\ndatasets: {a: {source: " + GOOD + ", tasks: [probe]}}", "task 'probe' needs a 'train' split"),
        (ZS + ", colour: red}}", "datasets.a.colour: unknown key (known: source, tasks, train,"),
        (ZS + ", taks: [probe]}}", "datasets.a.taks: unknown key (did you mean 'tasks'?)"),
        (ZS + ", prompts: {bankk: modality}}}", "datasets.a.prompts.bankk: unknown key (did you mean 'bank'?)"),
        (ZS + ", prompts: {templates: 'no slot'}}}", "datasets.a.prompts.templates: prompt template 'no slot'"),
        (ZS + ", prompts: {templates: {a: b}}}}", "datasets.a.prompts.templates: expected a string or a list"),
        (ZS + ", prompts: {bank: modality, sentences: {CT: [a]}}}}", "datasets.a.prompts: give prompts as a 'bank'"),
        (ZS + ", prompts: {sentences: {CT: []}}}}", "datasets.a.prompts.sentences.CT: needs at least 1 item"),
        (ZS + ", prompts: {pairs: {CT: [ct]}}}}", "datasets.a.prompts.pairs.CT: missing item 1"),
        (ZS + ", classes: [a, a]}}", "datasets.a.classes: 'classes' must be non-empty and unique"),
        (ZS + ", classes: 5}}", "datasets.a.classes: expected a list or a mapping (got 5)"),
        ("name: x\ntemplates: {ct: []}\ndatasets: {a: {source: " + GOOD + ", tasks: [zeroshot]}}",
         "templates.ct: needs at least 1 item"),
        ("name: x\ndatasets: {'a/b': {source: " + GOOD + ", tasks: [zeroshot]}}", "datasets.a/b: dataset names may"),
        ("name: x\ndatasets: [a, b", "not valid YAML"),
        ("[a, b]", ": expected a mapping"),
    ],
)
def test_bad_suite_names_the_file_and_the_problem(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(InvalidInputError) as error:
        load_suite(path)
    assert str(path) in str(error.value) and message in str(error.value)


def test_unknown_suite_and_dataset_names():
    with pytest.raises(InvalidInputError, match="unknown suite 'nope'.*local"):
        load_suite("nope")
    with pytest.raises(InvalidInputError, match="unknown dataset"):
        load_suite("local").select(["pneumoniamnist", "chexpert"])
    with pytest.raises(InvalidInputError, match="suite file not found"):
        load_suite("missing/suite.yaml")


def test_classes_and_prompts_keep_their_values():
    suite = parse_suite(ZS + ", classes: {0: normal, 1: tumour}, prompts: {pairs: {tumour: [tumour, [no tumour]]}}}}")
    entry = suite.datasets["a"]
    assert entry.classes == {"0": "normal", "1": "tumour"}
    assert entry.prompts == {"pairs": {"tumour": ("tumour", ["no tumour"])}}


def test_parse_suite_keeps_order_and_defaults():
    entry = "{source: " + GOOD + ", tasks: [zeroshot, zeroshot]}"
    suite = parse_suite(f"name: s\ndatasets: {{b: {entry}, a: {entry}}}")
    assert list(suite.datasets) == ["b", "a"]
    assert suite.datasets["b"].tasks == ("zeroshot",) and suite.datasets["b"].classes is None
