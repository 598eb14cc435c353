"""The image record every reader returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np
from PIL import Image

from openmedclip.io.voi import HeaderVOI


class _Pixels:
    """The ``pixels`` field: an array, or a decoded 8-bit PIL picture (mode 'L' or 'RGB') made into the array the
    first time ``pixels`` is read, so a picture that goes straight to a preprocess is never copied."""

    @overload
    def __get__(self, image: None, owner: type) -> _Pixels: ...
    @overload
    def __get__(self, image: MedicalImage, owner: type | None = None) -> np.ndarray: ...

    def __get__(self, image: MedicalImage | None, owner: type | None = None) -> np.ndarray | _Pixels:
        if image is None:
            raise AttributeError("pixels")  # no default value for the dataclass field
        value = image.__dict__["_pixels"]
        if isinstance(value, Image.Image):
            value = image.__dict__["_pixels"] = np.asarray(value)  # read-only, like the picture
        return value

    def __set__(self, image: MedicalImage, value: np.ndarray | Image.Image) -> None:
        image.__dict__["_pixels"] = value
        image.__dict__["_picture"] = value if isinstance(value, Image.Image) else None


@dataclass
class MedicalImage:
    """A 2-D image as uint8 or float32 pixels plus the metadata needed to display it.

    Intensity conventions:

    * ``pixels`` has shape ``(H, W)`` for grey or ``(H, W, 3)`` for RGB and is always finite: uint8 where
      the source is 8-bit and its values pass unchanged (8-bit PNG/JPEG/BMP/TIFF, 8-bit DICOM without a
      Modality LUT), float32 otherwise (16-bit and float data, rescaled DICOM, NIfTI).
    * Values are in the image's physical or stored units, never rescaled for display:
      DICOM after the Modality LUT (rescale slope/intercept, so Hounsfield units for CT);
      16-bit PNG/TIFF and NIfTI as stored (NIfTI after its scl_slope/scl_inter); 8-bit images as 0..255.
    * Grey images follow MONOCHROME2 semantics: bright means dense. MONOCHROME1 DICOM and
      min-is-white TIFF pixels are reflected as ``offset - value``; ``meta["inverted"]`` is then True
      and ``meta["inversion_offset"]`` holds ``offset`` so the stored values can be recovered.
    * ``window`` is ``(centre, width)`` in the units of ``pixels``: the caller's choice, else the DICOM
      header's (reflected like the pixels for MONOCHROME1; for a VOI LUT its input range as a linear
      stand-in), else None. It is recorded, not applied: ``openmedclip.io.to_model_input`` applies it.
    * ``voi`` is the DICOM header VOI (window with its VOI LUT Function, or a VOI LUT) behind a header
      ``window``, else None. ``to_model_input`` applies it through pydicom instead of the linear
      ``window`` while ``window`` is still ``voi.window`` and ``meta["window_source"]`` is not 'user'.

    ``meta`` always has ``format``, ``bit_depth`` (bits per stored sample), ``frame``, ``n_frames``,
    ``inverted`` and ``spacing`` (row, column spacing in mm, or None); readers add format details
    (rescale, transfer syntax, slice choice and orientation, ...).

    ``pixels`` may be given as an 8-bit PIL picture (mode 'L' or 'RGB'): it reads back as the uint8 array, and
    ``picture`` keeps the picture for the conversion to model input, which then needs no copy.
    """

    pixels: _Pixels = _Pixels()  # a descriptor without a class-level value: still a required field
    path: str  # type: ignore[misc]  # mypy takes the descriptor for a default
    modality: str | None = None
    photometric: str = "MONOCHROME2"
    window: tuple[float, float] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    voi: HeaderVOI | None = None

    @property
    def picture(self) -> Image.Image | None:
        """The 8-bit PIL picture ``pixels`` was given as (so equal to ``pixels``), or None."""
        return self.__dict__.get("_picture")
