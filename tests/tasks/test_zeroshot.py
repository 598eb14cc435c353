"""Zero-shot classification against open_clip's own classifier builder and the CheXzero pair rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from open_clip.zero_shot_classifier import build_zero_shot_classifier

from openmedclip.embed import encode_images
from openmedclip.errors import InvalidInputError
from openmedclip.tasks.zeroshot import label_pairs, text_classifier, zero_shot

TEMPLATES = ["a chest x-ray showing {}.", "{} on radiograph."]


def test_classifier_matches_open_clip_builder(tiny_model):
    classes = ["normal", "pneumonia", "pleural effusion"]
    ours = text_classifier(tiny_model, {c: [t.format(c) for t in TEMPLATES] for c in classes})
    reference = build_zero_shot_classifier(tiny_model.model, tiny_model.tokenizer, classes, TEMPLATES)
    assert torch.allclose(ours, reference.T, atol=1e-5)


def test_multiclass_probabilities_are_softmax_of_scaled_similarities(tiny_model, image_folder):
    paths = sorted(image_folder.rglob("*.png"))
    classes = ["normal", "pneumonia"]
    result = zero_shot(tiny_model, paths, classes, templates=TEMPLATES, num_workers=0)
    reference = build_zero_shot_classifier(tiny_model.model, tiny_model.tokenizer, classes, TEMPLATES)
    features = encode_images(tiny_model, paths, num_workers=0).features
    expected = torch.softmax(tiny_model.logit_scale * features @ reference, dim=-1).numpy()
    np.testing.assert_allclose(result.probabilities, expected, atol=1e-5)
    assert [p.labels[0] for p in result.predictions()] == [classes[i] for i in expected.argmax(1)]
    assert result.items == [str(p) for p in paths]


def test_per_class_sentence_lists_are_used_as_given(tiny_model, image_folder):
    paths = sorted(image_folder.rglob("*.png"))[:2]
    sentences = {"CT": ["an axial CT slice.", "computed tomography of the head."], "MRI": ["a T2 MRI."]}
    result = zero_shot(tiny_model, paths, sentences, num_workers=0)
    assert result.prompts == sentences
    classifier = text_classifier(tiny_model, sentences)
    features = encode_images(tiny_model, paths, num_workers=0).features
    expected = torch.softmax(tiny_model.logit_scale * features @ classifier.T, dim=-1).numpy()
    np.testing.assert_allclose(result.probabilities, expected, atol=1e-5)


def test_multilabel_is_softmax_over_each_positive_negative_pair(tiny_model, image_folder):
    paths = sorted(image_folder.rglob("*.png"))
    pairs = {"No Finding": ("no acute cardiopulmonary process.", "abnormal chest radiograph.")}
    result = zero_shot(
        tiny_model, paths, ["pneumothorax", "No Finding"], multilabel=True, pairs=pairs, templates="{}", num_workers=0
    )
    assert result.prompts["pneumothorax"] == {"positive": ["pneumothorax"], "negative": ["no pneumothorax"]}
    assert result.prompts["No Finding"]["negative"] == ["abnormal chest radiograph."]
    features = encode_images(tiny_model, paths, num_workers=0).features
    texts = ["pneumothorax", "no pneumothorax", *pairs["No Finding"]]
    with torch.no_grad():
        text = torch.nn.functional.normalize(tiny_model.model.encode_text(tiny_model.tokenizer(texts)), dim=-1)
    logits = tiny_model.logit_scale * features @ text.T
    expected = np.stack(
        [torch.softmax(logits[:, 0:2], dim=-1)[:, 0].numpy(), torch.softmax(logits[:, 2:4], dim=-1)[:, 0].numpy()],
        axis=1,
    )
    np.testing.assert_allclose(result.probabilities, expected, atol=1e-5)
    for prediction, row in zip(result.predictions(), expected):
        assert prediction.labels == [label for label, p in zip(result.labels, row) if p >= 0.5]


def test_pair_precedence_given_then_bank_then_negated_template():
    from openmedclip.prompts import load_bank

    chest = load_bank("chest_xray")
    pairs = label_pairs(["No Finding", "Pneumothorax", "tumour blush"], pairs={"Pneumothorax": ("ptx", "no ptx")})
    assert pairs["Pneumothorax"] == (["ptx"], ["no ptx"])
    assert pairs["No Finding"] == ([chest.pairs["No Finding"][0]], [chest.pairs["No Finding"][1]])
    assert "no No Finding" not in pairs["No Finding"][1]
    assert pairs["tumour blush"] == (["tumour blush"], ["no tumour blush"])
    templated = label_pairs(["effusion"], templates=["a chest x-ray with {}."], bank=chest)
    assert templated["effusion"][1] == [f"a chest x-ray with {chest.pairs['Pleural Effusion'][1]}."]
    with pytest.raises(InvalidInputError, match="no growth"):
        label_pairs(["no growth"])


def test_bank_sentences_are_the_class_prompts(tiny_model, image_folder):
    from openmedclip.prompts import load_bank

    bank = load_bank("pediatric_chest_xray")
    paths = sorted(image_folder.rglob("*.png"))[:2]
    result = zero_shot(tiny_model, paths, ["normal", "pneumonia"], bank="pediatric_chest_xray", num_workers=0)
    assert result.prompts == {"normal": bank.sentences("normal"), "pneumonia": bank.sentences("pneumonia")}
    with pytest.raises(InvalidInputError, match="not in sentence bank"):
        zero_shot(tiny_model, paths, ["normal", "fracture"], bank=bank)


def test_bad_arguments_are_reported(tiny_model, image_folder):
    paths = sorted(image_folder.rglob("*.png"))
    with pytest.raises(InvalidInputError, match="slot"):
        zero_shot(tiny_model, paths, ["a", "b"], templates=["no slot here"])
    with pytest.raises(InvalidInputError, match="distinct"):
        zero_shot(tiny_model, paths, ["a", "a"])


@pytest.mark.parametrize(("labels", "multilabel", "message"), [
    (["normal", "pneumonia", "Normal"], False, "'normal' and 'Normal'"),
    (["pleural  effusion", "Pleural Effusion"], True, "ignoring case and spacing"),
    (["normal", " "], False, "a class label is empty"),
    (["pneumonia"], False, "at least two labels"),
    ("normal,pneumonia", False, "not one string"),
])
def test_meaningless_label_sets_are_refused_before_anything_is_encoded(tiny_model, labels, multilabel, message,
                                                                       monkeypatch):
    import openmedclip.tasks.zeroshot as module

    monkeypatch.setattr(module, "encode_images", lambda *a, **k: pytest.fail("encoded images"))
    with pytest.raises(InvalidInputError, match=message):
        zero_shot(tiny_model, ["x.png"], labels, multilabel=multilabel)


def test_one_label_is_fine_for_a_multilabel_decision(tiny_model, image_folder):
    paths = sorted(image_folder.rglob("*.png"))[:2]
    result = zero_shot(tiny_model, paths, ["pneumonia"], multilabel=True, num_workers=0)
    assert result.labels == ["pneumonia"] and result.probabilities.shape == (2, 1)
    with pytest.raises(InvalidInputError, match="no images"):
        zero_shot(tiny_model, [], ["a", "b"])


def test_result_serialises_with_errors(tiny_model, image_folder):
    bad = image_folder / "bad.dcm"
    bad.write_bytes(b"not a dicom file at all")
    paths = [*sorted(image_folder.rglob("*.png"))[:2], bad]
    payload = zero_shot(tiny_model, paths, ["normal", "abnormal"], num_workers=0).to_dict()
    assert len(payload["predictions"]) == 2
    assert payload["errors"][0]["item"] == str(bad)
    assert all(abs(sum(p["probabilities"].values()) - 1) < 1e-4 for p in payload["predictions"])


def test_plain_labels_known_to_one_bank_use_its_sentences(tiny_model, image_folder):
    from openmedclip.prompts import bank_for_labels, load_bank

    assert bank_for_labels(["chest", "abdomen", "head"]).name == "radiology_organ"
    assert bank_for_labels(["normal", "pneumonia"]).name == "pediatric_chest_xray"
    assert bank_for_labels(["normal", "tumour blush"]) is None
    paths = sorted(image_folder.rglob("*.png"))[:1]
    result = zero_shot(tiny_model, paths, ["chest", "head"], num_workers=0)
    organ = load_bank("radiology_organ")
    assert result.bank == "radiology_organ" and result.prompts["head"] == organ.sentences("head")
    templated = zero_shot(tiny_model, paths, ["chest", "head"], templates="{}", num_workers=0)
    assert templated.bank is None and templated.prompts["head"] == ["head"]
