"""Reading medical images (PNG, JPEG, BMP, TIFF, DICOM, NIfTI) with explicit intensity conventions."""

from openmedclip.io.convert import to_model_input, to_model_picture
from openmedclip.io.discover import find_images
from openmedclip.io.formats import IMAGE_SUFFIXES
from openmedclip.io.image import MedicalImage
from openmedclip.io.reader import read_image, read_image_bytes
from openmedclip.io.windowing import WINDOW_PRESETS

__all__ = [
    "IMAGE_SUFFIXES",
    "WINDOW_PRESETS",
    "MedicalImage",
    "find_images",
    "read_image",
    "read_image_bytes",
    "to_model_input",
    "to_model_picture",
]
