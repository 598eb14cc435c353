"""Large images in bounded memory and at reduced scale; library warnings; truncated and degenerate files."""

from __future__ import annotations

import gzip
import json
import struct
import subprocess
import sys
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tifffile
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit, RLELossless

from dicom_files import build_dicom
from openmedclip.errors import ImageReadError
from openmedclip.io import read_image, read_image_bytes
from openmedclip.io.checks import ReadWarning, fill_rows
from openmedclip.io.dicom import read_dicom
from openmedclip.io.nifti import read_nifti
from openmedclip.io.tiff import read_tiff

SIDE = 11585
"""The side of the largest square image the size guard (2^27 pixels) admits."""
READ_BUDGET_MB = 1200
"""What reading and preprocessing one image may add to a process: ``openmedclip zeroshot`` holds about 800 MB
before it reads (torch, open_clip, a model) and must stay under 2 GB."""
CHILD = """
import json, sys
from importlib import import_module
from PIL import Image
from openmedclip.io import to_model_picture

def resident_mb(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":")) / 1024

module, name = sys.argv[1].split(":")
read = getattr(import_module(module), name)
before = resident_mb("VmRSS")
image = read(sys.argv[2], target_size=None if sys.argv[3] == "full" else int(sys.argv[3]))
to_model_picture(image).resize((224, 224), Image.Resampling.BICUBIC)
print(json.dumps({"added_mb": resident_mb("VmHWM") - before, "scale": image.meta.get("reduced_scale", 1)}))
"""
"""Reads ``argv[2]`` with ``argv[1]`` ('module:function') at target size ``argv[3]`` and makes the 224 px model
picture (grey stays grey, as open_clip's preprocess takes it); prints the memory that added at its peak (from
``VmHWM``, the peak of this process alone: ``ru_maxrss`` would include the resident memory of the pytest process
that started it) and the reduced scale."""


def _png(path: Path, width: int, height: int, colour_type: int, bit_depth: int, row: bytes) -> Path:
    """A PNG whose rows all equal ``row`` (each filtered 'Up' after the first), compressed as a stream."""
    compressor = zlib.compressobj(1)
    same = b"\x02" + bytes(len(row))
    idat = compressor.compress(b"\x00" + row) + b"".join(compressor.compress(same) for _ in range(height - 1))
    idat += compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def _ramp(width: int, top: int, dtype: str) -> np.ndarray:
    return (np.arange(width) * (top + 1) // width).astype(dtype)


@pytest.fixture(scope="module")
def big_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Near-limit images, small on disk except the DICOM: horizontal gradients or constant tiles."""
    folder = tmp_path_factory.mktemp("big")
    rgb = np.repeat(_ramp(12000, 255, "u1"), 3)
    files = {
        "png_rgb": _png(folder / "rgb-12000x11000.png", 12000, 11000, 2, 8, rgb.tobytes()),
        "png_grey16": _png(folder / "grey16.png", SIDE, SIDE, 0, 16, _ramp(SIDE, 65535, ">u2").tobytes()),
        "tiff_rgb16": folder / "rgb16.tif",
        "dicom_ct": folder / "ct.dcm",
        "nifti": folder / "slice.nii.gz",
    }
    tiles = (np.full((1024, 1024, 3), 400 * i, np.uint16) for i in range(12 * 12))
    tifffile.imwrite(files["tiff_rgb16"], tiles, shape=(SIDE, SIDE, 3), dtype=np.uint16, photometric="rgb",
                     tile=(1024, 1024), compression="zlib", compressionargs={"level": 1})
    ct = np.broadcast_to(_ramp(SIDE, 4095, "u2"), (SIDE, SIDE))
    build_dicom(np.ascontiguousarray(ct), "MONOCHROME2", 12, Modality="CT", RescaleSlope=1,
                RescaleIntercept=-1024).save_as(files["dicom_ct"], enforce_file_format=True)
    volume = nib.Nifti1Image(np.broadcast_to(_ramp(SIDE, 999, "i2")[:, None, None], (SIDE, SIDE, 1)), np.eye(4))
    volume.header.set_slope_inter(0.5, -10.0)
    nib.save(volume, files["nifti"])
    yield files
    files["dicom_ct"].unlink()


def _peaks(big_files: dict[str, Path], cases: dict[str, tuple[str, str, str]]) -> dict[str, dict]:
    """Run every case (file key, reader, target) in a fresh process of its own, all at once; their outputs."""
    running = {
        name: subprocess.Popen([sys.executable, "-c", CHILD, reader, str(big_files[key]), target],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, (key, reader, target) in cases.items()
    }
    results = {}
    for name, process in running.items():
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        results[name] = json.loads(out.strip().splitlines()[-1])
    return results


MEMORY_CASES = {
    "png 12000x11000 RGB, target 224": ("png_rgb", "openmedclip.io:read_image", "224"),
    "16-bit grey png, target 224": ("png_grey16", "openmedclip.io:read_image", "224"),
    "16-bit RGB tiff, target 224": ("tiff_rgb16", "openmedclip.io.tiff:read_tiff", "224"),
    "16-bit CT dicom, full size": ("dicom_ct", "openmedclip.io:read_image", "full"),
    "scaled int16 nifti slice, full size": ("nifti", "openmedclip.io:read_image", "full"),
}


@pytest.fixture(scope="module")
def peaks(big_files: dict[str, Path]) -> dict[str, dict]:
    return _peaks(big_files, MEMORY_CASES)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak memory is read from /proc")
@pytest.mark.parametrize("case", list(MEMORY_CASES))
def test_reading_and_preprocessing_a_near_limit_image_fits_the_budget(peaks, case):
    result = peaks[case]
    assert result["added_mb"] < READ_BUDGET_MB, result
    assert result["scale"] > 1 if MEMORY_CASES[case][2] != "full" else result["scale"] == 1


def test_large_png_comes_back_reduced_without_library_warnings(big_files):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = read_image(big_files["png_rgb"], target_size=224)
    assert caught == []  # Pillow's DecompressionBombWarning (132 M pixels) is ours to handle
    assert image.meta["reduced_scale"] == 24  # 11000 // (2 * 224)
    assert image.picture is not None and image.picture.size == (500, 459)
    assert min(image.picture.size) >= 2 * 224
    assert image.pixels[0, -1, 0] > 250 and image.pixels[-1, 0, 0] < 5  # the gradient survives


def test_large_png_bytes_are_reduced_alike(big_files):
    data = big_files["png_grey16"].read_bytes()
    image = read_image_bytes(data, "grey16.png", target_size=1000)
    assert image.meta["reduced_scale"] == 5 and image.pixels.shape == (2317, 2317)
    assert image.pixels.dtype == np.float32 and image.meta["bit_depth"] == 16


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "P", "I;16"])
def test_raster_reduction_is_the_block_mean_keeping_twice_the_target(tmp_path, mode):
    values = np.random.default_rng(0).integers(0, 256, (450, 610, 4), dtype=np.uint8)
    if mode == "P":
        picture = Image.fromarray(values[..., :3]).quantize(64)
    elif mode == "I;16":
        picture = Image.fromarray(values[..., 0].astype(np.uint16) * 257)
    else:
        picture = Image.fromarray(values[..., : len(mode)].squeeze(), mode)
    path = tmp_path / "image.png"
    picture.save(path)
    full, reduced = read_image(path), read_image(path, target_size=50)
    assert reduced.meta["reduced_scale"] == 4 and reduced.pixels.shape[:2] == (113, 153)
    expected = fill_rows(np.empty(reduced.pixels.shape, np.float64), [full.pixels.astype(np.float64)], 4)
    np.testing.assert_allclose(reduced.pixels, expected, atol=1.0, rtol=1e-6)
    assert reduced.pixels.dtype == full.pixels.dtype


def test_reduction_leaves_images_smaller_than_four_targets_alone(tmp_path):
    Image.fromarray(np.zeros((300, 500), np.uint8)).save(tmp_path / "small.png")
    image = read_image(tmp_path / "small.png", target_size=76)  # 300 < 4 * 76: a factor 2 would go below 152
    assert "reduced_scale" not in image.meta and image.pixels.shape == (300, 500)


def test_block_means_do_not_depend_on_how_rows_arrive():
    pixels = np.random.default_rng(1).random((37, 23, 3))
    whole = fill_rows(np.empty((13, 8, 3)), [pixels], 3)
    pieces = fill_rows(np.empty((13, 8, 3)), [pixels[:4], pixels[4:5], pixels[5:29], pixels[29:]], 3)
    np.testing.assert_array_equal(whole, pieces)
    np.testing.assert_allclose(whole[0, 0], pixels[:3, :3].mean(axis=(0, 1)))
    np.testing.assert_allclose(whole[-1, -1], pixels[36:, 21:].mean(axis=(0, 1)))  # the partial edge block


def test_tiff_dicom_and_nifti_readers_reduce_for_a_target(tmp_path, write_dicom):
    grey = np.random.default_rng(2).integers(0, 4096, (400, 520)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "grey.tif", grey, tile=(64, 64), photometric="miniswhite")
    tiff = read_tiff(tmp_path / "grey.tif", target_size=60)
    expected = fill_rows(np.empty((134, 174)), [65535.0 - grey], 3)
    assert tiff.meta["reduced_scale"] == 3 and tiff.meta["inverted"]
    np.testing.assert_allclose(tiff.pixels, expected, rtol=1e-6)
    dicom = read_dicom(write_dicom("ct.dcm", grey, bits_stored=12, Modality="CT", RescaleSlope=2,
                                   RescaleIntercept=-1024), target_size=60)
    assert dicom.meta["reduced_scale"] == 3
    np.testing.assert_allclose(dicom.pixels, fill_rows(np.empty((134, 174)), [grey * 2.0 - 1024], 3), rtol=1e-6)
    nib.save(nib.Nifti1Image(grey.T[::-1, ::-1, None].astype(np.float32), np.eye(4)), tmp_path / "slice.nii")
    nifti = read_nifti(tmp_path / "slice.nii", target_size=60)
    full = read_nifti(tmp_path / "slice.nii")
    np.testing.assert_array_equal(full.pixels, grey)
    assert nifti.meta["reduced_scale"] == 3 and nifti.pixels.shape == (134, 174)
    assert abs(float(nifti.pixels.mean()) - float(grey.mean())) < 25


def test_pydicom_warnings_come_back_as_one_line_naming_the_file(tmp_path, write_dicom):
    pixels = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    path = tmp_path / "padded.dcm"
    ds = build_dicom(pixels, "MONOCHROME2", 12)
    ds.PixelData = pixels.tobytes() + bytes(1000)  # pydicom warns of excess padding
    ds.save_as(path, enforce_file_format=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = read_image(path)
    assert [warning.category for warning in caught] == [ReadWarning]
    message = str(caught[0].message)
    assert message.startswith(f"{path}: ") and "padding" in message and "\n" not in message
    np.testing.assert_array_equal(image.pixels, pixels)


def test_pillow_warnings_come_back_once_naming_the_file(tmp_path):
    picture = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)).convert("P")
    path = tmp_path / "palette.png"
    picture.save(path, transparency=bytes([0, 255] * 128))  # Pillow warns at each conversion to RGB
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_image(path)
    assert [warning.category for warning in caught] == [ReadWarning]
    assert str(caught[0].message).startswith(f"{path}: Palette images with Transparency")


@pytest.mark.parametrize("side", [12000, 20000])  # above our guard; above Pillow's own limit
def test_images_above_the_guard_are_refused_in_our_words_without_warnings(tmp_path, side):
    path = _png(tmp_path / "huge.png", side, side, 0, 8, bytes(side))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ImageReadError, match=rf"image is too large \(.*{side * side} pixels; the limit is"):
            read_image(path)
    assert caught == []


def _cut(path: Path, fraction: float) -> Path:
    data = path.read_bytes()
    cut = path.with_name(f"cut-{path.name}")
    cut.write_bytes(data[: int(len(data) * fraction)])
    return cut


def _read_error(path: Path, **options) -> str:
    with pytest.raises(ImageReadError) as caught:
        read_image(path, **options)
    message = str(caught.value)
    assert message.startswith(str(path)) and "\n" not in message
    return message


@pytest.fixture
def volume_file(tmp_path) -> Path:
    volume = np.random.default_rng(3).integers(0, 1000, (64, 64, 40)).astype(np.int16)
    nib.save(nib.Nifti1Image(volume, np.eye(4)), tmp_path / "volume.nii.gz")
    return tmp_path / "volume.nii.gz"


@pytest.mark.parametrize("slice_index", [0, 20])
def test_half_truncated_nii_gz_raises_truncated(volume_file, slice_index):
    assert "truncated" in _read_error(_cut(volume_file, 0.5), slice_index=slice_index)


def test_short_voxel_data_raises_truncated_compressed_or_not(volume_file, tmp_path):
    raw = gzip.decompress(volume_file.read_bytes())
    (tmp_path / "short.nii.gz").write_bytes(gzip.compress(raw[:-1000]))  # a complete gzip stream, short data
    (tmp_path / "short.nii").write_bytes(raw[:-1000])
    for name in ("short.nii.gz", "short.nii"):
        assert "NIfTI data is truncated" in _read_error(tmp_path / name, slice_index=0)


def test_complete_and_4d_nifti_still_read(volume_file, tmp_path):
    assert read_image(volume_file, slice_index=0).pixels.shape == (64, 64)
    series = np.stack([np.zeros((8, 8, 4)), np.ones((8, 8, 4))], axis=-1).astype(np.float32)
    nib.save(nib.Nifti1Image(series, np.eye(4)), tmp_path / "series.nii.gz")
    assert read_image(tmp_path / "series.nii.gz").pixels.max() == 0  # volume 0 by default
    assert read_image(tmp_path / "series.nii.gz", frame=1).pixels.min() == 1


def test_dicom_without_pixel_data(tmp_path):
    ds = build_dicom(np.zeros((8, 8), np.uint16), "MONOCHROME2", 12)
    del ds.PixelData
    ds.save_as(tmp_path / "no-pixels.dcm", enforce_file_format=True)
    assert "DICOM file has no pixel data" in _read_error(tmp_path / "no-pixels.dcm")


def test_dicom_truncated_in_native_pixel_data(write_dicom):
    path = write_dicom("ct.dcm", np.ones((128, 128), np.uint16), bits_stored=12)
    message = _read_error(_cut(path, 0.6))
    assert "cannot decode DICOM pixel data: it is truncated" in message and "its header describes 32768)" in message


def test_dicom_truncated_in_compressed_pixel_data(tmp_path):
    ds = build_dicom(np.random.default_rng(4).integers(0, 4096, (128, 128)).astype(np.uint16), "MONOCHROME2", 12)
    ds.compress(RLELossless, encoding_plugin="pydicom")
    ds.save_as(tmp_path / "rle.dcm", enforce_file_format=True)
    assert "DICOM file is truncated" in _read_error(_cut(tmp_path / "rle.dcm", 0.75))


@pytest.mark.parametrize("syntax", [JPEGBaseline8Bit, RLELossless])
def test_dicom_with_garbage_compressed_fragments(tmp_path, syntax):
    ds = build_dicom(np.zeros((64, 64), np.uint8), "MONOCHROME2", 8)
    ds.file_meta.TransferSyntaxUID = syntax
    ds.PixelData = encapsulate([np.random.default_rng(5).bytes(3000)])
    ds["PixelData"].VR = "OB"
    ds.save_as(tmp_path / "garbage.dcm", enforce_file_format=True)
    assert "the compressed data is corrupt or truncated" in _read_error(tmp_path / "garbage.dcm")


def test_colour_beyond_8_bits_is_refused_at_full_size_above_the_float_limit(tmp_path, monkeypatch):
    import openmedclip.io.checks as checks

    path = tmp_path / "rgb16.tif"
    tifffile.imwrite(path, np.arange(64 * 64 * 3, dtype=np.uint16).reshape(64, 64, 3), photometric="rgb")
    monkeypatch.setattr(checks, "MAX_FLOAT_VALUES", 64 * 64 * 3 - 1)
    with pytest.raises(ImageReadError, match=r"64x64 pixels x 3 samples beyond 8 bits = 12288 values"):
        read_image(path)
    assert read_image(path, target_size=8).meta["reduced_scale"] == 4  # reduced: 16 x 16 x 3 values
