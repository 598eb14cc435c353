"""The split audit: exact and near copies within and across parts, conflicting labels, the de-duplicated view, the
command, and the findings on the real shared data."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from duplicate_images import texture as _texture
from duplicate_images import write_classes as _write_classes
from openmedclip.audit import DeduplicatedSource, Part, audit_parts, deduplicate, source_parts, write_audit
from openmedclip.audit.run import NEAR_CORRELATION, NEAR_DISTANCE
from openmedclip.errors import InvalidInputError


def _variants(pixels: np.ndarray) -> dict[str, np.ndarray]:
    picture = Image.fromarray(pixels)
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=70)
    return {
        "resized": np.asarray(picture.resize((77, 77), Image.Resampling.BICUBIC)),
        "upscaled": np.asarray(picture.resize((192, 192), Image.Resampling.BICUBIC)),
        "jpeg70": np.asarray(Image.open(buffer).convert("L")),
        "brighter": np.asarray(ImageEnhance.Brightness(picture).enhance(1.05)),
    }


def test_exact_near_and_conflicting_copies_across_parts(tmp_path):
    originals = {seed: _texture(seed) for seed in range(6)}
    train = _write_classes(tmp_path / "train", {
        "a": [(f"t{seed}", originals[seed]) for seed in (0, 1, 2)],
        "b": [(f"t{seed}", originals[seed]) for seed in (3, 4, 5)],
    })
    variants = _variants(originals[1])
    test = _write_classes(tmp_path / "test", {
        "a": [("copy0", originals[0]), *((f"v_{name}", pixels) for name, pixels in variants.items())],
        "b": [("copy2", originals[2]), ("other", _texture(99))],
    })
    report = audit_parts([Part("set/train", train, "train"), Part("set/test", test, "test")])
    across = report.pairs_between("set/train", "set/test")
    found = {(pair.kind, pair.first_key.split("/")[-1], pair.second_key.split("/")[-1]) for pair in across}
    expected_near = {("near", "t1.png", f"v_{name}.png") for name in variants}
    assert ("exact", "t0.png", "copy0.png") in found and ("exact", "t2.png", "copy2.png") in found
    assert expected_near <= found
    assert not any("other" in pair.second_key for pair in across)
    assert len(found) == 2 + len(variants)
    conflicting = [pair for pair in across if pair.conflicting]
    assert [(pair.first_labels, pair.second_labels) for pair in conflicting] == [(("a",), ("b",))]
    assert all(pair.distance <= 4 for pair in across)
    row = {row["part"]: row for row in report.part_table()}["set/test"]
    assert (row["items"], row["exact_across"], row["near_across"], row["conflicting_pairs"]) == (7, 2, 6, 1)


def test_unrelated_images_are_not_copies_and_thresholds_are_checked(tmp_path):
    source = _write_classes(tmp_path / "one", {"x": [(f"s{seed}", _texture(seed)) for seed in range(30)]})
    report = audit_parts([Part("only", source)])
    assert report.pairs == []
    with pytest.raises(InvalidInputError, match="0..64"):
        audit_parts([Part("only", source)], near_distance=65)
    with pytest.raises(InvalidInputError, match="unique"):
        audit_parts([Part("same", source), Part("same", source)])
    with pytest.raises(InvalidInputError, match="nothing to audit"):
        audit_parts([])


def test_copies_within_one_part_and_the_files_written(tmp_path):
    pixels = _texture(7)
    source = _write_classes(tmp_path / "data", {"a": [("one", pixels), ("two", pixels)], "b": [("x", _texture(8))]})
    report = audit_parts([Part("data", source)])
    assert [(pair.kind, pair.cross_part) for pair in report.pairs] == [("exact", False)]
    files = write_audit(report, [Part("data", source)], tmp_path / "out")
    saved = json.loads(files["json"].read_text())
    assert saved["counts"]["exact_pairs"] == 1 and saved["thresholds"]["phash_distance_at_most"] == NEAR_DISTANCE
    assert saved["thresholds"]["thumbnail_correlation_at_least"] == NEAR_CORRELATION
    assert "| data | 3 | 2 | 2 |" in files["markdown"].read_text()
    sheet = Image.open(files["sheet"])
    assert sheet.format == "PNG" and sheet.width > 100


def test_the_deduplicated_view_drops_exactly_the_copied_rows(tmp_path):
    originals = [_texture(seed) for seed in range(4)]
    train = _write_classes(tmp_path / "train", {"a": [("t0", originals[0]), ("t1", originals[1])]})
    test = _write_classes(tmp_path / "test", {
        "a": [("copy", originals[0]), ("fresh", originals[2])],
        "b": [("near", _variants(originals[1])["jpeg70"]), ("new", originals[3])],
    })
    view = deduplicate(test, [train])
    assert isinstance(view, DeduplicatedSource)
    assert sorted(key.split("/")[-1] for key in view.dropped) == ["copy.png", "near.png"]
    assert sorted(key.split("/")[-1] for key in view.keys) == ["fresh.png", "new.png"]
    kept = [test.keys.index(key) for key in view.keys]
    assert np.array_equal(view.labels, test.labels[kept]) and np.array_equal(view.targets, test.targets[kept])
    assert np.array_equal(view.image(0).pixels, test.image(kept[0]).pixels)
    exact_only = deduplicate(test, [train], kinds=("exact",))
    assert [key.split("/")[-1] for key in exact_only.dropped] == ["copy.png"]


@pytest.mark.realdata
def test_shared_data_findings(shared_data):
    breast = audit_parts(source_parts(shared_data / "medmnist" / "breastmnist.npz"))
    exact = breast.pairs_between("breastmnist/train", "breastmnist/test", ("exact",))
    assert len(exact) == 1 and exact[0].conflicting
    rows = {row["part"]: row for row in breast.part_table()}
    assert 45 <= rows["breastmnist/test"]["near_across"] <= 70 and 20 <= rows["breastmnist/val"]["near_across"] <= 40
    pneumonia = audit_parts(source_parts(shared_data / "medmnist" / "pneumoniamnist.npz"))
    assert {row["part"]: row for row in pneumonia.part_table()}["pneumoniamnist/val"]["exact_across"] == 8


@pytest.mark.realdata
def test_vqa_rad_images_taken_from_medpix_are_found(shared_data):
    """VQA-RAD images come from MedPix: a test image whose MedPix picture id is in the MedPix train split is a known
    copy (resized), and the audit must find every one."""
    parts = [*source_parts(shared_data / "vqa_rad"), *source_parts(shared_data / "medpix2_traindev")]
    report = audit_parts(parts)
    medpix_ids = {key.rsplit("_", 1)[-1] for key in parts[2].source.keys}
    known = {key for key in parts[1].source.keys if key in medpix_ids}
    found = report.items_with_copy("vqa_rad/test", ["medpix2_traindev/train"])
    assert len(known) >= 5 and known <= found
