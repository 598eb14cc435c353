"""An index over real chest X-ray DICOM, PNG and JPEG files and VQA-RAD radiology JPEGs, with the built-in model."""

from __future__ import annotations

import json
import shutil

import pytest

from openmedclip.cli.app import run
from openmedclip.index import build_index, open_index
from openmedclip.models import load_model

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def real_index(shared_data, tmp_path_factory):
    """``(archive, index folder, build report)`` for the chest X-rays of ``txv_test_cxr`` and 6 VQA-RAD JPEGs."""
    archive = tmp_path_factory.mktemp("real") / "archive"
    shutil.copytree(shared_data / "txv_test_cxr", archive / "cxr")
    (archive / "vqa").mkdir()
    for path in sorted((shared_data / "vqa_rad" / "images").glob("*.jpg"))[:6]:
        shutil.copy(path, archive / "vqa" / path.name)
    out = archive.parent / "idx"
    return archive, out, build_index(archive, "openmedclip-base", out, device="cpu")


def test_real_files_are_indexed_with_their_dicom_header(real_index):
    archive, out, report = real_index
    images = [p for p in archive.rglob("*") if p.suffix.lower() in (".dcm", ".png", ".jpg")]
    assert report.failed == 0 and report.count == len(images) == report.added
    index = open_index(out)
    model = load_model(index.model, device="cpu")
    dicoms = index.search_text(model, "chest radiograph", k=50, where={"modality": "CR"})
    assert sorted(hit.path.rsplit("/", 1)[-1] for hit in dicoms) == sorted(
        p.name for p in (archive / "cxr").glob("*.dcm"))
    assert all(hit.metadata["format"] == "dicom" and hit.metadata["body_part"] == "CHEST"
               and hit.metadata["rows"] == hit.metadata["columns"] == 1024 and hit.metadata["study_uid"]
               for hit in dicoms)
    everything = index.search_text(model, "chest radiograph", k=50)
    formats = {hit.metadata["format"] for hit in everything}
    assert formats == {"dicom", "png", "jpeg"}
    assert all(hit.metadata["modality"] is None for hit in everything if hit.metadata["format"] != "dicom")
    itself = index.search_image(model, archive / "cxr" / "Fake_MONOHR1.dcm", k=1)[0]
    assert itself.path == "cxr/Fake_MONOHR1.dcm" and itself.score == pytest.approx(1.0, abs=1e-3)


def test_search_where_modality_filters_on_the_command_line(real_index, capsys):
    out = real_index[1]
    capsys.readouterr()
    assert run(["search", str(out), "chest x-ray", "--where", "modality=CR", "-k", "20", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert len(hits) == 2 and {hit["metadata"]["modality"] for hit in hits} == {"CR"}
    assert run(["search", str(out), "chest x-ray", "--where", "modality=CT", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["hits"] == []
