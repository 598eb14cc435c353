"""The published-protocol suites `unimed21` (UniMed-CLIP) and `biomedclip` (BiomedCLIP, Supplementary Table 10).

Expected values are transcribed from the sources named in each suite's header: UniMed-CLIP's ``constants.py``,
``clipeval/eval_zeroshot.py`` and ``clipeval/datasets.py`` at commit 6f09177, and BiomedCLIP's Supplementary
Tables 5 and 10.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from openmedclip.data import open_source
from openmedclip.embed import encode_images, encode_texts
from openmedclip.eval.suite import load_suite
from openmedclip.prompts import fill_templates
from openmedclip.tasks.zeroshot import text_classifier
from openmedclip.yaml_text import safe_load

ORGANS = [
    "heart", "left lung", "right lung", "liver", "spleen", "pancreas", "left kidney", "right kidney", "bladder",
    "left femoral head", "right femoral head",
]
SKIN_TUMOR = [
    "tumor_skin_epithelial_sqcc", "tumor_skin_melanoma_melanoma", "tumor_skin_epithelial_bcc",
    "tumor_skin_naevus_naevus",
]

# dataset -> (class folder -> UniMed-CLIP class name, in UniMed-CLIP's label order), from clipeval/datasets.py and the
# keys of the constants.py dict slip_evaluate.py picks for the dataset
UNIMED_CLASSES = {
    "chexpert-5x200": {c: c for c in ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]},
    "rsna_pneumonia": {"normal": "Normal", "pneumonia": "Pneumonia"},
    "acl_mri": {"no": "no", "yes": "yes"},
    "meniscal_mri": {"n": "no", "p": "yes"},
    "breast_us": {"benign": "benign", "malignant": "malignant"},
    "thyroid_us": {"benign": "benign", "malignant": "malignant"},
    "CT_axial": {o: o for o in ORGANS},
    "dr_regular": {c: c for c in ["no_dr", "mild_dr", "moderate_dr", "severe_dr", "full_stage4_dr"]},
    "refuge_retina": {"no glaucoma": "no glaucoma", "glaucoma": "glaucoma"},
    "five_retina": {c: c for c in "ADGN"},
    "LC25000_lung": {
        "lung_aca": "Lung adenocarcinoma", "lung_n": "Benign lung", "lung_scc": "Lung squamous cell carcinoma",
    },
    "PCAM": {"0": "Lymph node", "1": "Lymph node containing metastatic tumor tissue"},
    "NCK_CRC": {c: c for c in ["ADI", "DEB", "LYM", "MUC", "MUS", "NORM", "STR", "TUM"]},
    "BACH": {
        "Benign": "Breast non-malignant benign tissue",
        "InSitu": "Breast malignant in-situ carcinoma",
        "Invasive": "Breast malignant invasive carcinoma",
        "Normal": "Breast normal breast tissue",
    },
    "Osteo": {"Non-Tumor": "Normal non-tumor", "Non-Viable-Tumor": "Necrotic", "Viable": "Tumor"},
    "skin_tumor": {c: c for c in SKIN_TUMOR},
}

# sentences scored per class (constants.py list lengths; rsna_pneumonia is cut to its first sentence by
# validate_zeroshot's [0:1])
UNIMED_SENTENCE_COUNTS = {
    "chexpert-5x200": [10] * 5,
    "rsna_pneumonia": [1, 1],
    "acl_mri": [10, 10],
    "meniscal_mri": [10, 10],
    "breast_us": [10, 10],
    "thyroid_us": [10, 10],
    "CT_axial": [10] * 11,
    "CT_coronal": [10] * 11,
    "CT_sagittal": [10] * 11,
    "dr_regular": [15] * 5,
    "refuge_retina": [10, 5],
    "five_retina": [5] * 4,
    "odir_retina": [5] * 3,
    "LC25000_lung": [3] * 3,
    "LC25000_colon": [3] * 2,
    "PCAM": [2, 2],
    "NCK_CRC": [4] * 8,
    "BACH": [4] * 4,
    "Osteo": [4] * 3,
    "skin_cancer": [4] * 16,
    "skin_tumor": [4] * 4,
}

# (dataset, class, index, sentence) read in constants.py
UNIMED_SENTENCES = [
    ("chexpert-5x200", "Cardiomegaly", 2,
     "Enlargement of the heart, or cardiomeg bital acy, is displayed on the radiograph of the thoracic region."),
    ("rsna_pneumonia", "Normal", 0, "No pathological findings are evident in the chest X-ray image."),
    ("rsna_pneumonia", "Pneumonia", 0, "Pneumonia is indicated in this chest X-ray image."),
    ("thyroid_us", "benign", 0, "Symmetrical shape."),  # the active definition, not the commented-out one
    ("thyroid_us", "malignant", 9, "Indicative of tumor malignancy."),
    ("meniscal_mri", "yes", 0, "Meniscal abnormality detected in MRI imaging of the knee."),
    ("meniscal_mri", "no", 9, "MRI examination of the knee presents normal anatomical features.."),
    ("acl_mri", "yes", 9, "A disorder in the knee\u2019s anterior cruciate ligament is visible on MRI."),
    ("refuge_retina", "glaucoma", 0, "This fundus image shows optic nerve damage due to glaucoma."),
    ("CT_axial", "right kidney", 8, "CT scan image depicting the right kidney and its ureter."),
    ("PCAM", "Lymph node containing metastatic tumor tissue", 1,
     "Histopathology slide of a abnormal lymph node with metastatic tumor cells."),
    ("BACH", "Breast normal breast tissue", 3, "presence of Breast normal breast tissue tissue on image"),
    ("Osteo", "Necrotic", 0, "a histopathology slide showing Necrotic"),
]

UNIMED_MODALITIES = {"X-ray": 2, "MRI": 2, "US": 2, "CT": 3, "Retinal-Fundus": 4, "Histopathology": 8}

# BiomedCLIP Supplementary Table 10: dataset -> (classes in order, templates)
IMAGE_OF = ["this is an image of {}", "{} presented in image"]
PHOTO_OF = ["a photo of {}", "{} presented in image"]
BIOMEDCLIP_PROMPTS = {
    "pcam": (["normal lymph node", "lymph node metastasis"], IMAGE_OF),
    "lc25000-lung": (["lung adenocarcinomas", "normal lung tissue", "lung squamous cell carcinomas"], IMAGE_OF),
    "lc25000-colon": (["colon adenocarcinomas", "normal colonic tissue"], PHOTO_OF),
    "tcga-til": (["none", "tumor infiltrating lymphocytes"], PHOTO_OF),
    "rsna": (["normal lung", "pneumonia"], PHOTO_OF),
}


@pytest.fixture(scope="module")
def unimed():
    return load_suite("unimed21")


@pytest.fixture(scope="module")
def biomedclip():
    return load_suite("biomedclip")


def test_both_protocol_suites_parse_with_zero_shot_class_folder_datasets(unimed, biomedclip):
    assert len(unimed.datasets) == 21 and list(biomedclip.datasets) == list(BIOMEDCLIP_PROMPTS)
    for suite in (unimed, biomedclip):
        for entry in suite.datasets.values():
            assert entry.tasks == ("zeroshot",) and entry.source["type"] == "folders" and entry.classes
    counts = {m: sum(e.modality == m for e in unimed.datasets.values()) for m in UNIMED_MODALITIES}
    assert counts == UNIMED_MODALITIES


def test_every_unimed_class_has_its_sentences_and_no_templates(unimed):
    for name, entry in unimed.datasets.items():
        assert set(entry.prompts) == {"sentences"}, name
        sentences = entry.prompts["sentences"]
        assert list(sentences) == list(entry.classes.values()), name
        assert all(sentences[c] and all(s.strip() for s in sentences[c]) for c in sentences), name


@pytest.mark.parametrize("name", sorted(UNIMED_CLASSES))
def test_unimed_class_folders_names_and_order_match_upstream(unimed, name):
    assert unimed.datasets[name].classes == UNIMED_CLASSES[name]
    assert list(unimed.datasets[name].classes) == list(UNIMED_CLASSES[name])


def test_unimed_sentence_counts_per_class_match_upstream(unimed):
    counts = {n: [len(s) for s in e.prompts["sentences"].values()] for n, e in unimed.datasets.items()}
    assert counts == UNIMED_SENTENCE_COUNTS


@pytest.mark.parametrize(("name", "cls", "index", "sentence"), UNIMED_SENTENCES)
def test_unimed_sentences_are_verbatim(unimed, name, cls, index, sentence):
    assert unimed.datasets[name].prompts["sentences"][cls][index] == sentence


def test_the_three_ct_planes_share_one_sentence_set(unimed):
    axial = unimed.datasets["CT_axial"]
    for plane in ("CT_coronal", "CT_sagittal"):
        assert unimed.datasets[plane].classes == axial.classes
        assert unimed.datasets[plane].prompts == axial.prompts


@pytest.mark.parametrize("name", list(BIOMEDCLIP_PROMPTS))
def test_biomedclip_classes_and_templates_match_supplementary_table_10(biomedclip, name):
    classes, templates = BIOMEDCLIP_PROMPTS[name]
    entry = biomedclip.datasets[name]
    assert list(entry.classes.values()) == classes
    assert entry.prompts == {"templates": templates}


def _raw(suite: str) -> dict:
    return safe_load(resources.files("openmedclip").joinpath(f"configs/suites/{suite}.yaml").read_text("utf-8"))


def test_biomedclip_paths_keep_lc25000_as_published_and_the_positive_class_second(biomedclip):
    assert biomedclip.datasets["lc25000-lung"].source["path"] == "lung_colon_image_set/lung_image_sets"
    assert list(biomedclip.datasets["lc25000-colon"].classes) == ["colon_aca", "colon_n"]
    assert list(biomedclip.datasets["tcga-til"].classes.values())[1] == "tumor infiltrating lymphocytes"


def test_each_dataset_declares_its_published_metric_and_each_suite_its_means(unimed, biomedclip):
    assert {name: entry.metric for name, entry in unimed.datasets.items()} == dict.fromkeys(unimed.datasets, "acc1")
    binary = {"acl_mri", "meniscal_mri", "breast_us", "thyroid_us", "rsna_pneumonia", "refuge_retina"}
    for name, entry in _raw("unimed21")["datasets"].items():
        assert not entry["description"].startswith("metric:"), name
        assert ("auc_roc, f1_score" in entry["description"]) == (name in binary), name
    expected = {n: "auroc" if n == "tcga-til" else "acc1" for n in BIOMEDCLIP_PROMPTS}
    assert {name: entry.metric for name, entry in biomedclip.datasets.items()} == expected
    assert not any(e["description"].startswith("metric:") for e in _raw("biomedclip")["datasets"].values())
    assert unimed.summary == {"groups": "modality", "means": ["datasets", "groups"]}
    assert biomedclip.summary == {"groups": None, "means": ["datasets"]}


def test_text_classifier_is_the_renormalised_mean_of_normalised_sentence_embeddings(tiny_model):
    prompts = {"a": ["short.", "a much longer sentence about a lymph node with tumour."], "b": ["x", "y", "zz z"]}
    expected = []
    for sentences in prompts.values():
        embedded = encode_texts(tiny_model, sentences)
        assert torch.allclose(embedded.norm(dim=-1), torch.ones(len(sentences)), atol=1e-5)
        mean = embedded.mean(dim=0)
        expected.append(mean / mean.norm())
    assert torch.allclose(text_classifier(tiny_model, prompts), torch.stack(expected), atol=1e-6)


def _write_class_folders(root: Path, folders: list[str], per_class: int, seed: int) -> None:
    """Noisy grey images from dark to bright in every folder, so that a model's predictions vary."""
    rng = np.random.default_rng(seed)
    for folder in folders:
        (root / folder).mkdir(parents=True)
        for i, level in enumerate(np.linspace(10, 245, per_class)):
            pixels = np.clip(rng.normal(level, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / folder / f"img{i}.png")


def _results(out: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in out.glob("*/*/zeroshot_classification.json")}


def _unimed_logits(model, entry, root: Path) -> tuple[np.ndarray, np.ndarray]:
    """UniMed-CLIP's scoring (clipeval/eval_zeroshot.py) written out: per class the normalised sentence embeddings
    averaged and re-normalised; normalised image embeddings; logits = raw cosines. Returns (labels, logits)."""
    sentences = entry.prompts["sentences"]
    weights = []
    for name in entry.classes.values():
        embedded = encode_texts(model, sentences[name])
        mean = embedded.mean(dim=0)
        weights.append(mean / mean.norm())
    source = open_source({"type": "folders", "path": str(root / entry.source["path"])})
    images = encode_images(model, [source.image(i) for i in range(len(source))]).features
    images = images / images.norm(dim=-1, keepdim=True)
    order = list(entry.classes)
    truth = np.asarray([order.index(source.label_names[t]) for t in source.targets])
    return truth, (images @ torch.stack(weights).T).numpy()


def _auroc(positive: np.ndarray, score: np.ndarray) -> float:
    """Mann-Whitney AUROC (ties count one half)."""
    pos, neg = score[positive], score[~positive]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / pos.size / neg.size)


@pytest.fixture(scope="module")
def base_model():
    from openmedclip.models import load_model

    return load_model("openmedclip-base", device="cpu", precision="fp32")


def test_unimed21_run_scores_two_present_datasets_as_unimed_does(cli, base_model, unimed, tmp_path):
    root = tmp_path / "data"
    _write_class_folders(root / "rsna_pneumonia" / "test", ["normal", "pneumonia"], 4, 2)
    _write_class_folders(root / "Osteo" / "test", ["Non-Tumor", "Non-Viable-Tumor", "Viable"], 3, 1)
    out = tmp_path / "results"
    result = cli("eval", "--suite", "unimed21", "--model", "openmedclip-base", "--out", out, "--data-root", root,
                 "--bootstrap", "0", "--device", "cpu", "--precision", "fp32")
    assert result.exit_code == 0, result.output
    results = _results(out)
    assert set(results) == {"rsna_pneumonia", "Osteo"}
    summary = json.loads(next(out.glob("*/summary.json")).read_text())
    assert {s["dataset"] for s in summary["skipped"]} == set(unimed.datasets) - {"rsna_pneumonia", "Osteo"}

    rsna = results["rsna_pneumonia"]
    assert rsna["suite"] == "unimed21" and rsna["modality"] == "X-ray" and rsna["n_items"] == 8
    assert rsna["details"]["prompts"] == {
        "Normal": ["No pathological findings are evident in the chest X-ray image."],
        "Pneumonia": ["Pneumonia is indicated in this chest X-ray image."],
    }
    osteo = results["Osteo"]
    assert osteo["details"]["prompts"] == unimed.datasets["Osteo"].prompts["sentences"]
    assert osteo["details"]["metrics"]["class_names"] == ["Normal non-tumor", "Necrotic", "Tumor"]
    for name, payload in results.items():
        truth, logits = _unimed_logits(base_model, unimed.datasets[name], root)
        confusion = np.zeros((logits.shape[1],) * 2, dtype=int)
        np.add.at(confusion, (truth, logits.argmax(axis=1)), 1)
        assert payload["plots"]["confusion_matrix"] == confusion.tolist(), name
        assert payload["metrics"]["acc1"] == pytest.approx(np.trace(confusion) / confusion.sum())
    # UniMed-CLIP's auc_roc ranks cos(class 1) - cos(class 0); ours ranks the softmax of the scaled cosines
    truth, logits = _unimed_logits(base_model, unimed.datasets["rsna_pneumonia"], root)
    assert len(set(logits.argmax(axis=1))) == 2, "the check needs both classes predicted"
    assert rsna["metrics"]["auroc"] == pytest.approx(_auroc(truth == 1, logits[:, 1] - logits[:, 0]), abs=1e-9)


def test_biomedclip_run_fills_the_paper_templates(cli, tiny_model_dir, biomedclip, tmp_path):
    root = tmp_path / "data"
    _write_class_folders(root / "lung_colon_image_set" / "colon_image_sets", ["colon_aca", "colon_n"], 3, 2)
    _write_class_folders(root / "tcga-til" / "test", ["none", "til"], 3, 3)
    out = tmp_path / "results"
    result = cli("eval", "--suite", "biomedclip", "--model", tiny_model_dir, "--out", out, "--data-root", root,
                 "--bootstrap", "0")
    assert result.exit_code == 0, result.output
    results = _results(out)
    assert set(results) == {"lc25000-colon", "tcga-til"}
    summary = json.loads(next(out.glob("*/summary.json")).read_text())
    assert {s["dataset"] for s in summary["skipped"]} == {"pcam", "lc25000-lung", "rsna"}
    colon = results["lc25000-colon"]["details"]["prompts"]
    assert colon == {
        "colon adenocarcinomas": ["a photo of colon adenocarcinomas", "colon adenocarcinomas presented in image"],
        "normal colonic tissue": ["a photo of normal colonic tissue", "normal colonic tissue presented in image"],
    }
    til = results["tcga-til"]
    assert til["details"]["prompts"]["tumor infiltrating lymphocytes"] == fill_templates(
        PHOTO_OF, "tumor infiltrating lymphocytes"
    )
    assert til["details"]["metrics"]["class_names"] == ["none", "tumor infiltrating lymphocytes"]
    assert "auroc" in til["metrics"]
