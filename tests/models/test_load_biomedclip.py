"""BiomedCLIP-format folders (timm image tower, Hugging Face BERT text tower) load offline as open_clip does."""

from __future__ import annotations

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from openmedclip.errors import ModelLoadError
from openmedclip.models import load_model
from tiny_models import BIOMEDBERT, install_in_hf_cache, tiny_vocab

TEXTS = ["Chest X-ray shows bilateral pleural effusions.", "no acute findings", "a CT scan of the abdomen"]


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(1)
    return [Image.fromarray(rng.integers(0, 256, (50 + 7 * i, 70, 3), dtype=np.uint8)) for i in range(3)]


def test_features_equal_open_clip_local_dir_loading(tiny_biomedclip_dir, hf_cache):
    # open_clip builds the text tower from AutoConfig.from_pretrained(hf_model_name): give it the cache entry.
    install_in_hf_cache(hf_cache, BIOMEDBERT, tiny_biomedclip_dir)
    reference, reference_preprocess = open_clip.create_model_from_pretrained(f"local-dir:{tiny_biomedclip_dir}")
    reference_tokenizer = open_clip.get_tokenizer(f"local-dir:{tiny_biomedclip_dir}")
    loaded = load_model(tiny_biomedclip_dir, device="cpu")

    ours_pixels = torch.stack([loaded.preprocess(image) for image in _images()])
    reference_pixels = torch.stack([reference_preprocess(image) for image in _images()])
    assert torch.equal(ours_pixels, reference_pixels)
    assert torch.equal(loaded.tokenizer(TEXTS), reference_tokenizer(TEXTS))
    with torch.no_grad():
        assert torch.equal(loaded.model.encode_image(ours_pixels), reference.eval().encode_image(reference_pixels))
        ours_text = loaded.model.encode_text(loaded.tokenizer(TEXTS))
        assert torch.equal(ours_text, reference.encode_text(reference_tokenizer(TEXTS)))
    assert loaded.logit_scale == pytest.approx(float(reference.logit_scale.detach().exp()))


def test_tokenizer_gives_vocabulary_ids_not_unknown(tiny_biomedclip_dir):
    loaded = load_model(tiny_biomedclip_dir, device="cpu")
    ids = loaded.tokenizer(["Chest X-ray shows two hearts."])
    vocab = {token: index for index, token in enumerate(tiny_vocab())}
    words = ["[CLS]", "chest", "x", "-", "ray", "shows", "two", "heart", "##s", ".", "[SEP]"]
    assert ids.dtype == torch.long and ids.shape == (1, loaded.context_length) == (1, 32)
    assert ids[0, : len(words)].tolist() == [vocab[word] for word in words]
    assert ids[0, len(words):].eq(vocab["[PAD]"]).all()


def test_spec_describes_the_model(tiny_biomedclip_dir):
    loaded = load_model(tiny_biomedclip_dir, device="cpu")
    assert loaded.spec.format == "open_clip-hub"
    assert loaded.spec.architecture == f"custom:test_vit+{BIOMEDBERT}"
    assert loaded.spec.source == str(tiny_biomedclip_dir / "open_clip_model.safetensors")
    assert loaded.spec.config.model_cfg["text_cfg"]["hf_model_name"] == BIOMEDBERT
    assert not loaded.model.training and not any(module.training for module in loaded.model.modules())


def test_text_config_and_tokenizer_found_in_hf_cache(tiny_biomedclip_dir, tmp_path, hf_cache):
    bert = install_in_hf_cache(hf_cache, BIOMEDBERT, tiny_biomedclip_dir)
    for name in ("config.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        (tiny_biomedclip_dir / name).unlink()
    loaded = load_model(tiny_biomedclip_dir, device="cpu")
    assert loaded.model.text.config.hidden_size == 32
    assert loaded.model.text.config.name_or_path == str(bert)
    assert loaded.tokenizer(["lung"])[0, 1].item() == tiny_vocab().index("lung")


def test_missing_text_config_says_where_to_get_it(tiny_biomedclip_dir):
    (tiny_biomedclip_dir / "config.json").unlink()
    with pytest.raises(ModelLoadError) as error:
        load_model(tiny_biomedclip_dir, device="cpu")
    assert f"https://huggingface.co/{BIOMEDBERT}" in str(error.value)
    assert "config.json" in str(error.value)


@pytest.mark.parametrize(("config_name", "cached_name"), [
    ("microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract", BIOMEDBERT),
    (BIOMEDBERT, "microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract"),
])
def test_renamed_text_repository_is_found_offline_under_either_name(
    tiny_biomedclip_dir, tmp_path, hf_cache, config_name, cached_name
):
    import json
    import shutil

    text_files = tmp_path / "text"
    text_files.mkdir()
    for name in ("config.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.move(tiny_biomedclip_dir / name, text_files / name)
    install_in_hf_cache(hf_cache, cached_name, text_files)
    config = json.loads((tiny_biomedclip_dir / "open_clip_config.json").read_text())
    config["model_cfg"]["text_cfg"].update(hf_model_name=config_name, hf_tokenizer_name=config_name)
    (tiny_biomedclip_dir / "open_clip_config.json").write_text(json.dumps(config))
    loaded = load_model(tiny_biomedclip_dir, device="cpu")
    assert loaded.tokenizer(["chest"])[0, 1] != 1  # a real vocabulary id, not [UNK]


def test_registry_entry_pins_the_current_pooler(tiny_biomedclip_dir, hf_cache):
    import json

    from tiny_models import BIOMEDCLIP_REPO

    config = json.loads((tiny_biomedclip_dir / "open_clip_config.json").read_text())
    config["model_cfg"]["text_cfg"]["hf_pooler_type"] = "cls_pooler"  # the pre-April-2023 config
    (tiny_biomedclip_dir / "open_clip_config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="pooler"):  # as a plain folder: the weights have no BERT pooler
        load_model(tiny_biomedclip_dir, device="cpu")
    install_in_hf_cache(hf_cache, BIOMEDCLIP_REPO, tiny_biomedclip_dir)
    loaded = load_model("biomedclip", device="cpu")
    assert loaded.spec.config.model_cfg["text_cfg"]["hf_pooler_type"] == "cls_last_hidden_state_pooler"
