"""UniMed-CLIP: training checkpoints with numpy objects, `module.` keys and `text_encoder.` → `text.`, loaded
strictly and compared with open_clip's own model built from the same weights."""

from __future__ import annotations

import shutil
import zipfile

import numpy as np
import open_clip
import pytest
import torch

from openmedclip.errors import ModelLoadError
from openmedclip.models import load_model
from openmedclip.models.families.open_clip.entries import BIOMEDBERT, _unimed
from openmedclip.models.registry import REGISTRY, registry
from tiny_models import OPENAI_MEAN

TINY_VIT = {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8}


def _tiny_entry():
    entry = _unimed("unimed/tiny", "UzairK/unimed-tiny", TINY_VIT, 16, "base", "tiny UniMed-CLIP-shaped model")
    entry.config.model_cfg["text_cfg"]["context_length"] = 32  # the tiny BERT has 64 positions, not 512
    return entry


def _reference(folder) -> torch.nn.Module:
    """open_clip's own CustomTextCLIP for the entry's config, its BERT config read from ``folder``."""
    cfg = _tiny_entry().config.model_cfg
    text = {**cfg["text_cfg"], "hf_model_name": str(folder), "hf_model_pretrained": False}
    torch.manual_seed(3)
    return open_clip.model.CustomTextCLIP(
        embed_dim=cfg["embed_dim"], vision_cfg=cfg["vision_cfg"], text_cfg=text, quick_gelu=True
    ).eval()


def _training_checkpoint(model: torch.nn.Module, extra_keys: dict | None = None) -> dict:
    state = {
        "module." + ("text_encoder." + key[len("text."):] if key.startswith("text.") else key): value
        for key, value in model.state_dict().items()
    }
    state.update(extra_keys or {})
    return {"epoch": 9, "state_dict": state, "best_zero_shot": np.float64(0.6163),
            "scaler": {"scale": np.float32(65536.0), "growth": np.int64(2000)}, "dtype": np.dtype("float32")}


@pytest.fixture()
def unimed_folder(tiny_biomedclip_source, tmp_path, monkeypatch):
    """`$OPENMEDCLIP_MODELS/unimed/tiny/` with the BERT config and tokenizer beside a UniMed-style `.pt`."""
    folder = tmp_path / "zoo" / "unimed" / "tiny"
    folder.mkdir(parents=True)
    for name in ("config.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(tiny_biomedclip_source / name, folder / name)
    monkeypatch.setenv("OPENMEDCLIP_MODELS", str(tmp_path / "zoo"))
    registry()
    monkeypatch.setitem(REGISTRY, "unimed/tiny", _tiny_entry())
    return folder


def test_training_checkpoint_with_numpy_objects_loads_and_matches_open_clip(unimed_folder):
    reference = _reference(unimed_folder)
    torch.save(_training_checkpoint(reference), unimed_folder / "unimed-clip-tiny.pt")
    loaded = load_model("unimed/tiny", device="cpu")
    for key, value in reference.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key
    assert loaded.spec.config.model_cfg["quick_gelu"] is True
    assert loaded.spec.config.preprocess_cfg["mean"] == list(OPENAI_MEAN)
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    tokens = loaded.tokenizer(["a chest x-ray showing pleural effusion", "brain mri"])
    with torch.no_grad():
        assert torch.allclose(loaded.model.encode_image(pixels), reference.encode_image(pixels), atol=1e-6)
        assert torch.allclose(loaded.model.encode_text(tokens), reference.encode_text(tokens), atol=1e-6)
    assert tokens.shape == (2, 32)


def test_numpy_1_pickle_loads_under_numpy_2(unimed_folder):
    reference = _reference(unimed_folder)
    modern = unimed_folder / "modern.pt"
    torch.save(_training_checkpoint(reference), modern)
    legacy = unimed_folder / "unimed-clip-tiny.pt"
    with zipfile.ZipFile(modern) as source, zipfile.ZipFile(legacy, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename.endswith("data.pkl"):
                assert b"numpy._core.multiarray" in data
                data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            target.writestr(item, data)
    modern.unlink()
    loaded = load_model("unimed/tiny", device="cpu")
    assert torch.equal(loaded.model.state_dict()["visual.proj"], reference.state_dict()["visual.proj"])


def test_every_unmatched_key_is_named(unimed_folder):
    reference = _reference(unimed_folder)
    checkpoint = _training_checkpoint(reference, {"module.text_encoder.extra.weight": torch.zeros(1)})
    del checkpoint["state_dict"]["module.visual.proj"]
    torch.save(checkpoint, unimed_folder / "unimed-clip-tiny.pt")
    with pytest.raises(ModelLoadError) as error:
        load_model("unimed/tiny", device="cpu")
    assert "text.extra.weight" in str(error.value) and "visual.proj" in str(error.value)


def test_published_entries_have_the_published_shapes_and_licence():
    entries = registry()
    for name, size, text in (
        ("unimed/vit-b16", 224, "base"),
        ("unimed/vit-l14-base-text", 336, "base"),
        ("unimed/vit-l14-large-text", 336, "large"),
    ):
        entry = entries[name]
        cfg = entry.config.model_cfg
        assert cfg["vision_cfg"]["image_size"] == size and cfg["quick_gelu"] is True
        assert cfg["text_cfg"]["hf_model_name"] == BIOMEDBERT.format(text) and cfg["text_cfg"]["context_length"] == 256
        assert entry.config.key_renames == {"text_encoder.": "text."}
        assert "CC BY-NC" in entry.licence and entry.needs == (BIOMEDBERT.format(text),)


def test_missing_unimed_model_says_where_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENMEDCLIP_MODELS", str(tmp_path))
    with pytest.raises(ModelLoadError) as error:
        load_model("unimed/vit-b16", device="cpu")
    assert "https://huggingface.co/UzairK/unimed-clip-vit-b16" in str(error.value)
    assert "BiomedBERT-base-uncased-abstract" in str(error.value)
