"""Training manifests: the decoded pixel hash, what a training run writes into its checkpoints, the stand-alone
entry that writes a recipe's manifest."""

from __future__ import annotations

import gzip
import hashlib
import json

import numpy as np
import pytest
import yaml
from PIL import Image

from openmedclip.data import open_source
from openmedclip.errors import InvalidInputError
from openmedclip.io import read_image
from openmedclip.io.pixel_hash import pixel_hash
from openmedclip.train import load_recipe, train
from openmedclip.train.manifest import MANIFEST_NAME, find_manifest, main, read_manifest


def _sha256_of(array: np.ndarray) -> str:
    """The definition, written out: dtype, shape and C-order bytes of the canonical array."""
    shape = "x".join(map(str, array.shape))
    return hashlib.sha256(f"{array.dtype.str}|{shape}|".encode() + np.ascontiguousarray(array).tobytes()).hexdigest()


def test_pixel_hash_is_the_same_for_the_same_pixels_in_any_lossless_form(tmp_path):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (20, 24), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "a.png")
    Image.fromarray(grey).convert("RGB").save(tmp_path / "a_rgb.png")
    Image.fromarray(grey).save(tmp_path / "a.tif")
    expected = _sha256_of(grey)
    assert pixel_hash(grey) == expected
    assert pixel_hash(grey.astype(np.float32)) == expected  # 8-bit data decoded as float32 (MedMNIST)
    for name in ("a.png", "a_rgb.png", "a.tif"):
        assert pixel_hash(read_image(tmp_path / name).pixels) == expected, name

    changed = grey.copy()
    changed[3, 4] ^= 1
    assert pixel_hash(changed) != expected
    assert pixel_hash(grey.T) != expected  # same values, other shape
    sixteen = grey.astype(np.float32) * 257
    assert pixel_hash(sixteen) == _sha256_of(sixteen) != expected  # beyond 8 bits: float32 as it is
    colour = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    assert pixel_hash(colour) == _sha256_of(colour)


def _table_hashes(table) -> tuple[list[str], list[str]]:
    source = open_source({"type": "table", "path": str(table)})
    return list(source.keys), [_sha256_of(np.asarray(Image.open(p))) for p in source.paths]


def test_a_training_run_writes_a_manifest_of_exactly_its_training_items(recipe, toy_table, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    rows = [json.loads(line) for line in toy_table.read_text().splitlines()][:5]
    (other / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for row in rows:
        (other / row["image"]).parent.mkdir(exist_ok=True)
        (other / row["image"]).write_bytes((toy_table.parent / row["image"]).read_bytes())
    unused = tmp_path / "unused.jsonl"
    unused.write_text(toy_table.read_text().replace("img/", str(toy_table.parent / "img") + "/"))
    datasets = [
        {"type": "table", "path": str(toy_table), "weight": 2.0, "captions": {"from_fields": True}},
        {"type": "table", "path": str(other / "pairs.jsonl"), "weight": 1.0, "name": "five"},
        {"type": "table", "path": str(unused), "weight": 0.0},
    ]
    summary = train(load_recipe(None, recipe(epochs=2, datasets=datasets)))
    checkpoints = sorted((summary.out_dir / "checkpoints").glob("step-*"))
    assert len(checkpoints) == 2 and all((c / MANIFEST_NAME).is_file() for c in checkpoints)
    assert find_manifest(summary.checkpoint) == summary.checkpoint / MANIFEST_NAME
    manifest = read_manifest(summary.checkpoint / MANIFEST_NAME)
    assert [d.name for d in manifest.datasets] == ["pairs", "five"]  # weight 0: not trained on
    for dataset, table in zip(manifest.datasets, (toy_table, other / "pairs.jsonl"), strict=True):
        assert (dataset.keys, dataset.hashes) == _table_hashes(table)
    assert manifest.datasets[0].spec == {"type": "table", "path": str(toy_table), "weight": 2.0}
    payload = json.loads(gzip.decompress((summary.checkpoint / MANIFEST_NAME).read_bytes()))
    assert payload["n_items"] == 32 + 5 and payload["n_unique"] == 32  # the five are copies
    assert manifest.seen()[manifest.datasets[1].hashes[0]] == ("pairs", manifest.datasets[0].keys[0])
    assert (checkpoints[0] / MANIFEST_NAME).read_bytes() == (checkpoints[1] / MANIFEST_NAME).read_bytes()


def test_manifest_can_be_turned_off(recipe):
    summary = train(load_recipe(None, recipe(epochs=1, manifest=False)))
    assert find_manifest(summary.checkpoint) is None


def test_python_m_entry_writes_a_recipes_manifest(recipe, toy_table, tmp_path, capsys):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe()), encoding="utf-8")
    assert main(["--recipe", str(path), "--out", str(tmp_path / "model")]) == 0
    assert "pairs 32" in capsys.readouterr().out
    manifest = read_manifest(tmp_path / "model" / MANIFEST_NAME)
    assert (manifest.datasets[0].keys, manifest.datasets[0].hashes) == _table_hashes(toy_table)
    assert main(["--recipe", str(tmp_path / "missing.yaml"), "--out", str(tmp_path)]) == 2
    assert "recipe not found" in capsys.readouterr().err


def test_a_file_that_is_not_a_manifest_is_refused(tmp_path):
    (tmp_path / MANIFEST_NAME).write_bytes(gzip.compress(b'{"format": "something else"}'))
    with pytest.raises(InvalidInputError, match="not a readable training manifest"):
        read_manifest(tmp_path / MANIFEST_NAME)
    (tmp_path / MANIFEST_NAME).write_text("plain text")
    with pytest.raises(InvalidInputError, match=MANIFEST_NAME):
        read_manifest(tmp_path / MANIFEST_NAME)
    assert find_manifest(tmp_path / "nowhere") is None and find_manifest(None) is None


def test_training_only_keys_do_not_reach_the_source(toy_table):
    from openmedclip.train.manifest import recipe_manifest

    spec = {"type": "table", "path": str(toy_table), "weight": 1.0, "flip": True, "captions": {"from_fields": True}}
    manifest = recipe_manifest([spec])
    assert manifest.datasets[0].spec == {"type": "table", "path": str(toy_table), "weight": 1.0}
    assert (manifest.datasets[0].keys, manifest.datasets[0].hashes) == _table_hashes(toy_table)
