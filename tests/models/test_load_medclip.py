"""MedCLIP: the published ``pytorch_model.bin`` layout read strictly, outputs and preprocessing equal to upstream's
own classes (golden files from ``tests/golden/medclip/make_golden.py``), its CheXpert prompt bank, and CPU only."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from openmedclip import zero_shot
from openmedclip.embed import encode_images, encode_texts
from openmedclip.errors import ModelLoadError
from openmedclip.io import MedicalImage, read_image
from openmedclip.models import load_model, save_model
from openmedclip.models.families.medclip import MedclipFamily
from openmedclip.models.families.medclip.config import MedclipConfig
from openmedclip.models.family import FAMILIES
from openmedclip.models.registry import REGISTRY, registry
from openmedclip.prompts import load_bank
from openmedclip.tasks.zeroshot import text_classifier
from tiny_models import assert_same_outputs

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "medclip"
sys.path.insert(0, str(GOLDEN))
from pattern import with_patterns  # noqa: E402

SETTINGS = json.loads((GOLDEN / "inputs.json").read_text(encoding="utf-8"))
OUTPUTS = dict(np.load(GOLDEN / "outputs.npz"))
NAMES = {"resnet": "medclip/resnet50", "swin": "medclip/swin-tiny"}
CLAMPED = math.exp(4.6052)


def _tiny_config(vision: str, pooling: str = "upstream") -> MedclipConfig:
    """The golden models' architecture: published code path, tiny sizes."""
    return MedclipConfig(vision=vision, embed_dim=SETTINGS["embed_dim"], image_size=SETTINGS["swin"]["image_size"],
                         resnet_layers=tuple(SETTINGS["resnet"]["layers"]),
                         resnet_width_per_group=SETTINGS["resnet"]["width_per_group"], swin=SETTINGS["swin"],
                         text_pooling=pooling)  # type: ignore[arg-type]


def golden_state(vision: str) -> dict[str, torch.Tensor]:
    """The upstream model's state dict, as upstream's torch.save wrote it (see make_golden.py)."""
    if vision == "swin":
        return torch.load(GOLDEN / "swin" / "pytorch_model.bin", weights_only=True)
    stored = torch.load(GOLDEN / "resnet" / "stored_tensors.bin", weights_only=True)
    return with_patterns(stored, SETTINGS["pattern_keys"], SETTINGS["pattern_shapes"])


def write_model_folder(folder: Path, vision: str, state: dict | None = None) -> Path:
    """A model folder as a user fills it: the unzipped pytorch_model.bin plus Bio_ClinicalBERT's files."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "vocab.txt"):
        shutil.copy(GOLDEN / "text" / name, folder / name)
    if vision == "swin" and state is None:
        shutil.copy(GOLDEN / "swin" / "pytorch_model.bin", folder / "pytorch_model.bin")
    else:
        torch.save(golden_state(vision) if state is None else state, folder / "pytorch_model.bin")
    return folder


@pytest.fixture()
def zoo(tmp_path, monkeypatch):
    """Registry entries on the tiny architecture; ``zoo(vision, pooling)`` writes the folder and returns the name."""
    registry()

    def make(vision: str, pooling: str = "upstream", state: dict | None = None) -> str:
        name = NAMES[vision]
        monkeypatch.setitem(REGISTRY, name, dataclasses.replace(REGISTRY[name], config=_tiny_config(vision, pooling)))
        write_model_folder(tmp_path / "zoo" / name, vision, state)
        monkeypatch.setenv("OPENMEDCLIP_MODELS", str(tmp_path / "zoo"))
        return name

    return make


@pytest.mark.parametrize("vision", ["resnet", "swin"])
def test_published_checkpoint_loads_strictly_by_name(zoo, vision):
    state = golden_state(vision)
    assert "text_model.model.embeddings.position_ids" in state  # the stale buffer of the published files
    loaded = load_model(zoo(vision), device="cpu")
    assert loaded.spec.family == "medclip" and loaded.context_length == 77
    ours = loaded.model.state_dict()
    converted = loaded.family.convert_state_dict(state, loaded.model)
    loaded_keys = [key for key in converted if key in ours]
    assert len(loaded_keys) == len(ours)
    assert all(torch.equal(ours[key], converted[key]) for key in loaded_keys)


def test_explicit_checkpoint_and_path_recognition(zoo, tmp_path):
    name = zoo("swin")
    other = write_model_folder(tmp_path / "elsewhere", "swin")
    loaded = load_model(name, device="cpu", checkpoint=other / "pytorch_model.bin")
    assert loaded.spec.source == str(other / "pytorch_model.bin")
    family = FAMILIES["medclip"]
    resnet = write_model_folder(tmp_path / "resnet", "resnet")
    assert family.recognises(other) and family.recognises(resnet / "pytorch_model.bin")
    assert family.resolve(other, checkpoint=None, entry=None).config == MedclipConfig(vision="swin")
    assert family.resolve(resnet, checkpoint=None, entry=None).config == MedclipConfig(vision="resnet")
    torch.save({"visual.proj": torch.zeros(2)}, tmp_path / "other.bin")
    assert not family.recognises(tmp_path / "other.bin") and not family.recognises(tmp_path / "zoo")


@pytest.mark.parametrize("vision", ["resnet", "swin"])
def test_dropped_and_surplus_keys_are_named(zoo, vision):
    state = golden_state(vision)
    state.pop("text_model.projection_head.weight")
    state["vision_model.extra.weight"] = torch.zeros(3)
    with pytest.raises(ModelLoadError) as error:
        load_model(zoo(vision, state=state), device="cpu")
    assert "text_model.projection_head.weight" in str(error.value) and "vision_model.extra.weight" in str(error.value)


def _encode(loaded, tokens: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.nn.functional.normalize(loaded.model.encode_text(tokens), dim=-1)


@pytest.mark.parametrize("vision", ["resnet", "swin"])
def test_outputs_equal_upstream_in_upstream_mode(zoo, vision):
    loaded = load_model(zoo(vision), device="cpu")
    pixels = torch.from_numpy(OUTPUTS["pixels"])
    with torch.no_grad():
        image = torch.nn.functional.normalize(loaded.model.encode_image(pixels), dim=-1)
        three = torch.nn.functional.normalize(loaded.model.encode_image(pixels.expand(-1, 3, -1, -1)), dim=-1)
    assert torch.allclose(image, torch.from_numpy(OUTPUTS[f"{vision}_image"]), atol=1e-5, rtol=0)
    assert torch.equal(image, three)
    for batch in ("a", "b"):
        tokens = loaded.tokenizer(SETTINGS[f"texts_{batch}"])
        expected_ids = torch.from_numpy(OUTPUTS[f"input_ids_{batch}"])
        assert tokens.shape[1] == 77 and torch.equal(tokens[:, : expected_ids.shape[1]], expected_ids)
        assert not tokens[:, expected_ids.shape[1] :].any()  # the rest is [PAD] (id 0)
        text = _encode(loaded, tokens)
        assert torch.allclose(text, torch.from_numpy(OUTPUTS[f"{vision}_text_{batch}"]), atol=1e-5, rtol=0)
    text = _encode(loaded, loaded.tokenizer(SETTINGS["texts_a"]))
    assert loaded.zero_shot_scale == pytest.approx(CLAMPED) and loaded.logit_scale == pytest.approx(math.exp(4.9))
    logits = loaded.zero_shot_scale * image @ text.T
    assert torch.allclose(logits, torch.from_numpy(OUTPUTS[f"{vision}_logits"]), atol=1e-4, rtol=1e-6)


def test_default_masked_pooling_is_batch_independent(zoo):
    name = zoo("swin", pooling="masked")
    loaded = load_model(name, device="cpu")
    short, long = SETTINGS["texts_a"][3], SETTINGS["texts_b"][0]
    alone = _encode(loaded, loaded.tokenizer([short]))
    beside_long = _encode(loaded, loaded.tokenizer([short, long]))[:1]
    assert torch.allclose(alone, beside_long, atol=1e-6)
    upstream = load_model(zoo("swin", pooling="upstream"), device="cpu")
    assert torch.allclose(_encode(upstream, upstream.tokenizer([short])), alone, atol=1e-6)  # no padding: same
    padded = _encode(upstream, upstream.tokenizer([short, long]))[:1]
    assert not torch.allclose(padded, alone, atol=1e-3)  # upstream's unmasked mean counts the padding


def test_tokenizer_lower_cases_and_truncates(zoo):
    loaded = load_model(zoo("resnet"), device="cpu")
    upper, lower = loaded.tokenizer(["Pleural EFFUSION", "pleural effusion"])
    assert torch.equal(upper, lower) and int(upper[0]) == 101  # [CLS] of the BERT-cased vocabulary
    long = loaded.tokenizer([SETTINGS["texts_b"][0]])[0]
    assert long.shape == (77,) and int(long[-1]) == 102  # truncated to 77 tokens, ending in [SEP]


def _golden_images(shared_data: Path) -> dict[str, MedicalImage]:
    small = np.load(shared_data / "medmnist" / "pneumoniamnist.npz")["test_images"][0]
    return {"xray": read_image(shared_data / SETTINGS["images"]["xray"]),
            "small": MedicalImage(small.astype(np.float32), "pneumoniamnist-test-0", meta={"bit_depth": 8})}


@pytest.mark.realdata
def test_preprocessing_equals_upstream_on_real_images(shared_data):
    from openmedclip.models.families.medclip.preprocess import MedclipPreprocess

    expected = np.load(GOLDEN / "preprocess.npz")
    preprocess = MedclipPreprocess()
    for key, image in _golden_images(shared_data).items():
        ours = preprocess(image)
        assert ours.shape == (3, 224, 224)
        assert torch.equal(ours[0], ours[2])
        assert np.abs(ours[0].numpy() - expected[key][0]).max() <= 1e-6, key


@pytest.mark.realdata
def test_geometry_follows_the_square_canvas(shared_data):
    from openmedclip.models.families.medclip.preprocess import MedclipPreprocess

    preprocess = MedclipPreprocess()
    xray = preprocess.geometry((885, 1036))  # pasted 75 rows down on a 1036 canvas, then scaled by 224/1036
    assert xray.resized_size == (191, 224) and xray.offset == (-16, 0)
    assert xray.to_source(111.5, 111.5) == pytest.approx((442, 517.5), abs=3)
    small = preprocess.geometry((28, 28))  # centred on a 224 canvas, not enlarged
    assert small.resized_size == (28, 28) and small.offset == (-98, -98)
    assert small.to_source(98, 98) == pytest.approx((0, 0))
    pixels = preprocess(_golden_images(shared_data)["small"])[0]
    background = (0 - 0.5862785803043838) / 0.27950088968644304
    assert torch.allclose(pixels[:98], torch.tensor(background)) and not torch.allclose(pixels[98:126, 98:126],
                                                                                         torch.tensor(background))


def test_crafted_pickle_is_refused_and_never_runs(zoo, tmp_path):
    marker = tmp_path / "marker"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    state = {**golden_state("swin"), "payload": Payload()}
    with pytest.raises(ModelLoadError, match="refused to unpickle.*(posix|os).system"):
        load_model(zoo("swin", state=state), device="cpu")
    assert not marker.exists()


def test_missing_model_says_what_where_from_and_where_to(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENMEDCLIP_MODELS", str(tmp_path))
    with pytest.raises(ModelLoadError) as error:
        load_model("medclip/resnet50", device="cpu")
    message = str(error.value)
    assert "pytorch_model.bin" in message and "storage.googleapis.com/pytrial/medclip-pretrained.zip" in message
    assert f"$OPENMEDCLIP_MODELS/medclip/resnet50/ (OPENMEDCLIP_MODELS is {tmp_path})" in message
    assert "huggingface.co/emilyalsentzer/Bio_ClinicalBERT" in message
    (tmp_path / "medclip" / "swin-tiny").mkdir(parents=True)
    with pytest.raises(ModelLoadError, match="has no pytorch_model.bin.*medclip-vit-pretrained.zip"):
        load_model("medclip/swin-tiny", device="cpu")


def test_registry_entries():
    entries = registry()
    for name, vision in (("medclip/resnet50", "resnet"), ("medclip/swin-tiny", "swin")):
        entry = entries[name]
        assert entry.family == "medclip" and entry.config == MedclipConfig(vision=vision)  # type: ignore[arg-type]
        assert entry.prompts == "chexpert_attributes" and entry.needs == ("emilyalsentzer/Bio_ClinicalBERT",)
        assert entry.licence.startswith("unclear") and entry.download_url.endswith(".zip") and not entry.hf_repo
    assert entries["medclip/resnet50"].config.text_pooling == "masked"


def test_chexpert_bank_holds_every_attribute_combination():
    bank = load_bank("chexpert_attributes")
    sizes = {"Atelectasis": 3 * 7 * 10, "Cardiomegaly": 15, "Consolidation": 4 * 6 * 8, "Edema": 6 * 3,
             "Pleural Effusion": 6 * 3 * 2}  # Pleural Effusion's table repeats one subtype
    assert {name: len(sentences) for name, sentences in bank.classes.items()} == sizes
    assert "mild subsegmental atelectasis at the lung bases" in bank.sentences("Atelectasis")
    assert "small left bilateral pleural effusion" in bank.sentences("Pleural Effusion")
    assert bank.sentences("Cardiomegaly")[1] == "cardiomegaly which is unchanged"


def test_zero_shot_with_the_bank_end_to_end(zoo):
    loaded = load_model(zoo("resnet", pooling="masked"), device="cpu")
    rng = np.random.default_rng(3)
    images = [MedicalImage(rng.uniform(0, 255, (70, 90)).astype(np.float32), f"x{i}", meta={"bit_depth": 8})
              for i in range(3)]
    labels = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]
    result = zero_shot(loaded, images, labels, bank="chexpert_attributes", num_workers=0)
    assert result.bank == "chexpert_attributes" and result.probabilities.shape == (3, 5)
    assert len(result.prompts["Atelectasis"]) == 210
    classifier = text_classifier(loaded, load_bank("chexpert_attributes").classes)
    features = encode_images(loaded, images, num_workers=0).features
    expected = torch.softmax(CLAMPED * features @ classifier.T, dim=-1).numpy()
    assert np.allclose(result.probabilities, expected, atol=1e-5)
    assert encode_texts(loaded, ["edema"]).shape == (1, SETTINGS["embed_dim"])
    by_default = zero_shot(loaded, images, labels, num_workers=0)  # the entry recommends the bank
    assert by_default.bank == "chexpert_attributes" and np.allclose(by_default.probabilities, result.probabilities)
    unknown = zero_shot(loaded, images, ["normal", "pneumonia"], num_workers=0)  # labels the bank does not know
    assert unknown.bank != "chexpert_attributes"


def test_family_never_moves_to_cuda(monkeypatch, zoo):
    def refuse(*args, **kwargs):
        raise AssertionError("moved to CUDA")

    monkeypatch.setattr(torch.Tensor, "cuda", refuse)
    monkeypatch.setattr(torch.nn.Module, "cuda", refuse)
    loaded = load_model(zoo("swin"), device="cpu")
    assert isinstance(loaded.family, MedclipFamily)
    assert encode_texts(loaded, ["pulmonary edema"]).shape == (1, SETTINGS["embed_dim"])


@pytest.mark.parametrize("vision", ["resnet", "swin"])
def test_a_saved_model_folder_loads_without_the_published_files(zoo, vision, tmp_path):
    loaded = load_model(zoo(vision), device="cpu")
    folder = save_model(loaded, tmp_path / "fine-tuned")
    shutil.rmtree(tmp_path / "zoo")
    again = load_model(folder, device="cpu")
    assert again.spec.family == "medclip" and again.spec.format == "openmedclip-folder"
    assert_same_outputs(loaded, again)
