"""The encoding engine against the model's own forward pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from openmedclip.embed import encode_images, encode_texts
from openmedclip.errors import InvalidInputError
from openmedclip.models import load_model


def _reference_image_features(loaded, paths) -> torch.Tensor:
    pixels = torch.stack([loaded.preprocess(Image.open(p).convert("RGB")) for p in paths])
    with torch.no_grad():
        return F.normalize(loaded.model.encode_image(pixels).float(), dim=-1)


def test_image_features_match_direct_forward_and_are_normalised(tiny_model, image_folder):
    paths = sorted(image_folder.rglob("*.png"))
    encoded = encode_images(tiny_model, paths, batch_size=4, num_workers=0)
    assert encoded.features.dtype == torch.float32
    assert encoded.indices == list(range(len(paths)))
    assert torch.allclose(encoded.features.norm(dim=-1), torch.ones(len(paths)), atol=1e-5)
    assert torch.allclose(encoded.features, _reference_image_features(tiny_model, paths), atol=1e-5)


def test_loader_workers_give_the_same_features(tiny_model, image_folder):
    paths = sorted(image_folder.rglob("*.png"))
    serial = encode_images(tiny_model, paths, batch_size=2, num_workers=0)
    parallel = encode_images(tiny_model, paths, batch_size=2, num_workers=2)
    assert parallel.indices == serial.indices
    assert torch.allclose(parallel.features, serial.features, atol=1e-6)


def test_bad_items_are_reported_and_skipped_without_losing_good_ones(tiny_model, image_folder):
    good = sorted(image_folder.rglob("*.png"))
    empty = image_folder / "empty.png"
    empty.write_bytes(b"")
    corrupt = image_folder / "corrupt.png"
    corrupt.write_bytes(good[0].read_bytes()[:60])
    items = [good[0], empty, good[1], image_folder / "missing.png", corrupt, good[2]]
    encoded = encode_images(tiny_model, items, batch_size=2, num_workers=0)
    assert encoded.indices == [0, 2, 5]
    assert [e.index for e in encoded.errors] == [1, 3, 4]
    assert all(e.item in e.message or e.item.endswith(".png") for e in encoded.errors)
    assert str(empty) in {e.item for e in encoded.errors}
    assert torch.allclose(encoded.features, _reference_image_features(tiny_model, good[:3]), atol=1e-5)


def test_a_custom_encode_function_gets_the_same_batching_and_skipping(tiny_model, image_folder):
    good = sorted(image_folder.rglob("*.png"))[:3]
    missing = image_folder / "missing.png"
    patches = encode_images(tiny_model, [good[0], missing, good[1], good[2]], batch_size=2, num_workers=0,
                            encode=lambda pixels: tiny_model.family.patch_features(tiny_model.model, pixels))
    assert patches.indices == [0, 2, 3] and [e.index for e in patches.errors] == [1]
    pixels = torch.stack([tiny_model.preprocess(Image.open(p).convert("RGB")) for p in good])
    with torch.no_grad():
        expected = tiny_model.family.patch_features(tiny_model.model, pixels)
    assert patches.features.shape == expected.shape and torch.allclose(patches.features, expected, atol=1e-5)


def test_folders_stand_for_their_images(tiny_model, image_folder, tmp_path):
    (tmp_path / "empty").mkdir()
    encoded = encode_images(tiny_model, [image_folder / "sub", tmp_path / "empty"], num_workers=0)
    assert encoded.items == [str(image_folder / "sub" / f"img{i}.png") for i in (1, 3, 5)]
    assert [(e.index, e.item) for e in encoded.errors] == [(3, str(tmp_path / "empty"))]
    assert encoded.errors[0].message.startswith("folder holds no images")


def test_pil_images_are_accepted(tiny_model):
    image = Image.fromarray(np.arange(900, dtype=np.uint8).reshape(30, 30))  # greyscale: converted to RGB
    encoded = encode_images(tiny_model, [image])
    assert encoded.features.shape == (1, tiny_model.model.text_projection.shape[1])


def test_text_features_match_direct_forward(tiny_model):
    texts = ["chest x-ray", "no pneumothorax", "axial CT of the abdomen"]
    features = encode_texts(tiny_model, texts, batch_size=2)
    with torch.no_grad():
        expected = F.normalize(tiny_model.model.encode_text(tiny_model.tokenizer(texts)).float(), dim=-1)
    assert torch.allclose(features, expected, atol=1e-5)
    with pytest.raises(InvalidInputError):
        encode_texts(tiny_model, [])


def test_bf16_weights_give_close_features(tiny_model_dir, image_folder):
    paths = sorted(image_folder.rglob("*.png"))
    fp32 = encode_images(load_model(tiny_model_dir, device="cpu"), paths, num_workers=0)
    bf16_model = load_model(tiny_model_dir, device="cpu", precision="bf16")
    assert next(bf16_model.model.parameters()).dtype == torch.bfloat16
    bf16 = encode_images(bf16_model, paths, num_workers=0)
    assert bf16.features.dtype == torch.float32
    cosine = (fp32.features * bf16.features).sum(dim=-1)
    assert cosine.min() > 0.98


class _Buggy:
    """A preprocess with a programming error."""

    def __init__(self, preprocess):
        self.preprocess = preprocess

    def __call__(self, image):
        scale = 1 / (len(image.path) * 0)  # ZeroDivisionError
        return self.preprocess(image) * scale


@pytest.mark.parametrize("workers", [0, 1])
def test_programming_errors_propagate_instead_of_becoming_skipped_items(tiny_model, image_folder, workers):
    import dataclasses

    buggy = dataclasses.replace(tiny_model, preprocess=_Buggy(tiny_model.preprocess))
    paths = sorted(image_folder.rglob("*.png"))
    with pytest.raises(ZeroDivisionError):
        encode_images(buggy, paths, batch_size=2, num_workers=workers)


def test_medical_images_pil_images_and_source_rows_give_the_same_features(tiny_model, image_folder):
    from openmedclip.data import ClassFolders
    from openmedclip.io import read_image

    paths = sorted(image_folder.rglob("*.png"))
    by_path = encode_images(tiny_model, paths, num_workers=0)
    by_image = encode_images(tiny_model, [read_image(p) for p in paths], num_workers=0)
    by_pil = encode_images(tiny_model, [Image.open(p) for p in paths], num_workers=0)
    assert torch.equal(by_path.features, by_image.features)
    assert torch.allclose(by_path.features, by_pil.features, atol=1e-6)
    (image_folder / "cls").mkdir()
    for path in paths[:3]:
        path.rename(image_folder / "cls" / path.name)
    source = ClassFolders(image_folder)
    rows = encode_images(tiny_model, source, rows=[2, 0], num_workers=0)
    assert rows.indices == [0, 1] and rows.items == [source.keys[2], source.keys[0]]
    direct = encode_images(tiny_model, [source.paths[2], source.paths[0]], num_workers=0)
    assert torch.equal(rows.features, direct.features)


def test_wrong_shaped_or_non_finite_images_are_input_errors(tiny_model):
    from openmedclip.io import MedicalImage

    good = MedicalImage(np.arange(400, dtype=np.float32).reshape(20, 20), "good", meta={"bit_depth": 8})
    cube = MedicalImage(np.zeros((4, 20, 20), np.float32), "cube")
    nan = MedicalImage(np.full((20, 20), np.nan, np.float32), "nan")
    tiny = MedicalImage(np.arange(12, dtype=np.float32).reshape(3, 4), "tiny")
    flat = MedicalImage(np.full((20, 20), 100, np.float32), "flat")
    encoded = encode_images(tiny_model, [cube, good, nan, tiny, flat], num_workers=0)
    assert encoded.indices == [1]
    assert [(e.item, e.message) for e in encoded.errors[2:]] == [
        ("tiny", "image is too small (4x3 pixels; at least 16x16 needed)"),
        ("flat", "image is constant (every pixel is 100): nothing to classify"),
    ]
    assert [(e.item, "shape" in e.message or "NaN" in e.message) for e in encoded.errors[:2]] == [
        ("cube", True), ("nan", True)
    ]
