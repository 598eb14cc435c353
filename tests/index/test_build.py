"""Building an index: what is stored, incremental builds, failures, the model check, kinds and errors."""

from __future__ import annotations

import os
import shutil
import sqlite3

import numpy as np
import pytest
from index_support import CORRUPT, DICOMS, STUDY_UID, write_png

from openmedclip.errors import ImageReadError, InvalidInputError
from openmedclip.index import build_index, open_index

N_GOOD = 12  # 8 PNGs + 4 DICOMs


def _stored(out) -> dict[str, tuple]:
    with sqlite3.connect(out / "index.sqlite") as db:
        rows = db.execute('SELECT path, sha256, size, "format", modality, body_part, study_uid, series_uid, "rows", '
                          '"columns" FROM items').fetchall()
    return {row[0]: row[1:] for row in rows}


def test_first_build_indexes_every_readable_file_with_its_metadata(tiny_model, archive, tmp_path, encoded_paths):
    import hashlib

    report = build_index(archive, tiny_model, tmp_path / "idx", commit_every=5)
    assert (report.added, report.changed, report.removed, report.unchanged, report.failed) == (N_GOOD, 0, 0, 0, 1)
    assert report.encoded == N_GOOD + 1 == len(encoded_paths) and report.count == N_GOOD
    assert [error.path for error in report.errors] == [CORRUPT] and report.errors[0].message
    assert report.to_dict()["errors"][0]["path"] == CORRUPT
    stored = _stored(tmp_path / "idx")
    assert len(stored) == N_GOOD and CORRUPT not in stored
    chest = stored["ct/chest1.dcm"]
    assert chest[0] == hashlib.sha256((archive / "ct/chest1.dcm").read_bytes()).hexdigest()
    assert chest[1] == (archive / "ct/chest1.dcm").stat().st_size
    assert chest[2:] == ("dicom", "CT", "CHEST", STUDY_UID, DICOMS["ct/chest1.dcm"]["series"], 36, 44)
    assert stored["mr/head.dcm"][3:5] == ("MR", "HEAD")
    assert stored["scans/img01.png"][2:] == ("png", None, None, None, None, 41, 48)
    assert stored["photos/img00.png"][7:] == (40, 44)
    index = open_index(tmp_path / "idx")
    assert (index.count, index.dim, index.kind) == (N_GOOD, 32, "flat")
    assert index.model == str(tiny_model.spec.name)


def test_second_build_encodes_only_new_and_changed_files(tiny_model, archive, tmp_path, encoded_paths):
    out = tmp_path / "idx"
    build_index(archive, tiny_model, out)
    before = _stored(out)
    encoded_paths.clear()
    write_png(archive / "new" / "added.png", 50)  # new
    write_png(archive / "scans" / "img01.png", 51, (41, 48, 3))  # changed content
    touched = archive / "scans" / "img03.png"
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))  # same bytes
    (archive / "photos" / "img02.png").unlink()  # removed
    report = build_index(archive, tiny_model, out)
    assert sorted(encoded_paths) == sorted(str(archive / name) for name in ("new/added.png", "scans/img01.png"))
    assert (report.added, report.changed, report.removed, report.failed) == (1, 1, 1, 1)
    assert report.unchanged == N_GOOD - 2 and report.count == N_GOOD
    after = _stored(out)
    assert "photos/img02.png" not in after and "new/added.png" in after
    assert after["scans/img01.png"][0] != before["scans/img01.png"][0]
    assert after["scans/img03.png"] == before["scans/img03.png"]
    with sqlite3.connect(out / "index.sqlite") as db:
        mtime = db.execute("SELECT mtime_ns FROM items WHERE path = 'scans/img03.png'").fetchone()[0]
    assert mtime == touched.stat().st_mtime_ns
    index = open_index(out)
    assert index.count == N_GOOD
    hits = index.search(_features(tiny_model, archive / "scans" / "img01.png"), k=1)
    assert hits[0].path == "scans/img01.png" and hits[0].score == pytest.approx(1.0, abs=1e-5)
    encoded_paths.clear()
    nothing = build_index(archive, tiny_model, out)
    assert encoded_paths == [] and (nothing.added, nothing.changed, nothing.removed) == (0, 0, 0)


def _features(model, path) -> np.ndarray:
    from openmedclip.embed import encode_images

    return encode_images(model, [path], num_workers=0).features[0].numpy()


def test_bad_files_are_retried_only_once_they_change(tiny_model, archive, tmp_path, encoded_paths):
    out = tmp_path / "idx"
    build_index(archive, tiny_model, out)
    encoded_paths.clear()
    again = build_index(archive, tiny_model, out)
    assert encoded_paths == [] and again.failed == 1 and again.errors[0].path == CORRUPT
    write_png(archive / CORRUPT, 7)
    fixed = build_index(archive, tiny_model, out)
    assert encoded_paths == [str(archive / CORRUPT)]
    assert (fixed.added, fixed.failed, fixed.errors, fixed.count) == (1, 0, [], N_GOOD + 1)
    (archive / CORRUPT).write_bytes(b"not an image any more")
    broken = build_index(archive, tiny_model, out)
    assert broken.failed == 1 and broken.count == N_GOOD and CORRUPT not in _stored(out)


def test_a_different_model_needs_rebuild(tiny_model, tiny_model_dir, archive, tmp_path, encoded_paths):
    from openmedclip.models import load_model

    out = tmp_path / "idx"
    build_index(archive, tiny_model, out)
    other = load_model(shutil.copytree(tiny_model_dir, tmp_path / "other-model"), device="cpu")
    with pytest.raises(InvalidInputError, match="built with model") as raised:
        build_index(archive, other, out)
    assert str(tmp_path / "other-model") in str(raised.value) and "rebuild" in str(raised.value)
    encoded_paths.clear()
    report = build_index(archive, other, out, rebuild=True)
    assert report.added == N_GOOD and len(encoded_paths) == N_GOOD + 1
    assert open_index(out).model == str(tmp_path / "other-model")


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_each_kind_is_built_and_a_new_kind_needs_no_encoding(tiny_model, archive, tmp_path, encoded_paths, kind):
    out = tmp_path / "idx"
    first = build_index(archive, tiny_model, out, kind=kind)
    assert first.kind == kind and open_index(out).kind == kind
    encoded_paths.clear()
    switched = build_index(archive, tiny_model, out, kind="flat" if kind != "flat" else "hnsw")
    assert encoded_paths == [] and switched.kind == open_index(out).kind != kind


def test_auto_kind_switches_to_ivf_past_the_flat_limit(tiny_model, archive, tmp_path, monkeypatch):
    from openmedclip.index import vectors

    assert build_index(archive, tiny_model, tmp_path / "small").kind == "flat"
    monkeypatch.setattr(vectors, "FLAT_LIMIT", 5)
    assert build_index(archive, tiny_model, tmp_path / "large").kind == "ivf"


def test_archive_errors_name_the_path(tiny_model, tmp_path, image_folder):
    with pytest.raises(ImageReadError, match="no such folder"):
        build_index(tmp_path / "missing", tiny_model, tmp_path / "idx")
    with pytest.raises(ImageReadError, match="not a folder"):
        build_index(image_folder / "img0.png", tiny_model, tmp_path / "idx")
    with pytest.raises(InvalidInputError, match="unknown index kind 'ann'"):
        build_index(image_folder, tiny_model, tmp_path / "idx", kind="ann")
    with pytest.raises(InvalidInputError, match="device and precision"):
        build_index(image_folder, tiny_model, tmp_path / "idx", device="cpu")
    assert not (tmp_path / "idx").exists()


def test_an_empty_archive_gives_an_empty_index_and_removing_every_file_empties_it(tiny_model, tmp_path):
    (tmp_path / "empty").mkdir()
    assert build_index(tmp_path / "empty", tiny_model, tmp_path / "idx").count == 0
    assert open_index(tmp_path / "idx").search(np.eye(32, dtype=np.float32)[0]) == []
    write_png(tmp_path / "empty" / "one.png", 1)
    assert build_index(tmp_path / "empty", tiny_model, tmp_path / "idx").count == 1
    (tmp_path / "empty" / "one.png").unlink()
    report = build_index(tmp_path / "empty", tiny_model, tmp_path / "idx")
    assert (report.removed, report.count) == (1, 0)


def test_opening_what_is_not_an_index_names_the_folder(tmp_path):
    with pytest.raises(InvalidInputError, match="no such folder"):
        open_index(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(InvalidInputError, match=r"plain: not an openmedclip index \(no index.sqlite\)"):
        open_index(tmp_path / "plain")
    (tmp_path / "plain" / "index.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(InvalidInputError, match="not an openmedclip index"):
        open_index(tmp_path / "plain")


def test_a_second_build_at_the_same_time_is_refused(tiny_model, archive, tmp_path):
    from openmedclip.index.lock import build_lock

    with build_lock(tmp_path / "idx"), pytest.raises(InvalidInputError, match="another build"):
        build_index(archive, tiny_model, tmp_path / "idx")


def test_a_missing_faiss_file_is_rebuilt_on_open(tiny_model, archive, tmp_path):
    out = tmp_path / "idx"
    build_index(archive, tiny_model, out, kind="hnsw")
    query = _features(tiny_model, archive / "mr" / "head.dcm")
    expected = open_index(out).search(query, k=5)
    for file in out.glob("vectors-*.faiss"):
        file.unlink()
    reopened = open_index(out)
    assert reopened.kind == "hnsw" and len(list(out.glob("vectors-*.faiss"))) == 1
    again = reopened.search(query, k=5)
    assert [hit.path for hit in again] == [hit.path for hit in expected]
    assert [hit.score for hit in again] == pytest.approx([hit.score for hit in expected])
