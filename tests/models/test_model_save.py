"""save_model writes a hub folder that load_model reads back to the same model."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from openmedclip.errors import ModelLoadError
from openmedclip.models import load_model, save_model
from openmedclip.models.families.open_clip import OpenClipFamily
from openmedclip.models.family import FAMILIES, ModelFamily


def _same_features(first, second, texts: list[str], pixels: torch.Tensor) -> None:
    assert torch.equal(first.tokenizer(texts), second.tokenizer(texts))
    with torch.no_grad():
        tokens = first.tokenizer(texts)
        assert torch.equal(first.model.encode_text(tokens), second.model.encode_text(tokens))
        assert torch.equal(first.model.encode_image(pixels), second.model.encode_image(pixels))


def test_open_clip_text_tower_round_trip(tiny_model_dir, tmp_path):
    original = load_model(tiny_model_dir, device="cpu")
    with torch.no_grad():
        original.model.logit_scale.fill_(2.5)  # as if trained
    folder = save_model(original, tmp_path / "trained")
    reloaded = load_model(folder, device="cpu")
    _same_features(original, reloaded, ["a chest x-ray"], torch.rand(2, 3, 32, 32))
    assert reloaded.logit_scale == pytest.approx(original.logit_scale)
    assert reloaded.spec.config.preprocess_cfg == json.loads(json.dumps(original.spec.config.preprocess_cfg))


def test_hf_text_tower_round_trip_needs_nothing_outside_the_folder(tiny_biomedclip_dir, tmp_path):
    original = load_model(tiny_biomedclip_dir, device="cpu")
    folder = save_model(original, tmp_path / "trained")
    assert {"config.json", "tokenizer_config.json", "open_clip_config.json"} <= {p.name for p in folder.iterdir()}
    for path in tiny_biomedclip_dir.iterdir():
        path.unlink()  # the source folder is gone: the saved folder must be self-contained
    reloaded = load_model(folder, device="cpu")
    assert json.loads((folder / "open_clip_config.json").read_text())["model_cfg"] == original.spec.config.model_cfg
    _same_features(original, reloaded, ["Bilateral pleural effusions.", "normal"], torch.rand(2, 3, 64, 64))


def test_bf16_model_saves_and_reloads_in_fp32(tiny_model_dir, tmp_path):
    bf16 = load_model(tiny_model_dir, device="cpu", precision="bf16")
    reloaded = load_model(save_model(bf16, tmp_path / "bf16"), device="cpu")
    assert reloaded.dtype == torch.float32
    for key, value in bf16.model.state_dict().items():
        assert torch.equal(reloaded.model.state_dict()[key], value.to(reloaded.model.state_dict()[key].dtype))


def test_a_family_without_its_own_format_saves_openmedclip_folders(tiny_model_dir, tmp_path, monkeypatch):
    class PlainFamily(OpenClipFamily):
        name = "plain"

        def save(self, loaded, folder, **options):
            return ModelFamily.save(self, loaded, folder, **options)

    monkeypatch.setitem(FAMILIES, PlainFamily.name, PlainFamily())
    loaded = load_model(tiny_model_dir, device="cpu")
    loaded.spec = dataclasses.replace(loaded.spec, family="plain")
    with pytest.raises(ModelLoadError, match=r"unknown save options for plain models: \['base_weights'\]"):
        save_model(loaded, tmp_path / "refused", base_weights={})
    folder = save_model(loaded, tmp_path / "out", dtype=torch.float16)
    assert sorted(p.name for p in folder.iterdir() if p.suffix in {".json", ".safetensors"})[:2] == [
        "model.safetensors", "openmedclip_model.json"]
    again = load_model(folder, device="cpu")
    assert again.spec.family == "plain" and again.spec.format == "openmedclip-folder"
    for key, value in loaded.model.state_dict().items():
        expected = value.half().float() if value.is_floating_point() else value
        assert torch.equal(again.model.state_dict()[key], expected), key
