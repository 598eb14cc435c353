"""``open_clip_config.json``: every config the project ships or builds is accepted and handed on unchanged; malformed
ones fail with the file, the place and the problem."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from openmedclip.errors import ModelLoadError
from openmedclip.models.families.open_clip.config_file import OpenClipHubConfig, PreprocessCfg, read_hub_config
from tiny_models import (
    BIOMEDBERT,
    OPENAI_MEAN,
    OPENAI_STD,
    tiny_biomedclip_config,
    tiny_openclip_config,
    write_tiny_openclip_folder,
)

REPO = Path(__file__).resolve().parents[2]
SHIPPED = [
    REPO / "src" / "openmedclip" / "builtin" / "openmedclip-base" / "open_clip_config.json",
    *sorted((REPO / "configs" / "models").glob("*.json")),
]
BIOMEDCLIP = {
    "model_cfg": {
        "embed_dim": 512,
        "vision_cfg": {
            "timm_model_name": "vit_base_patch16_224",
            "timm_model_pretrained": False,
            "timm_pool": "",
            "timm_proj": "linear",
            "image_size": 224,
        },
        "text_cfg": {
            "hf_model_name": BIOMEDBERT,
            "hf_tokenizer_name": BIOMEDBERT,
            "hf_proj_type": "mlp",
            "hf_pooler_type": "cls_last_hidden_state_pooler",
            "context_length": 256,
        },
    },
    "preprocess_cfg": {"mean": OPENAI_MEAN, "std": OPENAI_STD},
}
"""The published BiomedCLIP config (microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224)."""


def _write(folder: Path, content: object) -> Path:
    path = folder / "open_clip_config.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def _assert_as_read(config: OpenClipHubConfig, content: dict) -> None:
    assert config.model_cfg_dict() == content["model_cfg"]
    assert json.dumps(config.model_cfg_dict()) == json.dumps(content["model_cfg"])  # same keys, order and types
    assert config.preprocess_dict() == content.get("preprocess_cfg", {})
    assert config.base_weights_dict() == content.get("base_weights", {})


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_are_accepted_unchanged(path):
    _assert_as_read(read_hub_config(path, "m"), json.loads(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize(
    "content",
    [tiny_openclip_config(), tiny_biomedclip_config(), BIOMEDCLIP],
    ids=["tiny-openclip", "tiny-biomedclip", "biomedclip"],
)
def test_test_and_published_configs_are_accepted(tmp_path, content):
    config = read_hub_config(_write(tmp_path, content), "m")
    _assert_as_read(config, content)
    assert config.model_cfg.embed_dim == content["model_cfg"]["embed_dim"]


def test_written_tiny_folders_are_accepted(tmp_path, tiny_biomedclip_dir):
    for folder in (write_tiny_openclip_folder(tmp_path / "tiny"), tiny_biomedclip_dir):
        path = folder / "open_clip_config.json"
        _assert_as_read(read_hub_config(path, "m"), json.loads(path.read_text(encoding="utf-8")))


def test_typed_keys_are_read():
    config = OpenClipHubConfig.model_validate(BIOMEDCLIP)
    assert config.model_cfg.text_cfg.hf_tokenizer_name == BIOMEDBERT
    assert config.model_cfg.text_cfg.context_length == 256
    assert config.model_cfg.vision_cfg.image_size == 224
    assert config.preprocess_cfg is not None and config.preprocess_cfg.mean == OPENAI_MEAN


def test_preprocess_keys_are_open_clips():
    from open_clip.transform import PreprocessCfg as OpenClipPreprocessCfg

    assert set(PreprocessCfg.model_fields) == {f.name for f in dataclasses.fields(OpenClipPreprocessCfg)}


def _with(**changes: object) -> dict:
    content = json.loads(json.dumps(tiny_openclip_config()))
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = content
        for part in parents:
            node = node[part]
        node[last] = value
    return content


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{ not json", "is not valid JSON"),
        ({"embed_dim": 32}, ": embed_dim: unknown key (known: model_cfg, preprocess_cfg, base_weights)"),
        ([1, 2], ": expected a mapping"),
        ({"model_cfg": {"vision_cfg": {}}}, ": model_cfg: missing 'embed_dim', 'text_cfg'"),
        (_with(model_cfgs={}), ": model_cfgs: unknown key (did you mean 'model_cfg'?)"),
        (_with(preprocess_cfg__sizee=32), ": preprocess_cfg.sizee: unknown key (did you mean 'size'?)"),
        (_with(preprocess_cfg=[]), ": preprocess_cfg: expected a mapping"),
        (_with(preprocess_cfg__resize_mode="crop"), ": preprocess_cfg.resize_mode: Input should be 'shortest'"),
        (_with(preprocess_cfg__mean="0.5"), ": preprocess_cfg.mean: expected a list (got '0.5')"),
        (_with(model_cfg__embed_dim="32"), ": model_cfg.embed_dim: expected an integer (got '32')"),
        (_with(model_cfg__text_cfg__context_length=True), ": model_cfg.text_cfg.context_length: expected an integer"),
        (_with(model_cfg__vision_cfg__image_size="big"), ": model_cfg.vision_cfg.image_size: expected an integer or a"),
        (_with(model_cfg__vision_cfg__image_size=[1, 2, 3]), ": model_cfg.vision_cfg.image_size: needs at most 2"),
        (_with(base_weights={"text.": 1}), ": base_weights.text.: expected a string (got 1)"),
        (_with(model_cfg__vision_cfg__timm_output_stride=12), ": model_cfg.vision_cfg.timm_output_stride: Input"),
    ],
)
def test_bad_configs_name_the_file_and_the_place(tmp_path, content, problem):
    path = _write(tmp_path, content)
    with pytest.raises(ModelLoadError) as error:
        read_hub_config(path, "mine")
    assert str(error.value).startswith(f"model 'mine': {path}")
    assert problem in str(error.value)


def test_unreadable_config(tmp_path):
    with pytest.raises(ModelLoadError, match="cannot read"):
        read_hub_config(tmp_path / "absent.json", "mine")


def test_unknown_keys_inside_open_clips_own_configs_are_kept(tmp_path):
    content = _with(model_cfg__quick_gelu=True, model_cfg__vision_cfg__patch_dropout=0.5)
    config = read_hub_config(_write(tmp_path, content), "m")
    assert config.model_cfg_dict()["quick_gelu"] is True
    assert config.model_cfg_dict()["vision_cfg"]["patch_dropout"] == 0.5


def test_output_stride_needs_a_timm_tower_with_a_projection_after_pooling(tmp_path):
    from openmedclip.models import load_model

    write_tiny_openclip_folder(tmp_path)
    content = json.loads((tmp_path / "open_clip_config.json").read_text())
    content["model_cfg"]["vision_cfg"]["timm_output_stride"] = 16
    _write(tmp_path, content)
    with pytest.raises(ModelLoadError, match="timm_output_stride needs a timm image tower"):
        load_model(tmp_path, device="cpu")
