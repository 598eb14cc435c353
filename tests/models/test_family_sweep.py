"""Every registered model family, at tiny size: build, strict load, encode, normalised and deterministic features,
patch features where offered, and the preprocess geometry against the real transform."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from openmedclip.embed import encode_images, encode_texts
from openmedclip.errors import ModelLoadError
from openmedclip.io import MedicalImage
from openmedclip.models.families import load_builtin_families
from openmedclip.models.family import FAMILIES, ModelFamily
from openmedclip.models.loaded import LoadedModel, ModelSpec

load_builtin_families()
EXAMPLES = [(family, example) for family in FAMILIES.values() for example in family.examples()]


def test_every_family_has_examples():
    assert FAMILIES and all(family.examples() for family in FAMILIES.values())


def _loaded(family: ModelFamily, resolved, seed: int = 0) -> LoadedModel:
    torch.manual_seed(seed)
    model = family.build(resolved, name=resolved.architecture).eval()
    preprocess, config = family.preprocess(resolved, model)
    tokenizer, context_length = family.tokenizer(resolved, name=resolved.architecture)
    spec = ModelSpec(resolved.architecture, family.name, resolved.architecture, "random", resolved.format, config)
    return LoadedModel(model, preprocess, tokenizer, context_length, spec, torch.device("cpu"), torch.float32)


def _images() -> list[MedicalImage]:
    rng = np.random.default_rng(0)
    grey = MedicalImage(rng.uniform(0, 255, (40, 52)).astype(np.float32), "grey", meta={"bit_depth": 8})
    rgb = MedicalImage(rng.uniform(0, 255, (30, 30, 3)).astype(np.float32), "rgb", photometric="RGB",
                       meta={"bit_depth": 8})
    return [grey, rgb]


@pytest.mark.parametrize(("family", "example"), EXAMPLES, ids=lambda x: getattr(x, "architecture", ""))
def test_build_strict_load_encode(family, example, tmp_path):
    source = _loaded(family, example, seed=1)
    weights = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in source.model.state_dict().items()}, str(weights))
    resolved = dataclasses.replace(example, weights=weights)

    target = _loaded(family, resolved, seed=2)
    family.load_weights(target.model, resolved, name="sweep")
    for key, value in source.model.state_dict().items():
        assert torch.equal(target.model.state_dict()[key], value), key

    images, texts = _images(), ["a chest x-ray", "a head ct"]
    first = encode_images(target, images, num_workers=0)
    again = encode_images(target, images, num_workers=0)
    text_features = encode_texts(target, texts)
    assert first.errors == [] and first.features.shape == (2, text_features.shape[1])
    assert torch.equal(first.features, again.features)
    assert torch.allclose(first.features.norm(dim=1), torch.ones(2), atol=1e-5)
    assert torch.allclose(text_features.norm(dim=1), torch.ones(2), atol=1e-5)


@pytest.mark.parametrize(("family", "example"), EXAMPLES[:1], ids=lambda x: getattr(x, "architecture", ""))
def test_strict_load_names_every_unmatched_key(family, example, tmp_path):
    model = family.build(example, name="x")
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    dropped = next(key for key in state if key not in family.tolerated_keys)  # a tolerated key may be absent
    state.pop(dropped)
    state["surplus.weight"] = torch.zeros(1)
    save_file(state, str(tmp_path / "w.safetensors"))
    with pytest.raises(ModelLoadError) as error:
        family.load_weights(model, dataclasses.replace(example, weights=tmp_path / "w.safetensors"), name="x")
    assert dropped in str(error.value) and "surplus.weight" in str(error.value)


@pytest.mark.parametrize(("family", "example"), EXAMPLES, ids=lambda x: getattr(x, "architecture", ""))
def test_patch_features_share_the_joint_space(family, example):
    loaded = _loaded(family, example)
    pixels = torch.stack([loaded.preprocess(image) for image in _images()])
    with torch.no_grad():
        patches = family.patch_features(loaded.model, pixels)
        pooled = loaded.model.encode_image(pixels)
    assert patches.ndim == 4 and patches.shape[0] == 2 and patches.shape[-1] == pooled.shape[-1]
    assert patches.shape[1] >= 2 and patches.shape[2] >= 2
    if "cnn" in example.architecture:  # average pooling then a linear projection: the mean of the patches
        assert torch.allclose(patches.mean(dim=(1, 2)), pooled, atol=1e-5)


@pytest.mark.parametrize(("family", "example"), EXAMPLES, ids=lambda x: getattr(x, "architecture", ""))
def test_every_family_draws_a_heat_map_in_source_pixels(family, example):
    from openmedclip.tasks.heatmap import similarity_map

    loaded = _loaded(family, example)
    for image in _images():
        result = similarity_map(loaded, image, "pleural effusion")
        assert result.values.shape == image.pixels.shape[:2]
        assert result.grid.ndim == 2 and result.grid.shape[0] >= 2 and np.all(np.abs(result.grid) <= 1 + 1e-5)
        shown = result.values[np.isfinite(result.values)]
        assert shown.size and result.grid.min() - 1e-5 <= shown.min() and shown.max() <= result.grid.max() + 1e-5


@pytest.mark.parametrize("source_size", [(40, 100), (100, 40), (64, 64), (33, 47)])
@pytest.mark.parametrize("resize_mode", ["shortest", "squash", "longest"])
def test_geometry_maps_model_pixels_onto_the_source(source_size, resize_mode):
    """A vertical and a horizontal edge in the source land where the geometry says, through open_clip's transform."""
    family = FAMILIES["open_clip"]
    example = family.examples()[0]
    example = dataclasses.replace(example, config=dataclasses.replace(example.config, preprocess_cfg={
        "resize_mode": resize_mode, "mean": [0, 0, 0], "std": [1, 1, 1], "interpolation": "bilinear",
        "fill_color": 0}))
    loaded = _loaded(family, example)
    geometry = loaded.preprocess.geometry(source_size)
    for axis in (0, 1):
        pixels = np.zeros(source_size, dtype=np.float32) + 60
        edge = source_size[axis] // 2
        index = [slice(None), slice(None)]
        index[axis] = slice(edge, None)
        pixels[tuple(index)] = 250
        model_input = loaded.preprocess(MedicalImage(pixels, "edge", meta={"bit_depth": 8}))[0].numpy()
        profile = model_input.mean(axis=1 - axis)
        inside = profile > 0.1  # padding is 0, the image is >= 60/255
        positions = np.flatnonzero(inside)
        crossing = positions[np.argmax(profile[positions] > (60 + 250) / 2 / 255)]
        mapped = geometry.to_source(crossing, 0)[0] if axis == 0 else geometry.to_source(0, crossing)[1]
        scale = source_size[axis] / geometry.resized_size[axis]
        assert abs(mapped - edge) <= 1.5 * scale + 1, (axis, mapped, edge)


@pytest.mark.parametrize(("family", "example"), EXAMPLES, ids=lambda x: getattr(x, "architecture", ""))
def test_a_saved_model_loads_back_with_the_same_outputs(family, example, tmp_path):
    """What fine-tuning writes (``save_model``) is read back by ``load_model(folder)`` in the same family."""
    from openmedclip.models import load_model, save_model

    loaded = _loaded(family, example, seed=3)
    folder = save_model(loaded, tmp_path / "saved")
    again = load_model(folder, device="cpu")
    assert again.spec.family == family.name
    images, texts = _images(), ["a chest x-ray", "a head ct"]
    assert torch.equal(encode_images(again, images, num_workers=0).features,
                       encode_images(loaded, images, num_workers=0).features)
    assert torch.equal(encode_texts(again, texts), encode_texts(loaded, texts))


@pytest.mark.parametrize(("family", "example"), EXAMPLES, ids=lambda x: getattr(x, "architecture", ""))
def test_a_fine_tuning_step_trains_both_towers_and_the_result_saves(family, example, tmp_path):
    from openmedclip.models import load_model, save_model
    from openmedclip.train.losses import build_loss
    from openmedclip.train.step import DualEncoder
    from openmedclip.train.towers import prepare_model

    loaded, text_encoder = prepare_model(_loaded(family, example, seed=4))
    encoder, loss_fn = DualEncoder(loaded.model, text_encoder), build_loss("infonce", gather=False)
    images, texts = _images(), ["a chest x-ray", "a head ct"]
    pixels = torch.stack([loaded.preprocess(image) for image in images])
    tokens = loaded.tokenizer(texts)

    def towers() -> tuple[torch.Tensor, torch.Tensor]:
        loaded.model.eval()
        with torch.no_grad():
            outputs = loaded.model.encode_image(pixels), loaded.model.encode_text(tokens)
        loaded.model.train()
        return outputs

    image_before, text_before = towers()
    optimizer = torch.optim.SGD([p for p in loaded.model.parameters() if p.requires_grad], lr=0.1)
    loss = loss_fn(*encoder(pixels, tokens))
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    image_after, text_after = towers()
    assert not torch.allclose(image_after, image_before) and not torch.allclose(text_after, text_before)
    loaded.model.eval()
    again = load_model(save_model(loaded, tmp_path / "step-1"), device="cpu")
    assert torch.equal(encode_images(again, images, num_workers=0).features,
                       encode_images(loaded, images, num_workers=0).features)
