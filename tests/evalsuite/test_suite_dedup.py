"""Suite entries with ``deduplicate``: a ``<name>-dedup`` result beside the raw one, without the test items that
have a copy in the training split (or the named sources)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from duplicate_images import texture, write_classes
from openmedclip.errors import InvalidInputError
from openmedclip.eval.runner import EvalOptions, run_suite
from openmedclip.eval.suite import parse_suite

SUITE = """
name: dedup
datasets:
  textures:
    source: {type: folders, path: data/test}
    train: {path: data/train}
    prompts: {templates: ["a texture of {}."]}
    tasks: [zeroshot, probe]
    deduplicate: {kinds: [exact, near]}
  textures-exact:
    source: {type: folders, path: data/test}
    prompts: {templates: ["a texture of {}."]}
    tasks: [zeroshot]
    deduplicate: {against: [{path: data/train}], kinds: [exact]}
  textures-missing:
    source: {type: folders, path: data/test}
    prompts: {templates: ["a texture of {}."]}
    tasks: [zeroshot]
    deduplicate: {against: [{path: data/elsewhere}]}
"""


def _jpeg(pixels):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=70)
    return np.asarray(Image.open(buffer).convert("L"))


def test_a_deduplicated_result_beside_the_raw_one(tiny_model_dir, tmp_path):
    seeds = {"a": [0, 1, 2, 3], "b": [4, 5, 6, 7]}
    write_classes(tmp_path / "data" / "train", {label: [(f"t{s}", texture(s)) for s in members]
                                                for label, members in seeds.items()})
    write_classes(tmp_path / "data" / "test", {
        "a": [("exact", texture(0)), ("near", _jpeg(texture(1))), ("new1", texture(10)), ("new2", texture(11))],
        "b": [("new3", texture(12)), ("new4", texture(13)), ("exact2", texture(5)), ("new5", texture(14))],
    })
    suite = parse_suite(SUITE)
    out = tmp_path / "out"
    summary = run_suite(suite, [str(tiny_model_dir)], out, tmp_path, EvalOptions(n_bootstrap=10, k_shots=(None,),
                                                                                   seeds=(0,)))
    results = {(p["dataset"], p["task"]): p for p in (json.loads(path.read_text()) for path in summary.written)}
    raw = results[("textures", "zeroshot_classification")]
    clean = results[("textures-dedup", "zeroshot_classification")]
    assert raw["n_items"] == 8 and "deduplicated" not in raw
    assert clean["n_items"] == 5
    assert clean["deduplicated"] == {"against": [{"type": "folders", "path": "data/train"}],
                                     "kinds": ["exact", "near"], "dropped": 3, "of": 8}
    assert results[("textures-dedup", "linear_probe")]["n_items"] == 5
    exact = results[("textures-exact-dedup", "zeroshot_classification")]
    assert exact["n_items"] == 6 and exact["deduplicated"]["dropped"] == 2
    assert [s["dataset"] for s in summary.skipped] == ["textures-missing-dedup"]
    assert ("textures-missing", "zeroshot_classification") in results


def test_deduplicate_needs_something_to_compare_with():
    with pytest.raises(InvalidInputError, match="'deduplicate' needs 'against' sources or a 'train' split"):
        parse_suite("name: x\ndatasets: {a: {source: {type: folders, path: p}, tasks: [zeroshot], "
                    "deduplicate: {}}}")
    with pytest.raises(InvalidInputError, match="deduplicate.kinds"):
        parse_suite("name: x\ndatasets: {a: {source: {type: folders, path: p}, train: {path: q}, "
                    "tasks: [zeroshot], deduplicate: {kinds: [similar]}}}")
