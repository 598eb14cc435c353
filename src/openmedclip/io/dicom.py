"""DICOM through pydicom: Modality LUT, header VOI (recorded), MONOCHROME1 inversion, frames and colour."""

from __future__ import annotations

import math
import struct
import warnings
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import (
    apply_color_lut,
    apply_modality_lut,
    apply_voi,
    get_decoder,
    pixel_array,
)
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import (
    UID,
    JPEG2000TransferSyntaxes,
    JPEGLSTransferSyntaxes,
    JPEGTransferSyntaxes,
    RLETransferSyntaxes,
)

from openmedclip.errors import ImageReadError
from openmedclip.io.checks import (
    check_pixel_count,
    choose_index,
    fill_rows,
    library_warnings,
    one_line,
    reduced_shape,
    reduction_factor,
    row_bands,
)
from openmedclip.io.image import MedicalImage
from openmedclip.io.voi import VOI_LUT_FUNCTIONS, HeaderVOI

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_DECODER_PACKAGES: dict[str, str] = {
    **dict.fromkeys(JPEGTransferSyntaxes, "pylibjpeg pylibjpeg-libjpeg (or python-gdcm)"),
    **dict.fromkeys(JPEGLSTransferSyntaxes, "pylibjpeg pylibjpeg-libjpeg (or pyjpegls)"),
    **dict.fromkeys(JPEG2000TransferSyntaxes, "pylibjpeg pylibjpeg-openjpeg (or python-gdcm)"),
    **dict.fromkeys(RLETransferSyntaxes, "pylibjpeg pylibjpeg-rle"),
}


def read_dicom(
    path: Path, *, frame: int | None = None, data: bytes | None = None, target_size: int | None = None
) -> MedicalImage:
    """Read one frame of a DICOM image (default: the middle frame).

    Grey frames go through the Modality LUT (LUT sequence or rescale slope/intercept, also from enhanced
    multi-frame functional groups), so CT comes out in HU. MONOCHROME1 frames are reflected as
    ``offset - value``, offset being the sum of the smallest and largest representable values after the
    Modality LUT. The frame's header VOI (top level, else per-frame or shared functional groups) is
    recorded, not applied: Window Center/Width (first value when several, width at least 1 for LINEAR)
    with its VOI LUT Function, else the first VOI LUT Sequence item, goes to ``voi`` (applied through
    pydicom by ``to_model_input``) and a display ``window`` (the header window, or the LUT's input range
    as a linear stand-in), both reflected for MONOCHROME1. ``meta["window_source"]`` names it: 'header'
    (with ``meta["voi_lut_function"]``: LINEAR, LINEAR_EXACT or SIGMOID, LINEAR when absent or unknown),
    'voi_lut', 'voi_lut_range' (a VOI LUT pydicom cannot use: only the linear stand-in is kept) or None.
    Colour frames (RGB, YBR_*, PALETTE COLOR) come out as RGB. Pixels are uint8 where the frame's stored
    8-bit values pass unchanged (no Modality LUT; MONOCHROME1 reflected as ``255 - value``), else float32.
    ``data`` holds the file's bytes when it is not on disk (``path`` then only names it).

    Native single-frame pixel data is used in place where pydicom can, and the frame is converted band by band.
    ``target_size`` (pixels) reduces a large frame by the largest integer factor that keeps both sides at least
    ``2 * target_size`` (the mean of each factor x factor block after the Modality LUT, recorded in
    ``meta["reduced_scale"]``). Pixel data without its expected length, or that cannot be decoded, raises
    naming the problem; library warnings come out as one :class:`~openmedclip.io.checks.ReadWarning` line
    naming the file.
    """
    with library_warnings(path) as caught:
        ds = _dataset(path, data, caught)
        rows, columns = _dimensions(path, ds)
        check_pixel_count(path, rows, columns)
        n_frames = int(ds.get("NumberOfFrames") or 1)
        index = choose_index(path, frame, n_frames, n_frames // 2, "frame")
        syntax = getattr(ds, "file_meta", Dataset()).get("TransferSyntaxUID")
        _require_decoder(path, syntax)
        stored = _decode(path, ds, index, syntax)
        factor = reduction_factor(rows, columns, target_size)
        photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
        meta = {
            "format": "dicom",
            "bit_depth": int(ds.get("BitsStored") or ds.get("BitsAllocated") or 8),
            "frame": index,
            "n_frames": n_frames,
            "inverted": False,
            "spacing": _spacing(ds, index),
            "transfer_syntax": _syntax_name(syntax),
            "photometric_original": photometric,
        }
        if factor > 1:
            meta["reduced_scale"] = factor
        if "PatientOrientation" in ds and ds.PatientOrientation:
            meta["patient_orientation"] = tuple(str(value) for value in ds.PatientOrientation)
        modality = str(ds.Modality) if ds.get("Modality") else None
        if photometric == "PALETTE COLOR":
            meta["bit_depth"] = 8
            return MedicalImage(_palette(ds, stored, factor), str(path), modality, photometric="RGB", meta=meta)
        if stored.ndim == 3:
            dtype = np.uint8 if stored.dtype == np.uint8 else np.float32
            colour = stored if dtype == np.uint8 and factor == 1 else _converted(stored, dtype, factor)
            return MedicalImage(colour, str(path), modality, photometric="RGB", meta=meta)
        pixels, voi, window = _grey(ds, index, stored, photometric, meta, factor)
    return MedicalImage(pixels, str(path), modality, photometric="MONOCHROME2", window=window, meta=meta, voi=voi)


def _dataset(path: Path, data: bytes | None, caught: list[warnings.WarningMessage]) -> Dataset:
    """Parse the file or its bytes (also without the 128-byte preamble) and require pixel data; ``caught`` holds
    the warnings raised meanwhile (pydicom's 'End of file reached' tells a truncated file)."""
    try:
        ds = pydicom.dcmread(BytesIO(data) if data is not None else path, force=True)
    except Exception as exc:
        raise ImageReadError(path, f"not a readable DICOM file: {one_line(exc)}") from exc
    if not any(keyword in ds for keyword in _PIXEL_KEYWORDS):
        if getattr(ds, "preamble", None) is None:
            raise ImageReadError(path, "not a DICOM file (no 'DICM' preamble and no pixel data found)")
        if any(str(warning.message).startswith("End of file reached") for warning in caught):
            raise ImageReadError(path, "DICOM file is truncated (it ends before its pixel data is complete)")
        raise ImageReadError(path, "DICOM file has no pixel data (not an image object, or the file is truncated)")
    return ds


def _decode(path: Path, ds: Dataset, index: int, syntax: UID | None) -> np.ndarray:
    """Frame ``index`` decoded: read-only, and for a single frame of native pixel data a view of the file's bytes
    where pydicom can (a frame of several is a copy, not to keep the others alive). The dataset then lets go of its
    pixel data, so a decoded copy does not sit beside the bytes it came from."""
    _check_length(path, ds, syntax)
    try:
        stored = pixel_array(ds, index=index, view_only=int(ds.get("NumberOfFrames") or 1) == 1)
    except Exception as exc:
        encapsulated = syntax is not None and syntax.is_encapsulated
        damage = "the compressed data is corrupt or truncated: " if encapsulated else ""
        raise ImageReadError(
            path, f"cannot decode DICOM pixel data ({_syntax_name(syntax)}): {damage}{one_line(exc)}"
        ) from exc
    for keyword in _PIXEL_KEYWORDS:
        if keyword in ds:
            del ds[keyword]
    return stored


def _check_length(path: Path, ds: Dataset, syntax: UID | None) -> None:
    """Raise when native (uncompressed) pixel data is shorter than the image its header describes."""
    if syntax is None or syntax.is_encapsulated:
        return
    try:
        expected = int(get_expected_length(ds, unit="bytes"))
    except (AttributeError, KeyError, TypeError, ValueError):
        return  # incomplete pixel module: pydicom's decoder names the problem
    held = next(len(ds[keyword].value or b"") for keyword in _PIXEL_KEYWORDS if keyword in ds)
    if held < expected:
        raise ImageReadError(
            path, f"cannot decode DICOM pixel data: it is truncated ({held} bytes; its header describes {expected})"
        )


def _dimensions(path: Path, ds: Dataset) -> tuple[int, int]:
    try:
        return int(ds.Rows), int(ds.Columns)
    except (AttributeError, TypeError, ValueError) as exc:
        raise ImageReadError(path, "DICOM image lacks valid Rows/Columns") from exc


def _syntax_name(syntax: UID | None) -> str:
    """'JPEG Baseline (Process 1) (1.2.840.10008.1.2.4.50)', the bare UID when unnamed, or a placeholder."""
    if not syntax:
        return "unknown transfer syntax"
    return f"{syntax.name} ({syntax})" if syntax.name != str(syntax) else str(syntax)


def _require_decoder(path: Path, syntax: UID | None) -> None:
    """Raise naming the transfer syntax and the package to install when no decoder can handle it."""
    if not syntax:
        return
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError as exc:
        raise ImageReadError(path, f"pixel data in {_syntax_name(syntax)} cannot be decoded by pydicom") from exc
    if not decoder.is_available:
        packages = _DECODER_PACKAGES.get(str(syntax)) or "; ".join(decoder.missing_dependencies)
        raise ImageReadError(path, f"no decoder installed for {_syntax_name(syntax)}; install: pip install {packages}")


def _grey(
    ds: Dataset, index: int, stored: np.ndarray, photometric: str, meta: dict, factor: int
) -> tuple[np.ndarray, HeaderVOI | None, tuple[float, float] | None]:
    """Apply the Modality LUT and MONOCHROME1 inversion (band by band, reducing by ``factor``); return pixels,
    the header VOI and its window."""
    if ds.get("ModalityLUTSequence"):
        source: Dataset | None = ds
    else:
        source = _attribute_source(ds, index, "PixelValueTransformationSequence", "RescaleSlope")
    if source is not None and "RescaleSlope" in source and "RescaleIntercept" in source:
        meta["rescale_slope"] = float(source.RescaleSlope)
        meta["rescale_intercept"] = float(source.RescaleIntercept)
    meta["modality_lut"] = bool(ds.get("ModalityLUTSequence"))
    offset = None
    if photometric == "MONOCHROME1":
        offset = _inversion_offset(ds, stored, source)
        meta["inverted"] = True
        meta["inversion_offset"] = offset
    voi, window = _header_voi(ds, index, offset, meta)
    unchanged_8bit = stored.dtype == np.uint8 and source is None and offset in (None, 255.0)

    def values(band: np.ndarray) -> np.ndarray:
        mapped = (apply_modality_lut(band, source) if source is not None else band).astype(np.float64)
        return offset - mapped if offset is not None else mapped

    rows, columns = reduced_shape(stored.shape[0], stored.shape[1], factor)
    out = np.empty((rows, columns), np.uint8 if unchanged_8bit else np.float32)
    return fill_rows(out, map(values, row_bands(stored, factor)), factor), voi, window


def _palette(ds: Dataset, stored: np.ndarray, factor: int) -> np.ndarray:
    """PALETTE COLOR indices as RGB through the colour LUT, band by band: uint8 for an 8-bit LUT, else float32
    (16-bit entries / 257)."""
    wide = apply_color_lut(stored[:1, :1], ds).dtype == np.uint16

    def colours(band: np.ndarray) -> np.ndarray:
        rgb = apply_color_lut(band, ds)
        return rgb / 257.0 if wide else rgb

    rows, columns = reduced_shape(stored.shape[0], stored.shape[1], factor)
    out = np.empty((rows, columns, 3), np.float32 if wide else np.uint8)
    return fill_rows(out, map(colours, row_bands(stored, factor)), factor)


def _converted(stored: np.ndarray, dtype: type, factor: int) -> np.ndarray:
    """``stored`` (a colour frame) as ``dtype``, reduced by ``factor``, band by band."""
    rows, columns = reduced_shape(stored.shape[0], stored.shape[1], factor)
    return fill_rows(np.empty((rows, columns, 3), dtype), row_bands(stored, factor), factor)


def _inversion_offset(ds: Dataset, stored: np.ndarray, source: Dataset | None) -> float:
    """Smallest plus largest value the frame can hold after the Modality LUT."""
    if np.issubdtype(stored.dtype, np.floating):
        return float(stored.min()) + float(stored.max())
    bits = int(ds.get("BitsStored") or stored.dtype.itemsize * 8)
    signed = int(ds.get("PixelRepresentation") or 0) == 1
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    bounds = np.array([low, high], dtype=np.int64)
    if source is not None:
        bounds = apply_modality_lut(bounds, source)
    return float(np.min(bounds)) + float(np.max(bounds))


def _header_voi(
    ds: Dataset, index: int, offset: float | None, meta: dict
) -> tuple[HeaderVOI | None, tuple[float, float] | None]:
    """The frame's header VOI and display window; sets ``meta["window_source"]`` (see ``read_dicom``)."""
    meta["window_source"] = None
    source = _attribute_source(ds, index, "FrameVOILUTSequence", "WindowCenter")
    voi = _window_voi(source, offset) if source is not None else None
    if voi is not None:
        meta["window_source"], meta["voi_lut_function"] = "header", voi.function
        return voi, voi.window
    source = _attribute_source(ds, index, "FrameVOILUTSequence", "VOILUTSequence")
    item = source.VOILUTSequence[0] if source is not None and source.VOILUTSequence else None
    descriptor = _lut_descriptor(item)
    if item is None or descriptor is None:
        return None, None
    entries = _lut_entries(ds, item, descriptor)
    voi = HeaderVOI(lut_descriptor=descriptor, lut_data=entries or (), inversion_offset=offset)
    meta["window_source"] = "voi_lut" if entries is not None else "voi_lut_range"
    return (voi if entries is not None else None), voi.window


def _window_voi(source: Dataset, offset: float | None) -> HeaderVOI | None:
    """Window Center/Width and VOI LUT Function (unknown terms read as LINEAR), or None when unusable."""
    try:
        centre, width = _first(source.WindowCenter), _first(source.get("WindowWidth"))
    except (TypeError, ValueError, IndexError):
        return None
    function = str(source.get("VOILUTFunction") or "LINEAR").strip().upper()
    function = function if function in VOI_LUT_FUNCTIONS else "LINEAR"
    # PS3.3 C.11.2.1.2: LINEAR needs a width of at least 1, LINEAR_EXACT and SIGMOID a positive one.
    usable = width >= 1 if function == "LINEAR" else width > 0
    if not (usable and math.isfinite(centre) and math.isfinite(width)):
        return None
    return HeaderVOI(centre=centre, width=width, function=function, inversion_offset=offset)


def _lut_descriptor(item: Dataset | None) -> tuple[int, int, int] | None:
    """LUT Descriptor (entries, 0 meaning 65536; first mapped value; bits per entry) for two entries or more."""
    if item is None:
        return None
    try:
        entries, first, bits = (int(value) for value in item.LUTDescriptor)
    except (AttributeError, TypeError, ValueError):
        return None
    return (entries, first, bits) if (entries or 65536) > 1 else None


def _lut_entries(ds: Dataset, item: Dataset, descriptor: tuple[int, int, int]) -> tuple[int, ...] | None:
    """The VOI LUT's entries as pydicom decodes its LUT Data (US, or OW in the file's byte order).

    None when pydicom cannot use the LUT (unsupported bits per entry, too little data, ...).
    """
    view = Dataset()
    view.VOILUTSequence = [item]
    view.set_original_encoding(*ds.original_encoding)
    entries, first = descriptor[0] or 65536, descriptor[1]
    try:
        return tuple(int(value) for value in apply_voi(np.arange(first, first + entries), view))
    except (NotImplementedError, AttributeError, LookupError, TypeError, ValueError, struct.error):
        return None  # e.g. 12 bits per entry, LUT Data shorter than the descriptor says, unknown byte order


def _first(value: Any) -> float:
    """The first of a possibly multi-valued DICOM number."""
    return float(value[0] if isinstance(value, (MultiValue, list, tuple)) else value)


def _spacing(ds: Dataset, index: int) -> tuple[float, float] | None:
    """Row and column spacing in mm (Pixel Spacing, else Imager Pixel Spacing), or None."""
    candidates = (
        _attribute_source(ds, index, "PixelMeasuresSequence", "PixelSpacing"),
        ds.get("ImagerPixelSpacing"),
    )
    for candidate in candidates:
        values = candidate.PixelSpacing if isinstance(candidate, Dataset) else candidate
        if values is None:
            continue
        try:
            row, column = (float(value) for value in values)
        except (TypeError, ValueError):
            continue
        if row > 0 and column > 0:
            return row, column
    return None


def _attribute_source(ds: Dataset, index: int, group: str, keyword: str) -> Dataset | None:
    """The dataset holding ``keyword`` for frame ``index``: top level, else per-frame, else shared functional group."""
    if keyword in ds:
        return ds
    for sequence, position in (("PerFrameFunctionalGroupsSequence", index), ("SharedFunctionalGroupsSequence", 0)):
        groups = ds.get(sequence)
        if groups and position < len(groups):
            items = groups[position].get(group)
            if items and keyword in items[0]:
                return items[0]
    return None
