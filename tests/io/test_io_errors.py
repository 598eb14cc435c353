"""Bad input always becomes a one-line ImageReadError naming the file and the problem."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import tifffile
from PIL import Image

from openmedclip.errors import ImageReadError
from openmedclip.io import read_image

NOISE = (np.random.default_rng(0).random((64, 64)) * 60000).astype(np.uint16)


def _read_error(path, **options) -> str:
    with pytest.raises(ImageReadError) as caught:
        read_image(path, **options)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message
    return message


def _cut(source, target, keep: float):
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * keep)])
    return target


def test_missing_file(tmp_path):
    assert "file not found" in _read_error(tmp_path / "absent.png")


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.png"
    path.touch()
    assert "empty (0 bytes)" in _read_error(path)


def test_directory(tmp_path):
    assert "is a directory" in _read_error(tmp_path)


def test_unsupported_format(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not an image")
    assert "unsupported image format" in _read_error(path)


def test_truncated_png(tmp_path):
    Image.fromarray(NOISE).save(tmp_path / "full.png")
    assert "truncated" in _read_error(_cut(tmp_path / "full.png", tmp_path / "cut.png", 0.5))


def test_truncated_jpeg(tmp_path):
    Image.fromarray((NOISE >> 8).astype(np.uint8)).save(tmp_path / "full.jpg")
    assert "truncated" in _read_error(_cut(tmp_path / "full.jpg", tmp_path / "cut.jpg", 0.5))


def test_truncated_and_corrupt_tiff(tmp_path):
    tifffile.imwrite(tmp_path / "full.tif", NOISE)
    assert "truncated TIFF" in _read_error(_cut(tmp_path / "full.tif", tmp_path / "cut.tif", 0.5))
    garbage = tmp_path / "garbage.tif"
    garbage.write_bytes(np.random.default_rng(1).bytes(2000))
    assert "not a readable TIFF" in _read_error(garbage)


def test_random_bytes_dcm(tmp_path):
    path = tmp_path / "random.dcm"
    path.write_bytes(np.random.default_rng(2).bytes(5000))
    assert "not a DICOM file" in _read_error(path)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("side", [12000, 20000])  # above our 2^27 limit; above Pillow's own limit
def test_png_claiming_huge_size_is_refused_before_decoding(tmp_path, side):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "small.png")
    data = bytearray((tmp_path / "small.png").read_bytes())
    header = struct.pack(">II", side, side) + bytes(data[24:29])
    data[16:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header))
    path = tmp_path / "bomb.png"
    path.write_bytes(bytes(data))
    assert "too large" in _read_error(path)


def test_dicom_claiming_huge_size_is_refused(write_dicom, tmp_path):
    path = write_dicom("huge.dcm", np.zeros((2, 2), np.uint8), bits_stored=8, Rows=20000, Columns=20000)
    assert "too large" in _read_error(path)


def test_frame_on_single_frame_image(tmp_path):
    path = tmp_path / "one.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(path)
    assert "frame 1 is out of range" in _read_error(path, frame=1)
