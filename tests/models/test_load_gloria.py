"""GLoRIA: a PyTorch-Lightning ``.ckpt`` (pickled OmegaConf hyper-parameters read without running them), outputs
equal to upstream's own classes (golden files from ``tests/golden/gloria/make_golden.py``), the local similarity,
the preprocessing on real chest X-rays, and zero-shot."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torchvision.models import resnet50

from openmedclip import zero_shot
from openmedclip.embed import encode_images, encode_texts
from openmedclip.errors import ModelLoadError
from openmedclip.io import MedicalImage, read_image
from openmedclip.models import load_model
from openmedclip.models.families.gloria import GloriaConfig, local_similarity, similarity
from openmedclip.models.families.gloria.lightning_checkpoint import (
    PlaceholderDict,
    read_checkpoint,
    read_lightning_state_dict,
)
from openmedclip.models.families.gloria.model import GloriaModel
from openmedclip.models.families.gloria.text import clean_text
from openmedclip.models.registry import REGISTRY, registry
from tiny_models import assert_saved_folder_stands_alone

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "gloria"
CKPT = "chexpert_resnet50.ckpt"
TINY = GloriaConfig(resnet_layers=(1, 1, 1, 1), resnet_planes=(4, 8, 16, 32))
"""The golden model's architecture: upstream's classes with a narrow ResNet and a tiny BERT (config.json)."""
ATOL = 1e-5


@pytest.fixture(scope="module")
def golden() -> dict[str, torch.Tensor]:
    return load_file(GOLDEN / "golden.safetensors")


@pytest.fixture(scope="module")
def inputs() -> dict:
    return json.loads((GOLDEN / "inputs.json").read_text())


def _pixels(golden: dict[str, torch.Tensor]) -> torch.Tensor:
    """Upstream's preprocessed images, rebuilt exactly from their 8-bit grey values."""
    grey = golden["pixels_grey_u8"].float()
    return ((grey / 255 - 0.5) / 0.5)[:, None].expand(-1, 3, -1, -1)


def _bert_files(folder: Path) -> None:
    for name in ("config.json", "vocab.txt"):
        shutil.copy(GOLDEN / name, folder / name)


@pytest.fixture()
def zoo(tmp_path, monkeypatch) -> Path:
    """``$OPENMEDCLIP_MODELS/gloria/`` with the golden checkpoint and the tiny BERT's files; the entry on TINY."""
    registry()
    monkeypatch.setitem(REGISTRY, "gloria", dataclasses.replace(REGISTRY["gloria"], config=TINY))
    folder = tmp_path / "zoo" / "gloria"
    folder.mkdir(parents=True)
    shutil.copy(GOLDEN / CKPT, folder / CKPT)
    _bert_files(folder)
    monkeypatch.setenv("OPENMEDCLIP_MODELS", str(tmp_path / "zoo"))
    return folder


def _save_lightning(path: Path, state: dict[str, torch.Tensor], hyper_parameters: object = None) -> Path:
    torch.save({"epoch": 3, "global_step": 120, "pytorch-lightning_version": "1.1.4", "state_dict": state,
                "hyper_parameters": hyper_parameters or {"phase": "pretrain"}}, path)
    return path


def _golden_state() -> dict[str, torch.Tensor]:
    return read_checkpoint(GOLDEN / CKPT)["state_dict"]


# -- the registry entry and the container -------------------------------------------------------------------------


def test_registry_entry():
    entry = registry()["gloria"]
    assert entry.family == "gloria" and entry.hf_repo == "" and entry.licence == "Apache-2.0"
    assert entry.download_url == "https://stanfordmedicine.box.com/s/j5h7q99f3pfi7enc0dom73m4nsm6yzvh"
    assert entry.needs == ("emilyalsentzer/Bio_ClinicalBERT",) and entry.prompts == "chexpert_attributes"
    assert entry.config == GloriaConfig() and entry.config.image_size == 299 and entry.config.context_length == 97


def test_golden_checkpoint_holds_omegaconf_objects_read_as_inert_records():
    content = read_checkpoint(GOLDEN / CKPT)
    config = content["hyper_parameters"]
    assert type(config).__name__ == "DictConfig" and config.class_name == "omegaconf.dictconfig.DictConfig"
    assert type(config).__module__ != "omegaconf" and "omegaconf" not in sys.modules
    assert {key.class_name for key in content["callbacks"]} == {
        "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
        "pytorch_lightning.callbacks.early_stopping.EarlyStopping",
    }
    assert all(key.startswith("gloria.") for key in content["state_dict"])
    assert not any(".fc." in key for key in content["state_dict"])


def test_strict_load_through_the_registry_name(zoo):
    loaded = load_model("gloria", device="cpu")
    assert loaded.spec.family == "gloria" and loaded.spec.source == str(zoo / CKPT) and loaded.context_length == 97
    ours = loaded.model.state_dict()
    golden_state = _golden_state()
    assert len(ours) == len(golden_state)
    for key, value in golden_state.items():
        assert torch.equal(ours[key.removeprefix("gloria.")], value), key


def test_explicit_checkpoint_replaces_the_folder_one(zoo, tmp_path):
    state = {key: value.clone() for key, value in _golden_state().items()}
    state["gloria.img_encoder.global_embedder.bias"] += 1.0
    elsewhere = _save_lightning(tmp_path / "other.ckpt", state)
    loaded = load_model("gloria", device="cpu", checkpoint=elsewhere)
    assert loaded.spec.source == str(elsewhere)
    assert torch.equal(loaded.model.img_encoder.global_embedder.bias, state["gloria.img_encoder.global_embedder.bias"])


def test_a_checkpoint_outside_the_models_folder_with_the_text_tower_files_beside_it(monkeypatch, tmp_path):
    registry()
    monkeypatch.setitem(REGISTRY, "gloria", dataclasses.replace(REGISTRY["gloria"], config=TINY))
    shutil.copy(GOLDEN / CKPT, tmp_path / "gloria.ckpt")
    _bert_files(tmp_path)
    loaded = load_model("gloria", device="cpu", checkpoint=tmp_path / "gloria.ckpt")
    assert loaded.spec.source == str(tmp_path / "gloria.ckpt") and loaded.spec.folder == str(tmp_path)


def test_stale_position_ids_are_tolerated_by_name(zoo):
    state = dict(_golden_state())
    state["gloria.text_encoder.model.embeddings.position_ids"] = torch.arange(128)[None]
    _save_lightning(zoo / CKPT, state)
    load_model("gloria", device="cpu")


@pytest.mark.parametrize("change", ["drop", "surplus"])
def test_a_dropped_or_surplus_key_is_named(zoo, change):
    state = dict(_golden_state())
    if change == "drop":
        key = "gloria.img_encoder.local_embedder.weight"
        del state[key]
    else:
        key = "gloria.img_encoder.model.fc.weight"
        state[key] = torch.zeros(10, 128)
    _save_lightning(zoo / CKPT, state)
    with pytest.raises(ModelLoadError) as error:
        load_model("gloria", device="cpu")
    assert key.removeprefix("gloria.") in str(error.value)
    assert ("missing" if change == "drop" else "unexpected") in str(error.value)


@pytest.mark.slow
def test_a_full_size_checkpoint_loads_from_its_path_with_the_resnet50_layout(tmp_path):
    """The default architecture is torchvision's ResNet-50 without fc, read from a path (tiny BERT beside it)."""
    from transformers import BertConfig

    bert = BertConfig.from_pretrained(str(GOLDEN))
    vocab = (GOLDEN / "vocab.txt").read_text().split("\n")[:-1]
    torch.manual_seed(0)
    model = GloriaModel(GloriaConfig(), bert, vocab)
    reference = {key: value.shape for key, value in resnet50().state_dict().items() if not key.startswith("fc.")}
    trunk = {key.removeprefix("img_encoder.model."): value.shape for key, value in model.state_dict().items()
             if key.startswith("img_encoder.model.")}
    assert trunk == reference
    path = _save_lightning(tmp_path / CKPT, {"gloria." + key: value for key, value in model.state_dict().items()})
    _bert_files(tmp_path)
    loaded = load_model(path, device="cpu")
    assert loaded.spec.family == "gloria" and loaded.spec.architecture == "gloria-resnet50"
    pixels = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(loaded.model.encode_image(pixels), model.eval().encode_image(pixels))
        assert loaded.model.local_image_features(pixels).shape == (1, 32, 19, 19)  # the tiny BERT's width


# -- safety ---------------------------------------------------------------------------------------------------------


class _TouchMarker:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


class _ShellMarker:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize(
    ("payload", "global_name"), [(_ShellMarker, "posix.system"), (_TouchMarker, "__builtin__.getattr")]
)
def test_a_checkpoint_that_would_run_code_is_refused(zoo, tmp_path, payload, global_name):
    marker = tmp_path / "marker"
    _save_lightning(zoo / CKPT, _golden_state(), hyper_parameters=payload(marker))
    with pytest.raises(ModelLoadError) as error:
        load_model("gloria", device="cpu")
    assert f"refused to unpickle the global {global_name} " in str(error.value)
    assert not marker.exists()


def _fake_class(monkeypatch, module: str, name: str, base: type = object) -> type:
    """A class pickled under ``module.name`` (a stand-in module, as if that package were installed)."""
    parts = module.split(".")
    for depth in range(1, len(parts) + 1):
        package = ".".join(parts[:depth])
        if package not in sys.modules:
            monkeypatch.setitem(sys.modules, package, types.ModuleType(package))
    cls = type(name, (base,), {"__module__": module, "__qualname__": name})
    monkeypatch.setattr(sys.modules[module], name, cls, raising=False)
    return cls


def test_lightning_attribute_dict_is_a_placeholder_and_other_classes_are_refused(monkeypatch, tmp_path):
    attribute_dict = _fake_class(monkeypatch, "pytorch_lightning.utilities.parsing", "AttributeDict", dict)
    trainer = _fake_class(monkeypatch, "pytorch_lightning.trainer", "Trainer")
    path = _save_lightning(tmp_path / "a.ckpt", {"w": torch.ones(2)}, attribute_dict(lr=5e-5, phase="pretrain"))
    hyper_parameters = read_checkpoint(path)["hyper_parameters"]
    assert isinstance(hyper_parameters, PlaceholderDict) and dict(hyper_parameters) == {"lr": 5e-5, "phase": "pretrain"}
    path = _save_lightning(tmp_path / "b.ckpt", {"w": torch.ones(2)}, {"trainer": trainer()})
    with pytest.raises(ModelLoadError, match="refused to unpickle the global pytorch_lightning.trainer.Trainer"):
        read_lightning_state_dict(path, "gloria")


# -- missing files ----------------------------------------------------------------------------------------------------


def test_missing_model_names_the_files_and_where_to_get_and_put_them(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENMEDCLIP_MODELS", str(tmp_path))
    with pytest.raises(ModelLoadError) as error:
        load_model("gloria", device="cpu")
    message = str(error.value)
    assert CKPT in message and "config.json" in message and "vocab.txt" in message
    assert "https://stanfordmedicine.box.com/s/j5h7q99f3pfi7enc0dom73m4nsm6yzvh" in message
    assert "$OPENMEDCLIP_MODELS/gloria/" in message and "huggingface.co/emilyalsentzer/Bio_ClinicalBERT" in message


def test_missing_text_tower_files_say_where_they_come_from(zoo):
    (zoo / "config.json").unlink()
    with pytest.raises(ModelLoadError) as error:
        load_model("gloria", device="cpu")
    assert "config.json" in str(error.value) and "huggingface.co/emilyalsentzer/Bio_ClinicalBERT" in str(error.value)


# -- outputs against upstream -------------------------------------------------------------------------------------


def test_tokenizer_cleans_and_tokenizes_as_upstream(zoo, inputs):
    loaded = load_model("gloria", device="cpu")
    assert torch.equal(loaded.tokenizer(inputs["texts"]), torch.tensor(inputs["token_ids"]))


def test_clean_text_follows_upstream_rules():
    assert clean_text("Small left\npleural effusion. Pneumonia") == "small left pleural effusion"
    assert clean_text("1. No pneumothorax. 2. Stable lungs") == "no pneumothorax stable lungs"
    assert clean_text("opacité, café au lait") == "opacit caf au lait"
    assert clean_text("Pneumonia") == ""


def test_features_match_upstream(zoo, golden, inputs):
    model = load_model("gloria", device="cpu").model
    tokens = torch.tensor(inputs["token_ids"])
    with torch.no_grad():
        image_global, image_local = model.img_encoder(_pixels(golden))
        words, counts = model.word_features(tokens)
        sentences = model.encode_text(tokens)
        assert torch.allclose(model.encode_image(_pixels(golden)), golden["image_global"], atol=ATOL)
    assert torch.allclose(image_global, golden["image_global"], atol=ATOL)
    assert image_local.shape == (2, 32, 19, 19) and torch.allclose(image_local, golden["image_local"], atol=ATOL)
    assert torch.allclose(sentences, golden["text_global"], atol=ATOL)
    assert torch.allclose(words.permute(0, 2, 1), golden["text_words"], atol=ATOL)
    assert counts.tolist() == inputs["word_counts"]


@pytest.mark.parametrize("kind", ["global", "local", "both"])
def test_similarities_match_upstream(zoo, golden, inputs, kind):
    loaded = load_model("gloria", device="cpu")
    scores = similarity(loaded, _pixels(golden), torch.tensor(inputs["token_ids"]), kind)
    assert scores.shape == (2, len(inputs["texts"]))
    if kind != "global":
        scores = scores[:, inputs["local_texts"]]
    assert torch.allclose(scores, golden[f"{kind}_similarity"], atol=ATOL)


def test_local_similarity_function_and_family_method(zoo, golden, inputs):
    loaded = load_model("gloria", device="cpu")
    tokens = torch.tensor(inputs["token_ids"])
    scores = local_similarity(loaded, _pixels(golden), tokens)
    assert torch.allclose(scores[:, inputs["local_texts"]], golden["local_similarity"], atol=ATOL)
    assert torch.equal(scores[:, 2], torch.zeros(2))  # "Pneumonia" cleans to an empty caption: no words
    with torch.no_grad():
        assert torch.allclose(loaded.family.similarity(loaded.model, _pixels(golden), tokens, "local"), scores)


def test_patch_features_are_the_local_features(zoo, golden):
    loaded = load_model("gloria", device="cpu")
    with torch.no_grad():
        patches = loaded.family.patch_features(loaded.model, _pixels(golden))
    assert patches.shape == (2, 19, 19, 32)
    assert torch.allclose(patches, golden["image_local"].permute(0, 2, 3, 1), atol=ATOL)


# -- preprocessing --------------------------------------------------------------------------------------------------


def test_preprocess_matches_upstream_on_real_chest_xrays(zoo, golden, inputs):
    """Area resize (cv2 INTER_AREA upstream) to long side 256, pad, crop 224: at most 1 grey level on a few pixels."""
    loaded = load_model("gloria", device="cpu")
    expected = _pixels(golden)
    for index, name in enumerate(inputs["images"]):
        ours = loaded.preprocess(read_image(GOLDEN / name))
        assert ours.shape == (3, 224, 224)
        difference = (ours - expected[index]).abs() * 127.5  # grey levels
        assert difference.max() <= 1.0 + 1e-4 and (difference > 0.5).float().mean() < 1e-3, name


@pytest.mark.parametrize("source_size", [(468, 372), (340, 512), (300, 300), (1000, 80)])
def test_geometry_maps_model_pixels_onto_the_source(zoo, source_size):
    loaded = load_model("gloria", device="cpu")
    geometry = loaded.preprocess.geometry(source_size)
    pixels = np.full(source_size, 60, dtype=np.float32)
    pixels[source_size[0] // 2 :, :] = 250
    model_input = loaded.preprocess(MedicalImage(pixels, "edge", meta={"bit_depth": 8}))[0].numpy()
    profile = model_input[:, 112]
    crossing = int(np.argmax(profile > ((60 + 250) / 2 / 255 - 0.5) / 0.5))
    mapped = geometry.to_source(crossing, 112)[0]
    scale = source_size[0] / geometry.resized_size[0]
    assert abs(mapped - source_size[0] // 2) <= 1.5 * scale + 1


# -- zero-shot -----------------------------------------------------------------------------------------------------


def test_zero_shot_end_to_end(zoo):
    loaded = load_model("gloria", device="cpu")
    assert loaded.zero_shot_scale == pytest.approx(10.0) and loaded.logit_scale == pytest.approx(10.0)
    images = [read_image(GOLDEN / "cxr_tall.png"), read_image(GOLDEN / "cxr_wide.png")]
    labels = {"Pleural Effusion": ["small left pleural effusion", "moderate bilateral effusions"],
              "Edema": ["mild edema at the lung bases", "increased edema"]}
    result = zero_shot(loaded, images, labels, num_workers=0)
    assert result.probabilities.shape == (2, 2) and result.errors == []
    features = encode_images(loaded, images, num_workers=0).features
    classes = [torch.nn.functional.normalize(encode_texts(loaded, prompts).mean(dim=0), dim=0)
               for prompts in labels.values()]
    expected = torch.softmax(10.0 * features @ torch.stack(classes).T, dim=-1).numpy()
    assert np.allclose(result.probabilities, expected, atol=1e-6)


@pytest.mark.parametrize("kind", ["local", "both"])
def test_zero_shot_with_local_similarity_scores_each_class_by_its_best_sentence(zoo, kind):
    loaded = load_model("gloria", device="cpu")
    images = [read_image(GOLDEN / "cxr_tall.png"), read_image(GOLDEN / "cxr_wide.png")]
    labels = {"Pleural Effusion": ["small left pleural effusion", "moderate bilateral effusions"],
              "Edema": ["mild edema at the lung bases", "increased edema"]}
    result = zero_shot(loaded, images, labels, similarity=kind, num_workers=0, batch_size=1)
    pixels = torch.stack([loaded.preprocess(image) for image in images])
    tokens = loaded.tokenizer([sentence for group in labels.values() for sentence in group])
    with torch.no_grad():
        scores = loaded.family.similarity(loaded.model, pixels, tokens, kind)
    best = torch.stack([scores[:, :2].max(dim=1).values, scores[:, 2:].max(dim=1).values], dim=1)
    assert np.allclose(result.probabilities, torch.softmax(10.0 * best, dim=-1).numpy(), atol=1e-5)
    assert not np.allclose(result.probabilities, zero_shot(loaded, images, labels, num_workers=0).probabilities)

    pairs = {"Edema": (["mild edema at the lung bases"], ["no edema"])}
    multilabel = zero_shot(loaded, images, ["Edema"], multilabel=True, pairs=pairs, similarity=kind, num_workers=0)
    with torch.no_grad():
        pair = loaded.family.similarity(loaded.model, pixels, loaded.tokenizer(["mild edema at the lung bases",
                                                                                 "no edema"]), kind)
    expected = torch.sigmoid(10.0 * (pair[:, 0] - pair[:, 1]))[:, None].numpy()
    assert np.allclose(multilabel.probabilities, expected, atol=1e-5)


def test_local_similarity_is_refused_for_families_without_it(tiny_model_dir):
    from openmedclip.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="offers global"):
        zero_shot(load_model(tiny_model_dir, device="cpu"), [np.zeros((8, 8), np.uint8)], ["a", "b"],
                  similarity="local")


def test_a_saved_model_folder_loads_without_the_published_files(zoo, tmp_path):
    assert_saved_folder_stands_alone("gloria", "gloria", zoo, tmp_path / "fine-tuned")
