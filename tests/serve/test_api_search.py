"""POST /search over an index given at start-up: the hits of the index searched directly, by text or by image,
with metadata filters; its mistakes are 400s."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MODEL = "openmedclip-base"

index_package = pytest.importorskip("openmedclip.index", reason="the index package (openmedclip.index) is absent")
pytest.importorskip("faiss", reason="faiss is not installed (pip install 'openmedclip[index]')")


@pytest.fixture(scope="module")
def archive_index(tmp_path_factory, model, served_root):
    """An index of the example images and a CT DICOM, built with the served model."""
    base = tmp_path_factory.mktemp("search")
    archive = base / "archive"
    archive.mkdir()
    for example in [*EXAMPLES.glob("*.png"), EXAMPLES / "head_ct.jpg"]:
        shutil.copy(example, archive / example.name)
    shutil.copy(served_root / "scans" / "ct.dcm", archive / "ct.dcm")
    report = index_package.build_index(archive, model, base / "index")
    assert report.failed == 0 and report.count == 5
    return archive, base / "index"


@pytest.fixture(scope="module")
def searched(make_server, archive_index):
    archive, folder = archive_index
    return make_server(index=folder, root=archive)


@pytest.fixture(scope="module")
def opened(archive_index):
    with index_package.open_index(archive_index[1]) as index:
        yield index


def assert_same_hits(answer, expected) -> None:
    """The answer's hits are ``expected`` (the index searched directly): same files, order and scores."""
    assert answer.status_code == 200, answer.text
    hits = answer.json()["hits"]
    assert [hit["path"] for hit in hits] == [hit.path for hit in expected]
    assert [hit["score"] for hit in hits] == pytest.approx([hit.score for hit in expected], abs=1e-6)


def test_health_describes_the_index(searched, opened):
    with searched.client() as http:
        index = http.get("/health").json()["index"]
    assert index == {"path": str(searched.settings.index), "count": 5, "dim": opened.dim, "model": MODEL}


def test_search_by_text_matches_the_index(searched, opened, model):
    with searched.client() as http:
        answer = http.post("/search", data={"text": "a chest x-ray", "k": "3"})
    assert_same_hits(answer, opened.search_text(model, "a chest x-ray", k=3))
    body = answer.json()
    assert (body["model"], body["query"], body["k"]) == (MODEL, "text", 3)
    assert [hit["rank"] for hit in body["hits"]] == [1, 2, 3]
    assert set(body["hits"][0]["metadata"]) >= {"sha256", "format", "rows", "columns"}


def test_search_by_uploaded_image_or_path_matches_the_index(searched, opened, model, archive_index):
    archive = archive_index[0]
    expected = opened.search_image(model, archive / "head_ct.jpg", k=5)
    with searched.client() as http:
        uploaded = http.post("/search", files={"file": ("q.jpg", (archive / "head_ct.jpg").read_bytes())},
                             data={"k": "5"})
        by_path = http.post("/search", data={"path": "head_ct.jpg", "k": "5"})
    assert_same_hits(uploaded, expected)
    assert_same_hits(by_path, expected)
    assert uploaded.json()["hits"][0]["path"] == "head_ct.jpg"  # itself first
    assert uploaded.json()["query"] == "image"


def test_search_filters_by_metadata(searched, opened, model):
    with searched.client() as http:
        answer = http.post("/search", data={"text": "a scan", "where": '{"format": "dicom"}'})
    assert_same_hits(answer, opened.search_text(model, "a scan", where={"format": "dicom"}))
    assert [hit["path"] for hit in answer.json()["hits"]] == ["ct.dcm"]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"text": "x", "where": "{bad json"}, "where must be a JSON object"),
        ({"text": "x", "where": "[1, 2]"}, "where must be a JSON object, got list"),
        ({"text": "x", "where": '{"colour": "red"}'}, "unknown filter key"),
        ({"text": "  "}, "the search text is empty"),
        ({}, "give exactly one of 'text' and an image"),
        ({"text": "x", "path": "head_ct.jpg"}, "give exactly one of 'text' and an image"),
    ],
)
def test_search_mistakes_are_400(searched, data, problem):
    with searched.client() as http:
        answer = http.post("/search", data=data)
    assert answer.status_code == 400, answer.text
    assert problem in answer.json()["detail"]


def test_an_index_built_with_a_model_not_served_is_refused(archive_index):
    from openmedclip.errors import InvalidInputError
    from openmedclip.serve.api import create_app
    from openmedclip.serve.session import ModelPool
    from openmedclip.serve.settings import ServeSettings

    other = ModelPool("some-other-model")
    with pytest.raises(InvalidInputError, match="was built with model 'openmedclip-base', which is not served here"):
        create_app(ServeSettings(index=archive_index[1]), pool=other)
