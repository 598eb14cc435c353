"""Sources on the real data in ../shared/data (skipped when absent); counts from its README / SOURCE.md."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from openmedclip.data import VQARAD, MedMNIST, MedPix, open_source

pytestmark = pytest.mark.realdata


@pytest.mark.parametrize(
    ("flag", "counts", "n_labels"),
    [("pneumoniamnist", (4708, 524, 624), 2), ("breastmnist", (546, 78, 156), 2), ("retinamnist", (1080, 120, 400), 5)],
)
def test_medmnist_split_sizes(shared_data: Path, flag: str, counts: tuple[int, int, int], n_labels: int) -> None:
    for split, n in zip(("train", "val", "test"), counts, strict=True):
        source = MedMNIST(shared_data / "medmnist" / f"{flag}.npz", split)
        assert len(source) == n and source.labels.shape == (n, n_labels) and source.task == "multiclass"
    assert source[0].image.pixels.shape[:2] == (28, 28) and source[0].image.meta["bit_depth"] == 8


def test_medmnist_labels(shared_data: Path) -> None:
    retina = MedMNIST(shared_data / "medmnist" / "retinamnist.npz", "train")
    assert np.bincount(retina.targets).tolist() == [486, 128, 206, 194, 66]
    breast = open_source({"type": "medmnist", "path": shared_data / "medmnist" / "breastmnist.npz", "split": "test"})
    assert breast.label_names == ["malignant", "normal, benign"]
    assert breast.labels.sum(axis=0).tolist() == [42, 114]


@pytest.mark.parametrize(("split", "n", "ct", "mr"), [("train", 1653, 878, 775), ("dev", 197, 84, 113)])
def test_medpix_counts(shared_data: Path, split: str, n: int, ct: int, mr: int) -> None:
    source = MedPix(shared_data / "medpix2_traindev", split, label="modality")
    assert len(source) == n and source.skipped == []
    assert source.label_names == ["CT", "MR"] and np.bincount(source.targets).tolist() == [ct, mr]
    assert Counter(m["Type"] for m in source.metadata) == {"CT": ct, "MR": mr}
    assert all(source.captions(i) for i in range(len(source)))
    sample = source[0]
    assert sample.image.pixels.size > 0 and sample.meta["case"]["Title"] and sample.labels[0] in ("CT", "MR")


def test_medpix_location_and_validation(shared_data: Path) -> None:
    source = MedPix(shared_data / "medpix2_traindev", "dev", label="location", validate=True)
    assert source.skipped == [] and len(source) == 197
    counts = dict(zip(source.label_names, source.labels.sum(axis=0).astype(int).tolist(), strict=True))
    assert counts == {
        "Abdomen": 23,
        "Head": 66,
        "Reproductive and Urinary System": 20,
        "Spine and Muscles": 58,
        "Thorax": 30,
    }
    assert MedPix(shared_data / "medpix2_traindev", "dev").task == "image-text"


def test_vqa_rad_images_per_organ(shared_data: Path) -> None:
    folder = shared_data / "vqa_rad"
    every = VQARAD(folder, "all")
    assert every.skipped == [] and len(every) == 314
    assert every.label_names == ["ABD", "CHEST", "HEAD"]
    assert np.bincount(every.targets).tolist() == [104, 107, 103]
    assert sum(len(m["qa"]) for m in every.metadata) == 3515
    with (folder / "image_organ.csv").open() as f:
        table = list(csv.DictReader(f))
    for split in ("train", "test"):
        source = VQARAD(folder, split)
        expected = Counter(r["image_organ"] for r in table if r[f"in_{split}set"] == "1")
        assert Counter(m["organ"] for m in source.metadata) == expected
    sample = every[0]
    assert sample.image.pixels.size > 0 and sample.captions == [] and sample.labels == [sample.meta["organ"]]
    modalities = Counter(m["modality"] for m in every.metadata)
    assert {"CT", "MR", "X-ray"} <= set(modalities)


def test_vqa_rad_train_only_excludes_every_test_image(shared_data: Path) -> None:
    folder = shared_data / "vqa_rad"
    train_only = VQARAD(folder, "train-only")
    test_keys = set(VQARAD(folder, "test").keys)
    assert len(train_only) == 111 and len(test_keys) == 203
    assert not set(train_only.keys) & test_keys
    assert all(m["splits"] == ["train"] for m in train_only.metadata)
