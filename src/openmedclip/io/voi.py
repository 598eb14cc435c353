"""The DICOM header VOI (PS3.3 C.11.2) as a small picklable record, applied by pydicom.

A :class:`HeaderVOI` keeps the attributes of one frame's VOI LUT Module that pydicom needs: Window
Center/Width with the VOI LUT Function (LINEAR, LINEAR_EXACT or SIGMOID), or a VOI LUT (LUT Descriptor
and LUT Data). :meth:`HeaderVOI.to_unit` rebuilds a minimal ``Dataset`` from them and calls
``pydicom.pixels.apply_voi_lut``, so the formulas and LUT indexing are pydicom's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

VOI_LUT_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
"""The defined terms of (0028,1056) VOI LUT Function; LINEAR is the default when absent."""

_WINDOW_BITS = 16
"""Bits Stored of the minimal dataset: pydicom's window output then spans 0..2**16 - 1."""


@dataclass(frozen=True)
class HeaderVOI:
    """One frame's header VOI, as a window or as a VOI LUT (``lut_descriptor`` set).

    The VOI maps the Modality LUT output, i.e. the pixel values *before* any MONOCHROME1 reflection;
    ``inversion_offset`` is the reader's reflection offset for MONOCHROME1 (pixels are
    ``offset - value``), else None.

    * window: ``centre``, ``width`` and ``function`` (one of ``VOI_LUT_FUNCTIONS``).
    * VOI LUT: ``lut_descriptor`` (number of entries, 0 meaning 65536; first input value mapped;
      bits per entry) and ``lut_data`` (the entries, as pydicom decodes the LUT Data).
    """

    centre: float = 0.0
    width: float = 0.0
    function: str = "LINEAR"
    lut_descriptor: tuple[int, int, int] | None = None
    lut_data: tuple[int, ...] = field(default=(), repr=False)
    inversion_offset: float | None = None

    @property
    def window(self) -> tuple[float, float]:
        """``(centre, width)`` in pixel units, for display: the header window, or the LUT's input range
        as a linear stand-in; reflected like the pixels for MONOCHROME1."""
        if self.lut_descriptor is not None:
            centre, width = lut_input_window(self.lut_descriptor)
        else:
            centre, width = self.centre, self.width
        return (self.inversion_offset - centre, width) if self.inversion_offset is not None else (centre, width)

    def dataset(self) -> Dataset:
        """A minimal dataset holding only this VOI LUT Module, as ``pydicom.pixels.apply_voi_lut`` reads it.

        Bits Stored and Pixel Representation only set the output range of pydicom's windowing
        (16-bit unsigned: 0..65535), which :meth:`to_unit` maps back onto 0..1.
        """
        from pydicom.dataset import Dataset

        ds = Dataset()
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsStored = _WINDOW_BITS
        ds.PixelRepresentation = 0
        if self.lut_descriptor is not None:
            item = Dataset()
            item.LUTDescriptor = list(self.lut_descriptor)
            item.add_new("LUTData", "US", list(self.lut_data))
            ds.VOILUTSequence = [item]
        else:
            ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction = self.centre, self.width, self.function
        return ds

    def to_unit(self, pixels: np.ndarray) -> np.ndarray:
        """Apply the VOI to ``pixels`` with pydicom and map its output range onto 0..1 (float32).

        The output range is 0..2**bits - 1 for a VOI LUT (bits: the descriptor's third value) and
        pydicom's window output range otherwise. VOI LUT inputs are rounded to integers and clipped to
        the LUT's input range first, which is how the standard maps values beyond it. For MONOCHROME1
        the VOI is applied to ``offset - pixels`` and its output reversed, so bright still means dense.
        """
        values = pixels.astype(np.float64)
        if self.inversion_offset is not None:
            values = self.inversion_offset - values
        if self.lut_descriptor is not None:
            entries, first, bits = self.lut_descriptor
            values = np.clip(np.rint(values), first, first + (entries or 65536) - 1).astype(np.int64)
            top = 2**bits - 1
        else:
            top = 2**_WINDOW_BITS - 1
        from pydicom.pixels import apply_voi_lut

        unit = np.asarray(apply_voi_lut(values, self.dataset()), dtype=np.float64) / top
        if self.inversion_offset is not None:
            unit = 1.0 - unit
        return np.clip(unit, 0.0, 1.0).astype(np.float32)


def lut_input_window(descriptor: tuple[int, int, int]) -> tuple[float, float]:
    """The input range of a VOI LUT as a linear ``(centre, width)``: first entry to last entry."""
    entries, first = descriptor[0] or 65536, descriptor[1]
    return first + (entries - 1) / 2.0, float(entries - 1)
