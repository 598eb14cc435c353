"""Registry names resolve from $OPENMEDCLIP_MODELS or the Hugging Face cache, or say where to get the files."""

from __future__ import annotations

import shutil

import open_clip
import pytest
import torch
from safetensors.torch import load_file

from openmedclip.errors import ModelLoadError
from openmedclip.models import list_models, load_model
from openmedclip.models.families.open_clip.config import OpenClipEntry
from openmedclip.models.family import FAMILIES
from openmedclip.models.registry import REGISTRY, RegistryEntry, registry
from tiny_models import BIOMEDCLIP_REPO, install_in_hf_cache

OPENAI = ["ViT-B-32", "ViT-B-16", "ViT-L-14", "ViT-L-14-336", "RN50", "RN101"]


def test_registry_name_without_local_files_says_where_to_download_and_put_them():
    with pytest.raises(ModelLoadError) as error:
        load_model("biomedclip", device="cpu")
    message = str(error.value)
    assert f"https://huggingface.co/{BIOMEDCLIP_REPO}" in message
    assert "$OPENMEDCLIP_MODELS/biomedclip/" in message
    assert "https://huggingface.co/microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract" in message


def test_registry_name_loads_from_hf_cache(tiny_biomedclip_dir, hf_cache):
    snapshot = install_in_hf_cache(hf_cache, BIOMEDCLIP_REPO, tiny_biomedclip_dir, revision="abc")
    loaded = load_model("biomedclip", device="cpu")
    direct = load_model(tiny_biomedclip_dir, device="cpu")
    assert loaded.spec.source == str(snapshot / "open_clip_model.safetensors")
    assert loaded.spec.hf_repo == BIOMEDCLIP_REPO
    tokens = loaded.tokenizer(["pleural effusion"])
    with torch.no_grad():
        assert torch.equal(loaded.model.encode_text(tokens), direct.model.encode_text(tokens))


def test_registry_name_loads_from_openmedclip_models_folder(tiny_biomedclip_dir, tmp_path, monkeypatch):
    root = tmp_path / "zoo"
    shutil.copytree(tiny_biomedclip_dir, root / "biomedclip")
    monkeypatch.setenv("OPENMEDCLIP_MODELS", str(root))
    loaded = load_model("biomedclip", device="cpu")
    assert loaded.spec.source == str(root / "biomedclip" / "open_clip_model.safetensors")


def test_openai_name_is_pretrained_and_arch_name_is_random():
    random = load_model("ViT-B-16", device="cpu")
    assert random.spec.source == "random" and random.spec.format == "open_clip-arch"
    assert "quick_gelu" not in random.spec.config.model_cfg
    with pytest.raises(ModelLoadError) as error:
        load_model("openai/ViT-B-16", device="cpu")
    assert "https://huggingface.co/timm/vit_base_patch16_clip_224.openai" in str(error.value)


def test_openai_folder_with_bare_checkpoint_uses_the_entry_architecture(
    tiny_arch, tiny_model_dir, tmp_path, monkeypatch
):
    entry = RegistryEntry(
        name="openai/Tiny", family="open_clip", hf_repo="timm/tiny.openai", description="test",
        config=OpenClipEntry(
            architecture=tiny_arch, model_overrides={"quick_gelu": True}, preprocess={"interpolation": "bilinear"}
        ),
    )
    monkeypatch.setitem(REGISTRY, entry.name, entry)
    folder = tmp_path / "zoo" / "openai" / "Tiny"
    folder.mkdir(parents=True)
    shutil.copy(tiny_model_dir / "open_clip_model.safetensors", folder / "Tiny.safetensors")
    monkeypatch.setenv("OPENMEDCLIP_MODELS", str(tmp_path / "zoo"))
    loaded = load_model("openai/Tiny", device="cpu")
    assert loaded.spec.architecture == tiny_arch
    assert loaded.spec.config.model_cfg["quick_gelu"] is True
    assert isinstance(loaded.model.visual.transformer.resblocks[0].mlp.gelu, open_clip.transformer.QuickGELU)
    assert loaded.spec.config.preprocess_cfg["interpolation"] == "bilinear"
    expected = load_file(str(folder / "Tiny.safetensors"))
    assert all(torch.equal(value, expected[key]) for key, value in loaded.model.state_dict().items())


def test_registry_entries_match_open_clip_and_never_shadow_architectures():
    registry()
    for arch in OPENAI:
        entry = REGISTRY[f"openai/{arch}"]
        assert entry.hf_repo == open_clip.get_pretrained_cfg(arch, "openai")["hf_hub"].strip("/")
        assert entry.config.architecture == arch
    assert all(entry.family in FAMILIES for entry in REGISTRY.values())
    assert not set(REGISTRY) & set(open_clip.list_models())


def test_list_models_has_registry_and_architecture_names():
    names = list_models()
    assert {"biomedclip", "openai/ViT-B-16", "ViT-B-16", "RN50"} <= set(names)
    assert len(names) == len(set(names))


@pytest.mark.parametrize(("typo", "suggestion"), [("biomedclp", "biomedclip"), ("vit-b-16", "ViT-B-16")])
def test_unknown_name_suggests_close_matches(typo, suggestion):
    with pytest.raises(ModelLoadError) as error:
        load_model(typo, device="cpu")
    assert suggestion in str(error.value)
    assert "list_models()" in str(error.value)


def test_families_and_entries_registered_from_user_code_load_by_name(tiny_model_dir, monkeypatch):
    from openmedclip.models import register_family, register_model
    from openmedclip.models.families.open_clip import OpenClipFamily

    monkeypatch.setitem(FAMILIES, "lab", None)  # removed again after the test

    @register_family
    class LabFamily(OpenClipFamily):
        name = "lab"

    monkeypatch.setitem(REGISTRY, "lab/tiny", RegistryEntry("lab/tiny", "lab", "", "test", OpenClipEntry(),
                                                             bundled=None))
    monkeypatch.setenv("OPENMEDCLIP_MODELS", str(tiny_model_dir.parent))
    (tiny_model_dir.parent / "lab").mkdir(exist_ok=True)
    link = tiny_model_dir.parent / "lab" / "tiny"
    if not link.exists():
        link.symlink_to(tiny_model_dir)
    loaded = load_model("lab/tiny", device="cpu")
    assert loaded.spec.family == "lab" and isinstance(loaded.family, LabFamily)
    assert "lab/tiny" in list_models()
    with pytest.raises(ValueError, match="already registered"):
        register_model(REGISTRY["lab/tiny"])
