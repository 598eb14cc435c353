"""Captions from labels (CaptionSampler) and from VQA-style metadata (caption_from_fields)."""

from __future__ import annotations

import pytest

from openmedclip.data.captions import CaptionSampler, caption_from_fields
from openmedclip.errors import InvalidInputError
from openmedclip.prompts.banks import load_bank


@pytest.fixture(scope="module")
def chest():
    return load_bank("chest_xray")


def test_caption_is_deterministic_for_seed_sample_epoch(chest):
    first, second = CaptionSampler(chest, seed=7), CaptionSampler(chest, seed=7)
    for sample in range(20):
        for epoch in range(3):
            assert first.caption("Pneumonia", sample, epoch) == second.caption("pneumonia", sample, epoch)
            assert first.caption("Pneumonia", sample, epoch) in chest.classes["Pneumonia"]


def test_caption_varies_across_epochs_and_covers_the_class(chest):
    sampler = CaptionSampler(chest, seed=0)
    n = len(chest.classes["Atelectasis"])
    captions = [sampler.caption("Atelectasis", 3, epoch) for epoch in range(n)]
    assert sorted(captions) == sorted(chest.classes["Atelectasis"])  # every sentence once per cycle
    assert sampler.caption("Atelectasis", 3, n) in chest.classes["Atelectasis"]


def test_caption_differs_across_samples_and_seeds(chest):
    a, b = CaptionSampler(chest, seed=0), CaptionSampler(chest, seed=1)
    assert len({a.caption("Edema", s, 0) for s in range(30)}) > 3
    assert [a.caption("Edema", s, 0) for s in range(30)] != [b.caption("Edema", s, 0) for s in range(30)]


def test_plain_mapping_and_bank_name():
    sampler = CaptionSampler({"cat": ["A cat.", "One cat."], "dog": ["A dog."]}, seed=1)
    assert {sampler.caption("cat", 0, e) for e in range(2)} == {"A cat.", "One cat."}
    assert CaptionSampler("fundus").caption("no DR", 0, 0) in load_bank("fundus").classes["0"]
    with pytest.raises(InvalidInputError, match="without sentences"):
        CaptionSampler({"empty": []})


def test_caption_for_labels_joins_one_sentence_per_finding(chest):
    sampler = CaptionSampler(chest, seed=2)
    text = sampler.caption_for_labels(["effusion", "Cardiomegaly", "Pleural Effusion"], 4, epoch=1)
    effusion = [s for s in chest.classes["Pleural Effusion"] if s in text]
    heart = [s for s in chest.classes["Cardiomegaly"] if s in text]
    assert len(effusion) == 1 and len(heart) == 1
    assert len(text) == len(effusion[0]) + len(heart[0]) + 1
    assert text == sampler.caption_for_labels(["effusion", "Cardiomegaly"], 4, epoch=1)


def test_caption_for_empty_labels_uses_the_normal_class(chest):
    sampler = CaptionSampler(chest, seed=0)
    assert sampler.normal_class == "No Finding"
    assert sampler.caption_for_labels([], 9, 0) in chest.classes["No Finding"]
    assert CaptionSampler("pediatric_chest_xray").normal_class == "normal"
    with pytest.raises(InvalidInputError, match="no labels"):
        CaptionSampler({"a": ["x"]}).caption_for_labels([], 0, 0)


def test_unknown_label_names_the_bank(chest):
    with pytest.raises(InvalidInputError, match="chest_xray"):
        CaptionSampler(chest).caption("glioma", 0, 0)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"modality": "CT", "organ": "ABD", "plane": "axial"}, "Axial CT image of the abdomen."),
        ({"modality": "MR - T2 weighted", "organ": "HEAD"}, "MR image (T2 weighted) of the head."),
        ({"modality": "CXR", "organ": "CHEST", "plane": "PA"}, "PA radiograph of the chest."),
        ({"modality": "TAC", "organ": "Thorax"}, "CT image of the chest."),
        ({"modality": "Spectral CT", "organ": "Spine and Muscles"},
         "Spectral CT image of the spine and muscles."),
        ({"organ": "HEAD"}, "Image of the head."),
    ],
)
def test_caption_from_fields_header(fields, expected):
    assert caption_from_fields(**fields) == expected


def test_caption_from_fields_turns_qa_into_sentences():
    qa = [
        ("What is the modality?", "CT"),
        ("Is there   ascites?", "yes"),
        ("Is/Are there evidence of a pneumothorax", "No"),
        ("Is the liver parenchyma normal?", "Yes"),
        ("Are the lungs normal appearing?", "no"),
        ("Where is the lesion located?", "right lower lobe"),
        ("Is there ascites?", "yes"),
    ]
    assert caption_from_fields(organ="ABD", qa=qa) == (
        "CT image of the abdomen. There is evidence of ascites. There is no evidence of a pneumothorax. "
        "The liver parenchyma appears normal. The lungs appear abnormal. "
        "Where is the lesion located? Right lower lobe."
    )


def test_caption_from_fields_needs_something():
    with pytest.raises(InvalidInputError):
        caption_from_fields(qa=[("", "")])
