"""The contamination check: a model trained on some images, evaluated on a test set holding copies of three of
them in another file format, reports exactly those three as seen; ``--exclude-seen`` leaves exactly those out."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from openmedclip.data import open_source
from openmedclip.embed import encode_images, encode_texts
from openmedclip.eval.report import contamination_cell
from openmedclip.models import load_model
from openmedclip.tasks.retrieval import retrieval_metrics
from openmedclip.train import load_recipe, train

SUITE = """
name: seen
datasets:
  mixed:
    source: {type: table, path: mixed/captions.jsonl, label_col: modality}
    classes: {CT: computed tomography, MR: magnetic resonance imaging}
    prompts: {templates: ["a {} scan."]}
    tasks: [zeroshot, retrieval]
"""
SEEN = (1, 4, 6)
"""Test images that are copies (as TIFF) of training images."""


@pytest.fixture(scope="module")
def trained(tiny_model_dir, tmp_path_factory):
    """A checkpoint trained for one epoch on 6 PNGs, and a test table of 8 images, 3 of them training copies."""
    tmp = tmp_path_factory.mktemp("contamination")
    rng = np.random.default_rng(3)
    train_dir, test_dir = tmp / "train", tmp / "data" / "mixed"
    train_dir.mkdir()
    test_dir.mkdir(parents=True)
    train_pixels = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(6)]
    rows = []
    for i, pixels in enumerate(train_pixels):
        Image.fromarray(pixels).save(train_dir / f"t{i}.png")
        rows.append({"image": f"t{i}.png", "caption": f"training image {i}"})
    (train_dir / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    test_rows = []
    for i in range(8):
        name = f"x{i}.tif" if i in SEEN else f"x{i}.png"
        pixels = train_pixels[SEEN.index(i)] if i in SEEN else rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(test_dir / name)
        modality = "CT" if i % 2 else "MR"
        test_rows.append({"image": name, "caption": f"{modality} test image {i}", "modality": modality})
    (test_dir / "captions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in test_rows))
    recipe = {
        "model": str(tiny_model_dir), "datasets": [{"type": "table", "path": str(train_dir / "pairs.jsonl")}],
        "epochs": 1, "batch_size": 3, "lr": 1e-4, "out_dir": str(tmp / "run"), "progress": False, "device": "cpu",
    }
    summary = train(load_recipe(None, recipe))
    suite = tmp / "seen.yaml"
    suite.write_text(SUITE)
    return summary.checkpoint, suite, tmp / "data"


def _evaluate(cli, model, suite, root, out, *extra) -> dict[str, dict]:
    result = cli("eval", "-s", suite, "-m", model, "-o", out, "--data-root", root, "--bootstrap", "50", *extra)
    assert result.exit_code == 0, result.output
    return {json.loads(p.read_text())["task"]: json.loads(p.read_text()) for p in out.glob("[!.]*/*/*.json")}


def test_seen_test_items_are_reported(cli, trained, tmp_path):
    checkpoint, suite, root = trained
    results = _evaluate(cli, checkpoint, suite, root, tmp_path / "r")
    for payload in results.values():
        check = payload["contamination"]
        assert (check["checked"], check["seen"], check["of"], check["excluded"]) == (True, 3, 8, False)
        assert [item["key"] for item in check["seen_items"]] == [f"x{i}.tif" for i in SEEN]
        assert [item["train_key"] for item in check["seen_items"]] == ["t0.png", "t1.png", "t2.png"]
        assert payload["n_items"] == 8
    assert contamination_cell(results["zeroshot_classification"]) == "3 of 8 seen"


def test_exclude_seen_drops_exactly_the_seen_items(cli, trained, tmp_path):
    checkpoint, suite, root = trained
    results = _evaluate(cli, checkpoint, suite, root, tmp_path / "r", "--exclude-seen")
    retrieval = results["zeroshot_retrieval"]
    assert retrieval["contamination"]["excluded"] is True and retrieval["contamination"]["seen"] == 3
    assert retrieval["n_items"] == 5 and retrieval["details"]["n_texts"] == 5
    assert results["zeroshot_classification"]["n_items"] == 5
    assert retrieval["resampling"] == {"unit": "item", "n_units": 5}
    assert retrieval["options"]["exclude_seen"] is True

    model = load_model(checkpoint, device="cpu")
    source = open_source({"type": "table", "path": str(root / "mixed" / "captions.jsonl"), "label_col": "modality"})
    unseen = [i for i in range(8) if i not in SEEN]
    images = encode_images(model, [source.paths[i] for i in unseen])
    texts = encode_texts(model, [source.captions(i)[0] for i in unseen])
    direct = retrieval_metrics(images.features, texts, list(range(5)), n_bootstrap=50)
    metrics = retrieval["metrics"]
    for k in (1, 5):
        assert metrics[f"image_retrieval_recall@{k}"] == pytest.approx(direct.text_to_image.recall[k].value)
        assert metrics[f"text_retrieval_recall@{k}"] == pytest.approx(direct.image_to_text.recall[k].value)
    assert contamination_cell(retrieval) == "3 of 8 seen, left out"


def test_a_model_without_a_manifest_is_not_checked(cli, trained, tiny_model_dir, tmp_path):
    _, suite, root = trained
    results = _evaluate(cli, tiny_model_dir, suite, root, tmp_path / "r", "--exclude-seen")
    for payload in results.values():
        assert payload["contamination"] == {
            "checked": False, "seen": None, "of": 8, "excluded": False, "manifest": None, "seen_items": [],
        }
        assert payload["n_items"] == 8
    assert cli("report", tmp_path / "r", "--no-plots").exit_code == 0
    assert "| mixed | " in (text := (tmp_path / "r" / "report.md").read_text())
    assert "not checked (no training manifest)" in text


def test_test_hashes_are_cached_beside_the_features(cli, trained, tmp_path, monkeypatch):
    checkpoint, suite, root = trained
    out = tmp_path / "r"
    first = _evaluate(cli, checkpoint, suite, root, out)
    assert len(list((out / ".cache" / "pixel_hashes").glob("*.json"))) == 1
    import openmedclip.eval.contamination as contamination

    monkeypatch.setattr(contamination, "pixel_hash", lambda pixels: pytest.fail("hashed again"))
    again = _evaluate(cli, checkpoint, suite, root, out)
    assert again["zeroshot_classification"]["contamination"] == first["zeroshot_classification"]["contamination"]


def test_everything_seen_and_excluded_fails_the_dataset(cli, trained, tmp_path):
    checkpoint, suite, root = trained
    table = root / "mixed" / "captions.jsonl"
    rows = [json.loads(line) for line in table.read_text().splitlines()]
    only_seen = root / "mixed" / "seen.jsonl"
    only_seen.write_text("".join(json.dumps(rows[i]) + "\n" for i in SEEN))
    narrow = tmp_path / "narrow.yaml"
    narrow.write_text(suite.read_text().replace("mixed/captions.jsonl", "mixed/seen.jsonl"))
    result = cli("eval", "-s", narrow, "-m", checkpoint, "-o", tmp_path / "r", "--data-root", root, "--exclude-seen")
    assert result.exit_code == 1
    assert "all 3 readable test items were seen in training" in result.output
