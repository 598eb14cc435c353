"""BioViL / BioViL-T: hi-ml's image state dict and CXR-BERT's files in one folder, read without remote code and
checked against outputs of hi-ml's own classes (``tests/golden/biovil/make_golden.py``)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from openmedclip import zero_shot
from openmedclip.embed import encode_images, encode_texts
from openmedclip.errors import ModelLoadError
from openmedclip.io import read_image
from openmedclip.models import load_model
from openmedclip.models.families.biovil.config import BiovilEntry, ImageSettings
from openmedclip.models.families.biovil.preprocess import BiovilPreprocess
from openmedclip.models.registry import REGISTRY, registry
from tiny_models import assert_saved_folder_stands_alone

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "biovil"
CXR = Path("/work/shared/data/txv_test_cxr")
IMAGE_FILE = "biovil_image_resnet50_proj_size_128.pt"
IMAGE_FILE_T = "biovil_t_image_model_proj_size_128.pt"
TINY = {"width_divisor": 16, "num_classes": 10, "joint_dim": 16, "resize": 112, "crop": 96}
SETTINGS = {
    "biovil": ImageSettings("biovil", **TINY),
    "biovil-t": ImageSettings("biovil-t", layers=(1, 1, 1, 1), **TINY),
}


def _use_tiny_settings(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    entry = registry()[name]
    monkeypatch.setitem(REGISTRY, name, dataclasses.replace(entry, config=BiovilEntry(SETTINGS[name])))


@pytest.fixture()
def zoo(tmp_path, monkeypatch) -> Path:
    """``$OPENMEDCLIP_MODELS`` with the golden BioViL and BioViL-T folders in their published layout."""
    root = tmp_path / "zoo"
    shutil.copytree(GOLDEN / "biovil", root / "biovil")
    shutil.copytree(GOLDEN / "biovil", root / "biovil-t", ignore=shutil.ignore_patterns(IMAGE_FILE))
    state = torch.load(GOLDEN / "biovil_t_image.pt", weights_only=True)
    generator = torch.Generator().manual_seed(0)
    shapes = json.loads((GOLDEN / "biovil_t_pooler_shapes.json").read_text())
    state.update({key: torch.randn(shape, generator=generator) for key, shape in shapes.items()})
    torch.save(state, root / "biovil-t" / IMAGE_FILE_T)
    for name in SETTINGS:
        _use_tiny_settings(monkeypatch, name)
    monkeypatch.setenv("OPENMEDCLIP_MODELS", str(root))
    return root


@pytest.fixture(scope="module")
def golden() -> dict[str, torch.Tensor]:
    return load_file(str(GOLDEN / "outputs.safetensors"))


def _pixels(golden: dict[str, torch.Tensor]) -> torch.Tensor:
    return (golden["pixels"].float() / 255)[:, None].expand(-1, 3, -1, -1)


def test_registry_entries_name_the_published_files():
    biovil, biovil_t = registry()["biovil"], registry()["biovil-t"]
    assert (biovil.hf_repo, biovil.revision, biovil.licence) == ("microsoft/BiomedVLP-CXR-BERT-specialized", "v1.1",
                                                                  "MIT")
    assert biovil.checksums == {IMAGE_FILE: "md5:02ce6ee460f72efd599295f440dbb453"}
    assert (biovil_t.hf_repo, biovil_t.revision) == ("microsoft/BiomedVLP-BioViL-T", "v1.0")
    assert biovil_t.checksums == {IMAGE_FILE_T: "md5:a83080e2f23aa584a4f2b24c39b1bb64"}
    for entry in (biovil, biovil_t):
        assert not any(name.endswith(".py") for name in entry.files) and "pytorch_model.bin" in entry.files
        assert entry.prompts == "radiology_findings" and entry.config.image.joint_dim == 128
    assert biovil.config.image.crop == 480 and biovil_t.config.image.crop == 448


def test_strict_load_by_name_and_by_path(zoo):
    loaded = load_model("biovil", device="cpu")
    image = torch.load(zoo / "biovil" / IMAGE_FILE, weights_only=True)
    text = torch.load(zoo / "biovil" / "pytorch_model.bin", weights_only=True)
    ours = loaded.model.state_dict()
    assert len(image) == 328 and "encoder.encoder.fc.weight" in image and "bert.embeddings.position_ids" in text
    for key, value in image.items():
        assert torch.equal(ours["image." + key], value), key
    for key, value in text.items():
        if key != "bert.embeddings.position_ids":
            assert torch.equal(loaded.model.text.get_parameter(key) if "decoder" in key else ours["text." + key],
                               value), key
    assert loaded.spec.family == "biovil" and loaded.spec.format == "hi-ml" and loaded.zero_shot_scale == 1.0
    for path in (zoo / "biovil", zoo / "biovil" / IMAGE_FILE):
        again = load_model(path, device="cpu")
        assert again.spec.family == "biovil"
        assert all(torch.equal(value, ours[key]) for key, value in again.model.state_dict().items())


@pytest.mark.parametrize(("name", "prefix"), [("biovil", "biovil"), ("biovil-t", "biovil_t")])
def test_outputs_equal_hi_ml(zoo, golden, name, prefix):
    loaded = load_model(name, device="cpu")
    pixels = _pixels(golden)
    with torch.no_grad():
        patches = loaded.family.patch_features(loaded.model, pixels)
        pooled = loaded.model.encode_image(pixels)
    assert patches.shape == golden[f"{prefix}_patches"].shape == (2, 3, 3, 16)
    assert (patches - golden[f"{prefix}_patches"]).abs().max() < 1e-5
    assert (pooled - golden[f"{prefix}_global"]).abs().max() < 1e-5
    assert torch.allclose(patches.mean(dim=(1, 2)), pooled, atol=1e-6)


def test_biovil_t_single_image_ignores_the_prior_image_pooler(zoo, golden):
    loaded = load_model("biovil-t", device="cpu")
    with torch.no_grad():
        for parameter in loaded.model.image.encoder.vit_pooler.parameters():
            parameter.normal_()
        pooled = loaded.model.encode_image(_pixels(golden))
    assert (pooled - golden["biovil_t_global"]).abs().max() < 1e-5


def test_text_embeddings_equal_hi_ml(zoo, golden):
    loaded = load_model("biovil", device="cpu")
    prompts = json.loads((GOLDEN / "prompts.json").read_text())
    tokens = loaded.tokenizer(prompts)
    upstream = golden["input_ids"]
    assert loaded.context_length == 128 and tokens.shape == (len(prompts), 128)
    assert torch.equal(tokens[:, : upstream.shape[1]], upstream) and not tokens[:, upstream.shape[1]:].any()
    assert (tokens == 1).sum() < tokens.ne(0).sum() / 4  # mostly known words, not [UNK]
    with torch.no_grad():
        raw = loaded.model.encode_text(tokens)
        longest = loaded.model.encode_text(upstream)
    assert (raw - golden["text_raw"]).abs().max() < 1e-5
    assert (longest - raw).abs().max() < 1e-5  # the padding length does not matter: it is masked
    assert (encode_texts(loaded, prompts) - golden["text_normalised"]).abs().max() < 1e-5


def test_preprocessing_equals_hi_ml_on_real_chest_x_rays():
    expected = np.load(GOLDEN / "preprocessed.npz")
    ours = BiovilPreprocess(512, 480)(read_image(CXR / "00000001_000.png"))
    assert ours.shape == (3, 480, 480) and torch.equal(ours[0], ours[2])
    assert torch.equal((ours[0] * 255).round().to(torch.uint8), torch.from_numpy(expected["png_480"]))
    cropped = BiovilPreprocess(512, 448)(read_image(CXR / "00000001_000.png"))
    assert torch.equal(cropped, ours[:, 16:464, 16:464])
    non_square = Image.open(CXR / "16747_3_1.jpg")
    ours = BiovilPreprocess(512, 480)(non_square)
    assert torch.equal((ours[1] * 255).round().to(torch.uint8), torch.from_numpy(expected["jpg_pil_480"]))
    geometry = BiovilPreprocess(512, 480).geometry((non_square.height, non_square.width))
    assert geometry.resized_size == (512, 599) and geometry.offset == (16, 60)
    assert geometry.to_source(-0.5 - 16, -0.5 - 60) == pytest.approx((-0.5, -0.5))


def _rewrite(path: Path, change) -> None:
    state = torch.load(path, weights_only=True)
    change(state)
    torch.save(state, path)


@pytest.mark.parametrize(("file_name", "dropped"), [
    (IMAGE_FILE, "encoder.encoder.fc.bias"),
    (IMAGE_FILE, "projector.model.1.running_var"),
    ("pytorch_model.bin", "cls_projection_head.LayerNorm.weight"),
])
def test_dropped_and_surplus_keys_are_named(zoo, file_name, dropped):
    path = zoo / "biovil" / file_name
    _rewrite(path, lambda state: state.pop(dropped))
    with pytest.raises(ModelLoadError) as error:
        load_model("biovil", device="cpu")
    assert dropped in str(error.value) and "missing" in str(error.value)
    shutil.copy(GOLDEN / "biovil" / file_name, path)
    _rewrite(path, lambda state: state.update({"surplus.weight": torch.zeros(1)}))
    with pytest.raises(ModelLoadError) as error:
        load_model("biovil", device="cpu")
    assert "surplus.weight" in str(error.value) and str(path) in str(error.value)


def test_tied_decoder_keys_are_optional_but_must_match(zoo, golden):
    path = zoo / "biovil" / "pytorch_model.bin"
    _rewrite(path, lambda state: [state.pop(key) for key in ("cls.predictions.decoder.weight",
                                                            "cls.predictions.decoder.bias")])
    loaded = load_model("biovil", device="cpu")
    head = loaded.model.text.cls.predictions
    assert head.decoder.weight is loaded.model.text.bert.embeddings.word_embeddings.weight
    assert torch.equal(head.decoder.bias, head.bias)
    _rewrite(path, lambda state: state.update({"cls.predictions.decoder.bias": state["cls.predictions.bias"] + 1}))
    with pytest.raises(ModelLoadError, match="cls.predictions.decoder.bias differs"):
        load_model("biovil", device="cpu")


class _Touch:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("file_name", [IMAGE_FILE, "pytorch_model.bin"])
def test_a_pickle_that_runs_code_is_refused(zoo, tmp_path, file_name):
    marker = tmp_path / "pwned"
    path = zoo / "biovil" / file_name
    _rewrite(path, lambda state: state.update({"payload": _Touch(marker)}))
    with pytest.raises(ModelLoadError) as error:
        load_model("biovil", device="cpu")
    assert "refused to unpickle" in str(error.value) and "posix.system" in str(error.value)
    assert not marker.exists()


def test_missing_model_names_files_source_and_destination(tmp_path, monkeypatch):
    with pytest.raises(ModelLoadError) as error:
        load_model("biovil", device="cpu")
    message = str(error.value)
    for part in (IMAGE_FILE, "pytorch_model.bin", "vocab.txt", "config.json", "OPENMEDCLIP_MODELS/biovil",
                 "https://huggingface.co/microsoft/BiomedVLP-CXR-BERT-specialized/tree/v1.1",
                 "openmedclip download biovil"):
        assert part in message, part
    folder = tmp_path / "zoo" / "biovil"
    shutil.copytree(GOLDEN / "biovil", folder, ignore=shutil.ignore_patterns(IMAGE_FILE))
    monkeypatch.setenv("OPENMEDCLIP_MODELS", str(tmp_path / "zoo"))
    with pytest.raises(ModelLoadError, match=f"{IMAGE_FILE} not found"):
        load_model("biovil", device="cpu")


def test_zero_shot_is_plain_cosine(zoo):
    loaded = load_model("biovil", device="cpu")
    images = [read_image(CXR / name) for name in ("00000001_000.png", "00027426_000.png", "16747_3_1.jpg")]
    labels = ["pneumonia", "pleural effusion"]
    result = zero_shot(loaded, images, labels, templates="{}", num_workers=0)
    features = encode_images(loaded, images, num_workers=0).features
    expected = torch.softmax(features @ encode_texts(loaded, labels).T, dim=-1).numpy()
    assert result.probabilities.shape == (3, 2) and np.allclose(result.probabilities, expected, atol=1e-6)


def test_a_saved_model_folder_loads_without_the_published_files(zoo, tmp_path):
    _, again = assert_saved_folder_stands_alone("biovil", "biovil", zoo, tmp_path / "fine-tuned")
    assert again.zero_shot_scale == 1.0 and "logit_scale" in again.model.state_dict()
