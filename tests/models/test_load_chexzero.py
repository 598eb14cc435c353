"""CheXzero: a plain, partly-fp16 state dict of OpenAI's layout, its own CXR preprocessing, and temperature-free
pair scoring."""

from __future__ import annotations

import dataclasses

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image
from torchvision import transforms

from openmedclip import zero_shot
from openmedclip.embed import encode_images, encode_texts
from openmedclip.errors import ModelLoadError
from openmedclip.io import MedicalImage
from openmedclip.models import load_model, save_model
from openmedclip.models.families.open_clip.config import OpenClipEntry
from openmedclip.models.registry import REGISTRY, registry
from tiny_models import tiny_openclip_config


def _reference_preprocess(picture: Image.Image, size: int) -> torch.Tensor:
    """CheXzero's steps as its README and code describe them, with PIL and torchvision."""
    ratio = 320 / max(picture.size)
    small = picture.resize(tuple(max(1, round(side * ratio)) for side in picture.size), Image.LANCZOS)
    canvas = Image.new("L", (320, 320))
    canvas.paste(small, ((320 - small.size[0]) // 2, (320 - small.size[1]) // 2))
    tensor = torch.from_numpy(np.array(canvas, dtype=np.float32)).repeat(3, 1, 1)
    tensor = transforms.Normalize((101.48761,) * 3, (83.43944,) * 3)(tensor)
    return transforms.Resize(size, interpolation=transforms.InterpolationMode.BICUBIC, antialias=True)(tensor)


@pytest.fixture()
def chexzero(tiny_arch, tmp_path, monkeypatch):
    """The `chexzero` entry on the tiny architecture, its checkpoint a plain partly-fp16 state dict."""
    registry()
    settings = OpenClipEntry(architecture=tiny_arch, model_overrides={"quick_gelu": True})
    entry = dataclasses.replace(registry()["chexzero"], config=settings)
    monkeypatch.setitem(REGISTRY, "chexzero", entry)
    torch.manual_seed(4)
    model = open_clip.model.CLIP(**tiny_openclip_config()["model_cfg"], quick_gelu=True).eval()
    state = {key: value.half() if key.endswith("proj") else value for key, value in model.state_dict().items()}
    folder = tmp_path / "zoo" / "chexzero"
    folder.mkdir(parents=True)
    torch.save(state, folder / "best_64_5e-05_original_22000_0.864.pt")
    monkeypatch.setenv("OPENMEDCLIP_MODELS", str(tmp_path / "zoo"))
    return model


@pytest.mark.parametrize("size", [(300, 200), (120, 400), (256, 256)])
def test_preprocessing_follows_chexzero(chexzero, size):
    loaded = load_model("chexzero", device="cpu")
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, size[::-1], dtype=np.uint8)
    image = MedicalImage(grey.astype(np.float32), "cxr", meta={"bit_depth": 8})
    ours = loaded.preprocess(image)
    reference = _reference_preprocess(Image.fromarray(grey).convert("RGB"), 32)
    assert ours.shape == (3, 32, 32) and torch.allclose(ours, reference, atol=1e-4)
    published = type(loaded.preprocess)()(image)  # the published model's 224 px input
    assert published.shape == (3, 224, 224)
    assert torch.allclose(published, _reference_preprocess(Image.fromarray(grey).convert("RGB"), 224), atol=1e-4)


def test_strict_load_of_the_plain_state_dict(chexzero):
    loaded = load_model("chexzero", device="cpu")
    assert loaded.spec.family == "chexzero" and loaded.spec.config.model_cfg["quick_gelu"] is True
    for key, value in chexzero.state_dict().items():
        expected = value.half().float() if key.endswith("proj") else value
        assert torch.equal(loaded.model.state_dict()[key], expected), key


def test_pairs_are_scored_by_cosine_without_temperature(chexzero):
    loaded = load_model("chexzero", device="cpu")
    assert loaded.zero_shot_scale == 1.0 and loaded.logit_scale != pytest.approx(1.0)
    rng = np.random.default_rng(1)
    images = [MedicalImage(rng.uniform(0, 255, (64, 80)).astype(np.float32), f"x{i}", meta={"bit_depth": 8})
              for i in range(3)]
    result = zero_shot(loaded, images, ["Pleural Effusion"], multilabel=True, num_workers=0)
    features = encode_images(loaded, images, num_workers=0).features
    positive, negative = encode_texts(loaded, ["pleural effusion", "no pleural effusion"])
    expected = torch.sigmoid(features @ positive - features @ negative).numpy()
    assert np.allclose(result.probabilities[:, 0], expected, atol=1e-6)


def test_missing_checkpoint_says_where_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENMEDCLIP_MODELS", str(tmp_path))
    with pytest.raises(ModelLoadError) as error:
        load_model("chexzero", device="cpu")
    assert "github.com/rajpurkarlab/CheXzero" in str(error.value) and "hf download" not in str(error.value)


def test_a_saved_chexzero_model_keeps_its_preprocessing_and_scoring(chexzero, tmp_path):
    loaded = load_model("chexzero", device="cpu")
    folder = save_model(loaded, tmp_path / "fine-tuned")
    assert not (folder / "open_clip_config.json").exists()  # the hub format cannot record its preprocessing
    again = load_model(folder, device="cpu")
    assert again.spec.family == "chexzero" and type(again.preprocess) is type(loaded.preprocess)
    assert again.zero_shot_scale == 1.0
    images = _cxrs(2)
    assert torch.equal(encode_images(again, images, num_workers=0).features,
                       encode_images(loaded, images, num_workers=0).features)


def test_an_ensemble_is_not_saved_as_one_folder(chexzero_ensemble, tmp_path):
    with pytest.raises(ModelLoadError, match="save one member"):
        save_model(load_model("chexzero", device="cpu"), tmp_path / "out")


@pytest.fixture()
def chexzero_ensemble(chexzero, tmp_path):
    """The `chexzero` folder holding three checkpoints of different weights (CheXzero publishes ten)."""
    folder = tmp_path / "zoo" / "chexzero"
    for seed in (5, 6):
        torch.manual_seed(seed)
        member = open_clip.model.CLIP(**tiny_openclip_config()["model_cfg"], quick_gelu=True)
        torch.save(member.state_dict(), folder / f"best_{seed}.pt")
    return sorted(folder.iterdir())


def _cxrs(n: int) -> list[MedicalImage]:
    rng = np.random.default_rng(2)
    return [MedicalImage(rng.uniform(0, 255, (70, 60)).astype(np.float32), f"cxr{i}", meta={"bit_depth": 8})
            for i in range(n)]


@pytest.mark.parametrize("multilabel", [True, False])
def test_a_folder_of_checkpoints_averages_the_members_probabilities(chexzero_ensemble, multilabel):
    ensemble = load_model("chexzero", device="cpu")
    assert ensemble.spec.format == "chexzero-ensemble" and ensemble.ensemble_size == 3
    labels = ["Pleural Effusion", "Cardiomegaly"] if multilabel else ["effusion", "edema", "normal lungs"]
    images = _cxrs(4)
    averaged = zero_shot(ensemble, images, labels, multilabel=multilabel, num_workers=0).probabilities
    members = [zero_shot(load_model("chexzero", device="cpu", checkpoint=path), images, labels,
                         multilabel=multilabel, num_workers=0).probabilities for path in chexzero_ensemble]
    assert np.allclose(averaged, np.mean(members, axis=0), atol=1e-6)
    assert not np.allclose(members[0], members[1], atol=1e-3)  # the members differ, so the average means something


def test_ensemble_features_give_the_members_mean_cosine(chexzero_ensemble):
    ensemble = load_model("chexzero", device="cpu", checkpoint=chexzero_ensemble[0].parent)
    images, texts = _cxrs(2), ["pleural effusion", "no pleural effusion", "cardiomegaly"]
    joined = encode_images(ensemble, images, num_workers=0).features @ encode_texts(ensemble, texts).T
    cosines = []
    for path in chexzero_ensemble:
        member = load_model("chexzero", device="cpu", checkpoint=path)
        cosines.append(encode_images(member, images, num_workers=0).features @ encode_texts(member, texts).T)
    assert torch.allclose(joined, torch.stack(cosines).mean(dim=0), atol=1e-6)


def test_one_bad_member_is_named(chexzero_ensemble):
    state = torch.load(chexzero_ensemble[1], weights_only=True)
    state.pop("text_projection")
    torch.save(state, chexzero_ensemble[1])
    with pytest.raises(ModelLoadError, match=r"best_6\.pt.*text_projection"):
        load_model("chexzero", device="cpu")


def test_zero_shot_uses_the_models_recommended_prompts_unless_told_otherwise(chexzero):
    loaded = load_model("chexzero", device="cpu")
    images = _cxrs(1)
    recommended = zero_shot(loaded, images, ["effusion", "edema"], num_workers=0)
    assert recommended.prompts == {"effusion": ["effusion"], "edema": ["edema"]}  # CheXzero's bare phrases
    chosen = zero_shot(loaded, images, ["effusion", "edema"], templates="chest_xray", num_workers=0)
    assert chosen.prompts["edema"][0] == "a chest X-ray showing edema."
