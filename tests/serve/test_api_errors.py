"""Client mistakes get a 4xx naming the problem (never a 5xx); paths only inside the root; upload size limit (413),
request time limit (504), bounded waiting for a worker (503); unexpected failures a generic, logged 500."""

from __future__ import annotations

import gzip
import io
import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from openmedclip.serve.session import ModelPool

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CHEST = EXAMPLES / "chest_xray_normal.png"
MODEL = "openmedclip-base"
LABELS = {"labels": "normal,pneumonia"}


def _nan_tiff(_: Path) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.array([[0.0, np.nan], [1.0, 2.0]], dtype=np.float32))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "make", "problem"),
    [
        ("empty.png", lambda root: b"", "empty.png: file is empty (0 bytes)"),
        ("half.png", lambda root: CHEST.read_bytes()[:300], "half.png: cannot read image (corrupt, truncated"),
        ("notes.txt", lambda root: b"plain text, not an image", "notes.txt: unsupported image format"),
        ("fake.png", lambda root: b"\x89PNG\r\n\x1a\n" + bytes(100), "fake.png: cannot read image"),
        ("cut.dcm", lambda root: (root / "scans/ct.dcm").read_bytes()[:20000], "cut.dcm: cannot decode DICOM"),
        ("cut.nii.gz", lambda root: (root / "scans/volume.nii.gz").read_bytes()[:5000],
         "cut.nii.gz: corrupt or truncated gzip data"),
        ("cut.nii", lambda root: (root / "scans/anatomical.nii").read_bytes()[:2000],
         "cut.nii: NIfTI data is truncated"),
        ("nan.tif", _nan_tiff, "nan.tif: contains NaN pixels"),
    ],
)
@pytest.mark.parametrize("endpoint", ["/zeroshot", "/embed/image", "/heatmap"])
def test_bad_uploads_are_400_naming_the_problem(client, served_root, endpoint, name, make, problem):
    answer = client.post(endpoint, files={"file": (name, make(served_root))}, data={**LABELS, "text": "effusion"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["detail"].startswith(problem)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({}, "no labels: give labels"),
        ({"labels": " , "}, "no labels"),
        ({"labels": "a", "preset": "tb"}, "give labels or a preset, not both"),
        ({"preset": "nope"}, "unknown preset 'nope'"),
        ({"labels": "a,b", "bank": "../../etc/passwd"}, "unknown sentence bank"),
        ({"labels": "a,b", "templates": "no slot"}, "must contain exactly one '{}'"),
        ({"labels": "a,a"}, "class labels must be distinct"),
        ({"labels": "a,b", "model": "openai/ViT-B-32"}, "model 'openai/ViT-B-32' is not served here"),
        ({"labels": "a,b", "window": "lungs"}, "unknown window preset 'lungs'"),
        ({"labels": "a,b", "window": "40,x"}, "expected a preset name or 'centre,width'"),
        ({"labels": "a,b", "window": "40,-1"}, "width > 0"),
        ({"labels": "a,b", "slice_index": "2"}, "slice_index applies to NIfTI volumes only"),
        ({"labels": "a,b", "frame": "3"}, "frame 3 is out of range"),
    ],
)
def test_bad_zeroshot_questions_are_400(client, data, problem):
    answer = client.post("/zeroshot", files={"file": ("x.png", CHEST.read_bytes())}, data=data)
    assert answer.status_code == 400, answer.text
    assert problem in answer.json()["detail"]


def test_requests_the_schema_refuses_are_422(client):
    image = {"file": ("x.png", CHEST.read_bytes())}
    assert client.post("/zeroshot", files=image, data={"labels": "a,b", "threshold": "2"}).status_code == 422
    assert client.post("/zeroshot", files=image, data={"labels": "a,b", "frame": "-1"}).status_code == 422
    assert client.post("/zeroshot", files=image, data={"labels": ["a"] * 65}).status_code == 422
    assert client.post("/embed/text", json={"texts": []}).status_code == 422
    assert client.post("/embed/text", json={"texts": ["x"] * 257}).status_code == 422
    assert client.post("/heatmap", files={"file": ("x.png", CHEST.read_bytes())}).status_code == 422  # no text
    assert client.post("/embed/text", content=b"{not json", headers={"content-type": "application/json"}
                       ).status_code == 422


def test_an_image_is_required_once(client, served_root):
    neither = client.post("/zeroshot", data=LABELS)
    assert neither.status_code == 400 and "no image" in neither.json()["detail"]
    both = client.post("/zeroshot", files={"file": ("x.png", CHEST.read_bytes())},
                       data={**LABELS, "path": "chest_xray_normal.png"})
    assert both.status_code == 400 and "not both" in both.json()["detail"]


@pytest.mark.parametrize(
    "path", ["../secret.png", "scans/../../secret.png", "escape.png", "/etc/hostname", "{root}/../secret.png"],
)
def test_paths_outside_the_root_are_403(client, served_root, path):
    answer = client.post("/zeroshot", data={**LABELS, "path": path.format(root=served_root)})
    assert answer.status_code == 403, answer.text
    assert "outside the served root" in answer.json()["detail"]
    assert str(served_root.parent / "secret.png") not in answer.json()["detail"]  # where it leads stays unsaid


def test_paths_inside_the_root_work_absolute_or_relative(client, served_root):
    relative = client.post("/zeroshot", data={**LABELS, "path": "scans/../chest_xray_normal.png"})
    absolute = client.post("/zeroshot", data={**LABELS, "path": str(served_root / "chest_xray_normal.png")})
    assert relative.status_code == absolute.status_code == 200
    assert relative.json()["probabilities"] == absolute.json()["probabilities"]
    missing = client.post("/zeroshot", data={**LABELS, "path": "nope.png"})
    assert missing.status_code == 404 and "no such file" in missing.json()["detail"]
    folder = client.post("/zeroshot", data={**LABELS, "path": "scans"})
    assert folder.status_code == 404
    nul = client.post("/zeroshot", data={**LABELS, "path": "a\x00b.png"})
    assert nul.status_code == 400 and "unusable path" in nul.json()["detail"]


def test_without_a_root_no_path_is_accepted(make_server, served_root):
    with make_server().client() as http:
        answer = http.post("/embed/image", data={"path": str(served_root / "chest_xray_normal.png")})
    assert answer.status_code == 403
    assert "without --root" in answer.json()["detail"]


@pytest.fixture(scope="module")
def small_uploads(make_server):
    """A server taking request bodies of at most 0.2 MB."""
    return make_server(max_upload_mb=0.2)


def test_oversized_upload_is_413_naming_the_limit(small_uploads):
    big = bytes(600_000)  # three times the limit: all of it is read and dropped before the answer
    with small_uploads.client() as http:
        declared = http.post("/embed/image", files={"file": ("big.png", big)})
        assert declared.status_code == 413
        assert declared.json()["detail"].startswith("request body is larger than the upload limit of 0.2 MB")
        assert "Content-Length" in declared.json()["detail"]

        def chunks():
            for _ in range(6):
                yield bytes(100_000)

        streamed = http.post("/embed/text", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413
        assert streamed.json()["detail"] == "request body is larger than the upload limit of 0.2 MB"
        fine = http.post("/embed/image", files={"file": ("x.png", CHEST.read_bytes())})
        assert fine.status_code == 200


def test_gzip_bomb_upload_is_refused(make_server):
    bomb = gzip.compress(bytes(3_000_000))
    with make_server(max_volume_mb=1).client() as http:
        answer = http.post("/embed/image", files={"file": ("bomb.nii.gz", bomb)})
    assert answer.status_code == 400
    assert "decompressed NIfTI volume is larger than the limit of 1000000 bytes" in answer.json()["detail"]


class SlowPool(ModelPool):
    """The shared model, handed out ``delay`` seconds late once ``delay`` is set (a slow model)."""

    def __init__(self, shared: ModelPool):
        super().__init__(shared.default)
        self.shared = shared
        self.delay = 0.0

    def get(self, name=None):
        time.sleep(self.delay)
        return self.shared.get(name)

    def loaded(self):
        return self.shared.loaded()


class BrokenPool(SlowPool):
    """Fails on every request after start-up, like a bug would."""

    def get(self, name=None):
        if self.delay:
            raise RuntimeError("secret internal detail")
        return self.shared.get(name)


def test_slow_work_is_504_after_the_time_limit(make_server, pool):
    slow = SlowPool(pool)
    server = make_server(pool_override=slow, timeout_s=0.5)
    slow.delay = 3.0
    with server.client() as http:
        start = time.monotonic()
        answer = http.post("/zeroshot", files={"file": ("x.png", CHEST.read_bytes())}, data=LABELS)
        waited = time.monotonic() - start
    assert answer.status_code == 504
    assert answer.json()["detail"] == "the request took longer than the time limit of 0.5 s"
    assert waited < 2.5


def test_busy_workers_answer_503_after_the_wait_limit(make_server, pool):
    slow = SlowPool(pool)
    server = make_server(pool_override=slow, max_concurrency=1, queue_wait_s=0.3)
    slow.delay = 1.5
    first: dict = {}

    def occupy() -> None:
        with server.client() as http:
            first["answer"] = http.post("/embed/text", json={"texts": ["a"]})

    worker = threading.Thread(target=occupy)
    worker.start()
    time.sleep(0.3)
    with server.client() as http:
        answer = http.post("/embed/text", json={"texts": ["b"]})
        health = http.get("/health")
    worker.join()
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
    assert answer.json()["detail"] == "all 1 workers stayed busy for 0.3 s; try again later"
    assert first["answer"].status_code == 200
    assert health.status_code == 200  # health needs no worker


def test_unexpected_errors_are_a_generic_logged_500(make_server, pool, caplog):
    broken = BrokenPool(pool)
    server = make_server(pool_override=broken)
    broken.delay = 1.0
    with caplog.at_level(logging.ERROR, logger="openmedclip.serve"), server.client() as http:
        answer = http.post("/embed/text", json={"texts": ["a"]})
    assert answer.status_code == 500
    assert answer.json() == {"detail": "internal server error"}
    assert "secret" not in answer.text
    assert any("unexpected RuntimeError answering POST /embed/text" in record.getMessage()
               for record in caplog.records)


def test_a_model_that_is_not_served_is_refused_everywhere(client):
    image = {"file": ("x.png", CHEST.read_bytes())}
    for answer in (client.post("/embed/image", files=image, data={"model": "other"}),
                   client.post("/heatmap", files=image, data={"text": "x", "model": "other"}),
                   client.post("/embed/text", json={"texts": ["x"], "model": "other"})):
        assert answer.status_code == 400
        assert answer.json()["detail"] == f"model 'other' is not served here; served models: {MODEL}"
