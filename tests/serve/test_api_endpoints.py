"""Every endpoint answers what the library says when called directly on the same file: zero-shot probabilities,
image and text embeddings, heat maps; for PNG, JPEG, DICOM and NIfTI uploads and for paths under the root."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import openmedclip
from openmedclip.embed import encode_images, encode_texts
from openmedclip.serve.session import PRESETS
from openmedclip.tasks.heatmap import similarity_map
from openmedclip.tasks.zeroshot import zero_shot

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CHEST = EXAMPLES / "chest_xray_normal.png"
MODEL = "openmedclip-base"


def _upload(path, name=None):
    return {"file": (name or path.name, path.read_bytes())}


def _assert_same_zero_shot(answer: dict, expected, labels) -> None:
    assert answer["labels"] == list(labels)
    got = np.array([answer["probabilities"][label] for label in labels])
    np.testing.assert_allclose(got, expected.probabilities[0], rtol=0, atol=1e-6)
    assert answer["prediction"] == expected.predictions()[0].labels
    assert answer["mode"] == expected.mode


def test_health_names_the_models_device_and_precision(client):
    answer = client.get("/health")
    assert answer.status_code == 200
    health = answer.json()
    assert health["status"] == "ok" and health["version"] == openmedclip.__version__
    assert health["default_model"] == MODEL and health["models"] == [MODEL] and health["loaded_models"] == [MODEL]
    assert (health["device"], health["precision"], health["index"]) == ("cpu", "fp32", None)


def test_models_and_presets(client, model):
    models = client.get("/models").json()
    assert models["default"] == MODEL
    assert models["models"] == [{"name": MODEL, "default": True, "loaded": True, "family": model.spec.family,
                                 "architecture": model.spec.architecture}]
    presets = client.get("/presets").json()["presets"]
    assert presets == [preset.to_dict() for preset in PRESETS.values()]


def test_zeroshot_upload_matches_the_library(client, model):
    answer = client.post("/zeroshot", files=_upload(CHEST), data={"labels": "normal, pneumonia"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["model"], body["image"]) == (MODEL, CHEST.name)
    _assert_same_zero_shot(body, zero_shot(model, [CHEST], ["normal", "pneumonia"]), ["normal", "pneumonia"])
    assert abs(sum(body["probabilities"].values()) - 1) < 1e-5


def test_zeroshot_repeated_labels_and_templates(client, model):
    labels = ["CT", "MRI", "X-ray"]
    templates = ["a {} scan.", "an image taken with {}."]
    answer = client.post("/zeroshot", files=_upload(EXAMPLES / "head_ct.jpg"),
                         data={"labels": ["CT", "MRI,X-ray"], "templates": templates})
    assert answer.status_code == 200, answer.text
    _assert_same_zero_shot(answer.json(), zero_shot(model, [EXAMPLES / "head_ct.jpg"], labels, templates=templates),
                           labels)


def test_zeroshot_multilabel_preset_matches_the_library(client, model):
    chosen = PRESETS["cxr_findings"]
    answer = client.post("/zeroshot", files=_upload(CHEST), data={"preset": "cxr_findings"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    expected = zero_shot(model, [CHEST], list(chosen.labels), bank=chosen.bank, multilabel=True)
    _assert_same_zero_shot(body, expected, chosen.labels)
    assert body["threshold"] == 0.5 and body["bank"] == chosen.bank


def test_zeroshot_path_under_the_root_answers_like_the_upload(client, served_root):
    by_path = client.post("/zeroshot", data={"path": "chest_xray_pneumonia.png", "labels": "normal,pneumonia"})
    by_upload = client.post("/zeroshot", files=_upload(served_root / "chest_xray_pneumonia.png"),
                            data={"labels": "normal,pneumonia"})
    assert by_path.status_code == by_upload.status_code == 200
    assert by_path.json()["probabilities"] == by_upload.json()["probabilities"]
    assert by_path.json()["image"] == "chest_xray_pneumonia.png"


def test_zeroshot_dicom_upload(client, model, served_root):
    ct = served_root / "scans" / "ct.dcm"
    labels = ["CT", "MRI", "X-ray"]
    answer = client.post("/zeroshot", files=_upload(ct, "scan.dcm"), data={"labels": labels, "window": "40,400"})
    assert answer.status_code == 200, answer.text
    expected = zero_shot(model, [ct], labels, read_options={"window": (40.0, 400.0)})
    _assert_same_zero_shot(answer.json(), expected, labels)


def test_zeroshot_nifti_upload_with_slice_options(client, model, served_root):
    volume = served_root / "scans" / "volume.nii.gz"
    options = {"frame": 1, "axis": "coronal", "slice_index": 40}
    answer = client.post("/zeroshot", files=_upload(volume, "upload"), data={"labels": "brain,lung", **options})
    assert answer.status_code == 200, answer.text
    expected = zero_shot(model, [volume], ["brain", "lung"], read_options=options)
    _assert_same_zero_shot(answer.json(), expected, ["brain", "lung"])
    other_slice = client.post("/zeroshot", files=_upload(volume, "upload"),
                              data={"labels": "brain,lung", **options, "slice_index": 5})
    assert other_slice.json()["probabilities"] != answer.json()["probabilities"]


@pytest.mark.realdata
@pytest.mark.parametrize("name", ["Fake_MONOHR1.dcm", "00000001_000.png"])
def test_zeroshot_real_chest_files(client, model, shared_data, name):
    path = shared_data / "txv_test_cxr" / name
    answer = client.post("/zeroshot", files=_upload(path), data={"preset": "tb"})
    assert answer.status_code == 200, answer.text
    _assert_same_zero_shot(answer.json(), zero_shot(model, [path], list(PRESETS["tb"].labels),
                                                    bank=PRESETS["tb"].bank), PRESETS["tb"].labels)


@pytest.mark.parametrize("name", ["chest_xray_normal.png", "head_ct.jpg", "scans/anatomical.nii"])
def test_embed_image_matches_encode_images(client, model, served_root, name):
    path = served_root / name
    answer = client.post("/embed/image", files=_upload(path))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    vector = np.array(body["vector"], dtype=np.float32)
    expected = encode_images(model, [path]).features[0].numpy()
    assert body["dim"] == expected.shape[0] == vector.shape[0]
    np.testing.assert_allclose(vector, expected, rtol=0, atol=1e-6)
    assert abs(np.linalg.norm(vector) - 1) < 1e-5


def test_embed_dicom_by_path(client, model, served_root):
    answer = client.post("/embed/image", data={"path": "scans/ct.dcm"})
    assert answer.status_code == 200, answer.text
    expected = encode_images(model, [served_root / "scans" / "ct.dcm"]).features[0].numpy()
    np.testing.assert_allclose(np.array(answer.json()["vector"]), expected, rtol=0, atol=1e-6)


def test_embed_text_matches_encode_texts(client, model):
    texts = ["a chest x-ray", "right pleural effusion", "an axial CT of the head with a bleed"]
    answer = client.post("/embed/text", json={"texts": texts})
    assert answer.status_code == 200, answer.text
    vectors = np.array(answer.json()["vectors"], dtype=np.float32)
    np.testing.assert_allclose(vectors, encode_texts(model, texts).numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert answer.json()["dim"] == vectors.shape[1]


def _cells(values: np.ndarray) -> list[list[float | None]]:
    return [[None if np.isnan(value) else float(value) for value in row] for row in values]


def test_heatmap_json_is_the_similarity_map(client, model):
    answer = client.post("/heatmap", files=_upload(CHEST), data={"text": "pleural effusion", "smooth": "1.0"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    expected = similarity_map(model, CHEST, "pleural effusion", smooth=1.0)
    assert body["source_size"] == body["size"] == list(expected.values.shape)  # 28 x 28: small enough as it is
    assert body["grid_size"] == list(expected.grid.shape)
    np.testing.assert_allclose(np.array(body["values"], dtype=np.float32), expected.values, rtol=0, atol=1e-6)
    row, column = expected.peak()
    assert (body["peak"]["row"], body["peak"]["column"]) == (row, column)
    assert body["peak"]["value"] == pytest.approx(float(expected.values[row, column]), abs=1e-6)


def test_large_heatmap_is_averaged_down_and_keeps_its_peak(client, model):
    image = EXAMPLES / "head_ct.jpg"  # 353 x 320 pixels
    answer = client.post("/heatmap", files=_upload(image), data={"text": "haemorrhage"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    expected = similarity_map(model, image, "haemorrhage")
    rows, columns = expected.values.shape
    assert body["source_size"] == [rows, columns] and body["size"] == [64, 58]
    row_edges, column_edges = np.arange(65) * rows // 64, np.arange(59) * columns // 58
    blocks = [[np.nanmean(expected.values[row_edges[i]:row_edges[i + 1], column_edges[j]:column_edges[j + 1]])
               for j in range(58)] for i in range(64)]
    np.testing.assert_allclose(np.array(body["values"], dtype=np.float32), np.array(blocks), rtol=0, atol=1e-5)
    assert (body["peak"]["row"], body["peak"]["column"]) == expected.peak()


def test_heatmap_png_draws_the_map_and_names_the_peak(client, model):
    answer = client.post("/heatmap", params={"format": "png"}, files=_upload(EXAMPLES / "head_ct.jpg"),
                         data={"text": "haemorrhage"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(answer.content)) as png:
        assert png.format == "PNG" and min(png.size) > 100
    row, column = similarity_map(model, EXAMPLES / "head_ct.jpg", "haemorrhage").peak()
    assert (int(answer.headers["x-peak-row"]), int(answer.headers["x-peak-column"])) == (row, column)


def test_search_without_an_index_is_404(client):
    answer = client.post("/search", data={"text": "pleural effusion"})
    assert answer.status_code == 404
    assert answer.json()["detail"] == "no index configured (start the service with --index)"
