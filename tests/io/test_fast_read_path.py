"""The uint8 read path and reduced-scale JPEG decoding, on real files of every kind.

``EXPECTED`` holds, per file, the sha256 (first 16 hex digits) of the pixels as float32 and of the RGB model input
(``to_model_input``) that the float32 read path produced before 8-bit images stayed uint8: both must not move.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import asdict, replace
from pathlib import Path

import nibabel
import numpy as np
import pydicom
import pytest
import torch
from open_clip.transform import PreprocessCfg, image_transform_v2
from PIL import Image, ImageOps

from openmedclip.errors import ImageReadError, InvalidInputError
from openmedclip.io import MedicalImage, read_image, read_image_bytes, to_model_input, to_model_picture
from openmedclip.io.convert import grey_if_uniform
from openmedclip.models.families.biovil.preprocess import BiovilPreprocess
from openmedclip.models.families.chexzero.preprocess import ChexzeroPreprocess
from openmedclip.models.families.gloria.preprocess import GloriaPreprocess
from openmedclip.models.families.medclip.preprocess import MedclipPreprocess
from openmedclip.models.families.open_clip.preprocess import OpenClipPreprocess

FOLDERS = {
    "pydicom": Path(pydicom.__file__).parent / "data" / "test_files",
    "nibabel": Path(nibabel.__file__).parent / "tests" / "data",
}
BIG_JPEG = "txv_test_cxr/covid-19-pneumonia-58-prior.jpg"

EXPECTED = {
    "shared:medpix2_traindev/images/MPX1007_synpic46719.jpg": ("7a7ac1effa776e0c", "40a87f59849e6c7f"),
    "shared:medpix2_traindev/images/MPX1007_synpic46720.jpg": ("cd2bd278d99029f7", "601b4215ce11c370"),
    "shared:medpix2_traindev/images/MPX1007_synpic46721.jpg": ("e577170e1a181d22", "2c2c5611484a9ed5"),
    "shared:vqa_rad/images/synpic100132.jpg": ("75d14b6a69effdfb", "46bf5432d3296d99"),
    "shared:vqa_rad/images/synpic100176.jpg": ("07b7d1e7000cdb7a", "498acce399a80c2e"),
    "shared:txv_test_cxr/00000001_000.png": ("2d3d84367bc4bd94", "7813711c4f470804"),
    "shared:txv_test_cxr/00027426_000.png": ("4d1b9a546a7521f1", "054fb55253ed7c78"),
    "shared:txv_test_cxr/tbx11k_test_data/imgs/health/h0001.png": ("5c20d1c74de78e42", "edeb282cdd4f8afe"),
    "shared:txv_test_cxr/tbx11k_test_data/imgs/tb/tb0005.png": ("c2beff3a26c3cdf0", "206f531c511e2d86"),
    "shared:txv_test_cxr/tbx11k_test_data/imgs/tb/tb0007.png": ("cf32b0287323bcf9", "e157cc364238ece1"),
    "shared:txv_test_cxr/16747_3_1.jpg": ("26b1b9ce3ccc64de", "d82f43b76ae77ca2"),
    "shared:txv_test_cxr/covid-19-pneumonia-58-prior.jpg": ("17e3528fbcf3a42c", "e80855c6abfa83e1"),
    "shared:txv_test_cxr/1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm": (
        "1d48026fd24760e5", "fc2ae18a1acc217c"),
    "shared:txv_test_cxr/Fake_MONOHR1.dcm": ("f52c25c6f333a068", "e683423b9f310146"),
    "pydicom:CT_small.dcm": ("8d1b7d538208e0d4", "f7204abd4780116c"),
    "pydicom:MR_small.dcm": ("c91e056c22d227f6", "14a6bdecaf0d9a69"),
    "pydicom:693_J2KI.dcm": ("87344eabb2b33426", "b072a144a46ab12f"),
    "pydicom:JPEGLSNearLossless_08.dcm": ("010d36afca246a24", "00f6bb4def05fa0a"),
    "pydicom:SC_rgb_jpeg.dcm": ("2e3a2ce7f3fa6014", "b095963c15d9d3d8"),
    "pydicom:SC_rgb_rle_16bit.dcm": ("44a291226ab37dfa", "169e619557b12114"),
    "pydicom:examples_palette.dcm": ("b28663b3c5dd259e", "db93767ae86874a9"),
    "pydicom:examples_ybr_color.dcm": ("f7b8ca2cd716af1f", "5e10c1db0b90ded2"),
    "pydicom:examples_overlay.dcm": ("8bf10b92ff214c2e", "0c94656916ee69ae"),
    "pydicom:image_dfl.dcm": ("e4230c769740c29d", "d73740a58f34dca2"),
    "pydicom:liver_1frame.dcm": ("8b5165d25fde5f9d", "df32c21721d26a0d"),
    "pydicom:rtdose_1frame.dcm": ("f1f763a5db2de4dc", "0a14be437ec28385"),
    "nibabel:anatomical.nii": ("35e6181a0172f27e", "ce03c85970436a53"),
    "nibabel:example4d.nii.gz": ("ed8fad674453836c", "6b0abd436290391e"),
    "nibabel:functional.nii": ("0ad2176e7c47219f", "90ab0cd0e4657ba5"),
    "nibabel:standard.nii.gz": ("e50f43879e528e23", "fb5cddee2f62352c"),
}
UINT8 = {"jpg", "png", "MONOHR1.dcm", "850819.dcm", "liver_1frame.dcm", "JPEGLSNearLossless_08.dcm",
         "SC_rgb_jpeg.dcm", "ybr_color.dcm", "image_dfl.dcm"}
"""Name endings of the files read as uint8; all others are float32."""


def _path(key: str, request: pytest.FixtureRequest) -> Path:
    origin, name = key.split(":", 1)
    folder = request.getfixturevalue("shared_data") if origin == "shared" else FOLDERS[origin]
    path = folder / name
    if not path.is_file():
        pytest.skip(f"{name} is not installed locally")
    return path


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


def _read(path: Path, **options) -> MedicalImage:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # min-max scaling of 16-bit data warns, as it should
        return read_image(path, **options)


def _model_input(image: MedicalImage) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return to_model_input(image)


def _open_clip(size: int = 224, mode: str = "shortest") -> OpenClipPreprocess:
    cfg = PreprocessCfg(size=size, interpolation="bicubic", resize_mode=mode)
    return OpenClipPreprocess(image_transform_v2(cfg, is_train=False), asdict(cfg))


@pytest.mark.parametrize("key", list(EXPECTED))
def test_pixels_and_model_input_are_those_of_the_float32_read_path(key, request):
    image = _read(_path(key, request))
    uint8 = key.endswith(tuple(UINT8))
    assert image.pixels.dtype == (np.uint8 if uint8 else np.float32)
    pixels_digest, input_digest = EXPECTED[key]
    assert _digest(image.pixels.astype(np.float32)) == pixels_digest
    assert _digest(np.asarray(_model_input(image))) == input_digest


@pytest.mark.parametrize("key", [key for key in EXPECTED if "MPX" not in key])
@pytest.mark.parametrize("mode", ["shortest", "longest", "squash"])
def test_open_clip_tensors_equal_the_rgb_path_bit_for_bit(key, mode, request):
    """Grey pictures go to open_clip's transform as 'L'; the tensor equals the one from the RGB picture."""
    preprocess = _open_clip(mode=mode)
    assert preprocess.grey_input
    image = _read(_path(key, request))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert torch.equal(preprocess(image), preprocess.transform(to_model_input(image)))


@pytest.mark.realdata
@pytest.mark.parametrize("name", ["txv_test_cxr/00000001_000.png", "txv_test_cxr/tbx11k_test_data/imgs/tb/tb0005.png",
                                  "txv_test_cxr/16747_3_1.jpg", "vqa_rad/images/synpic100132.jpg"])
def test_open_clip_tensors_equal_plain_pil_and_the_transform(name, shared_data):
    preprocess = _open_clip()
    with Image.open(shared_data / name) as opened:
        reference = preprocess.transform(ImageOps.exif_transpose(opened).convert("RGB"))
    assert torch.equal(preprocess(read_image(shared_data / name)), reference)


def test_grey_if_uniform_takes_one_channel_of_grey_rgb_pictures_only():
    values = (np.arange(64 * 64) % 256).astype(np.uint8).reshape(64, 64)
    grey = grey_if_uniform(Image.fromarray(np.stack([values] * 3, axis=-1)))
    assert grey.mode == "L" and np.array_equal(np.asarray(grey), values)
    tinted = np.stack([values] * 3, axis=-1)
    tinted[40, 7, 2] += 1  # one pixel off grey
    few_colours = np.zeros((8, 8, 3), np.uint8)
    few_colours[2:4, 2:4] = (255, 0, 0)  # two colours, not grey
    noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)  # over 256 colours
    for pixels in (tinted, few_colours, noise):
        picture = Image.fromarray(pixels)
        assert grey_if_uniform(picture) is picture
    single = Image.fromarray(values)
    assert grey_if_uniform(single) is single


@pytest.mark.realdata
def test_grey_jpegs_stored_as_rgb_take_the_grey_path_with_the_same_tensors(shared_data):
    """MedPix and VQA-RAD JPEGs are grey pictures stored as RGB: resampled as 'L', the tensors equal those of
    open_clip's transform on the RGB picture."""
    preprocess = _open_clip()
    transform = preprocess.transform
    modes: list[str] = []
    preprocess.transform = lambda picture: modes.append(picture.mode) or transform(picture)
    files = [*sorted((shared_data / "medpix2_traindev" / "images").glob("*.jpg"))[:200:25],
             *sorted((shared_data / "vqa_rad" / "images").glob("*.jpg"))[:200:25]]
    for path in files:
        image = read_image(path)
        with Image.open(path) as opened:
            assert torch.equal(preprocess(image), transform(opened.convert("RGB"))), path
    assert len(files) == 16 and modes.count("L") >= 12  # the transform was given the one channel


@pytest.mark.realdata
@pytest.mark.parametrize("family", [ChexzeroPreprocess(), BiovilPreprocess(512, 480), MedclipPreprocess(224),
                                    GloriaPreprocess()], ids=type)
def test_other_families_see_the_same_picture(family, shared_data):
    """Each family's tensor from the file equals the one from its RGB model input (grey PNG and DICOM, a grey JPEG
    stored as RGB, two colour JPEGs)."""
    for name in ("txv_test_cxr/00000001_000.png", "txv_test_cxr/Fake_MONOHR1.dcm", "txv_test_cxr/16747_3_1.jpg",
                 "vqa_rad/images/synpic100176.jpg", "vqa_rad/images/synpic100132.jpg"):
        image = read_image(shared_data / name)
        assert torch.equal(family(image), family(to_model_input(image))), name


@pytest.mark.realdata
def test_chexzero_resizes_a_grey_jpeg_stored_as_rgb_as_one_channel(shared_data, monkeypatch):
    import openmedclip.models.families.chexzero.preprocess as chexzero

    given: list[str] = []
    monkeypatch.setattr(chexzero, "grey_if_uniform", lambda picture: given.append(picture.mode) or
                        grey_if_uniform(picture))
    resized: list[str] = []
    resize = Image.Image.resize
    monkeypatch.setattr(Image.Image, "resize", lambda self, *a, **k: resized.append(self.mode) or resize(self, *a, **k))
    ChexzeroPreprocess()(read_image(shared_data / "txv_test_cxr/16747_3_1.jpg"))
    assert given == ["RGB"] and resized == ["L"]


def test_a_transform_that_is_not_open_clips_gets_rgb():
    seen = []
    preprocess = OpenClipPreprocess(lambda picture: seen.append(picture.mode) or torch.zeros(1), {"size": 224})
    assert not preprocess.grey_input
    preprocess(MedicalImage(np.zeros((4, 4), np.uint8), "grey", meta={"bit_depth": 8}))
    assert seen == ["RGB"]


def test_to_model_picture_keeps_grey_as_l_and_applies_windows():
    grey = MedicalImage(np.array([[0, 100, 255]], np.uint8), "grey", meta={"bit_depth": 8})
    picture = to_model_picture(grey)
    assert picture.mode == "L" and np.asarray(picture).tolist() == [[0, 100, 255]]
    windowed = MedicalImage(grey.pixels, "grey", window=(100.0, 100.0), meta={"bit_depth": 8})
    assert np.asarray(to_model_picture(windowed)).tolist() == [[0, 128, 255]]
    assert to_model_input(grey).mode == "RGB"


@pytest.mark.parametrize("mode", ["L", "RGB", "P", "LA"])
def test_an_8bit_raster_reaches_the_preprocess_as_the_decoded_picture(mode, tmp_path):
    values = np.arange(48, dtype=np.uint8).reshape(4, 4, 3) * 5
    source = Image.fromarray(values).convert(mode)
    source.save(tmp_path / "image.png")
    image = read_image(tmp_path / "image.png")
    assert image.picture is not None and image.picture.mode == ("L" if mode in ("L", "LA") else "RGB")
    assert to_model_picture(image) is image.picture
    shown = Image.open(tmp_path / "image.png").convert(image.picture.mode)
    assert image.pixels.dtype == np.uint8 and np.array_equal(image.pixels, np.asarray(shown))
    assert not image.pixels.flags.writeable
    windowed = replace(image, window=(40.0, 80.0))
    assert windowed.picture is None
    assert np.array_equal(np.asarray(to_model_picture(windowed)),
                          np.asarray(to_model_picture(MedicalImage(np.asarray(shown), "copy", window=(40.0, 80.0),
                                                                   photometric=image.photometric, meta=image.meta))))
    image.pixels = np.zeros((2, 2), np.uint8)
    assert image.picture is None and to_model_picture(image).size == (2, 2)


def test_float_pixels_are_checked_once_for_nan_and_infinity(tmp_path):
    import tifffile

    for value, problem in ((np.nan, "NaN"), (np.inf, "infinite")):
        pixels = np.ones((4, 4), np.float32)
        pixels[1, 2] = value
        tifffile.imwrite(tmp_path / "bad.tif", pixels)
        with pytest.raises(ImageReadError, match=problem):
            read_image(tmp_path / "bad.tif")


def test_targets_of_the_family_preprocesses():
    assert _open_clip(336).target_size == 336
    assert ChexzeroPreprocess().target_size == 320
    assert BiovilPreprocess(512, 480).target_size == 512
    assert MedclipPreprocess(224).target_size == 224
    assert GloriaPreprocess().target_size == 256


@pytest.mark.realdata
def test_large_jpeg_decodes_at_reduced_scale_keeping_twice_the_target(shared_data):
    path = shared_data / BIG_JPEG
    full, reduced = read_image(path), read_image(path, target_size=224)
    assert full.pixels.shape == (2373, 2373, 3) and "reduced_scale" not in full.meta
    assert reduced.meta["reduced_scale"] == 4 and reduced.pixels.shape == (594, 594, 3)
    assert "reduced_scale" not in read_image(path, target_size=1187).meta  # 2373 < 2 * 1187
    assert read_image(path, target_size=148).meta["reduced_scale"] == 8
    preprocess = _open_clip()
    a, b = preprocess(full), preprocess(reduced)
    assert not torch.equal(a, b)
    assert (a - b).abs().mean() < 0.05  # normalised units: a slight change (features: benchmarks/decode.py)
    data = path.read_bytes()
    assert read_image_bytes(data, "x.jpg", target_size=224).pixels.shape == (594, 594, 3)


@pytest.mark.realdata
def test_target_size_leaves_images_under_twice_the_target_alone(shared_data):
    for name in ("txv_test_cxr/16747_3_1.jpg", "txv_test_cxr/00000001_000.png", "txv_test_cxr/Fake_MONOHR1.dcm"):
        path = shared_data / name
        plain = read_image(path)
        hinted = read_image(path, target_size=min(plain.pixels.shape[:2]) // 2 + 1)
        assert "reduced_scale" not in hinted.meta
        np.testing.assert_array_equal(hinted.pixels, plain.pixels)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "224"])
def test_target_size_must_be_a_positive_int(bad, tmp_path):
    with pytest.raises(InvalidInputError, match="target_size"):
        read_image(tmp_path / "any.png", target_size=bad)
