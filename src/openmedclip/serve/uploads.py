"""The image a request is about: an uploaded file (any format :mod:`openmedclip.io` reads, DICOM and NIfTI
included) or a path under the service's root, with the reading options of ``read_image``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from fastapi import Depends, File, Form, HTTPException, Request, UploadFile, status

from openmedclip.errors import ImageReadError
from openmedclip.io import MedicalImage, read_image, read_image_bytes
from openmedclip.io.windowing import resolve_window
from openmedclip.serve.access import resolve_under_root

Axis = Literal["axial", "coronal", "sagittal"]


@dataclass(frozen=True)
class ImageSource:
    """An image to read: uploaded bytes (``data``) or a checked file under the root (``path``), named ``name``."""

    name: str
    data: bytes | None = None
    path: Path | None = None
    window: str | None = None
    frame: int | None = None
    slice_index: int | None = None
    axis: Axis = "axial"

    def read(self, max_volume_bytes: int) -> MedicalImage:
        """Decode the image (blocking: call it on a worker); errors name the upload or the client's path."""
        options: dict[str, Any] = {"window": self.window, "frame": self.frame, "slice_index": self.slice_index,
                                   "axis": self.axis}
        if self.data is not None:
            return read_image_bytes(self.data, self.name, max_volume_bytes=max_volume_bytes, **options)
        assert self.path is not None
        try:
            image = read_image(self.path, **options)
        except ImageReadError as error:  # the client knows the file by its name under the root
            raise ImageReadError(self.name, error.problem) from None
        image.path = self.name
        return image


def parse_window(text: str | None) -> str | None:
    """A window preset name or ``'centre,width'``, checked and stripped (the readers tell a preset from numbers);
    None (or blank) stays None."""
    if text is None or not text.strip():
        return None
    resolve_window(text.strip())
    return text.strip()


def _upload_name(upload: UploadFile) -> str:
    """The upload's base file name (its suffix may tell its format), or 'upload'."""
    return PurePosixPath((upload.filename or "").replace("\\", "/")).name or "upload"


def _bad_request(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_400_BAD_REQUEST, detail)


FileField = Annotated[
    UploadFile | None, File(description="The image: PNG, JPEG, BMP, TIFF, DICOM or NIfTI (.nii, .nii.gz).")
]
PathField = Annotated[
    str | None,
    Form(max_length=4096, description="Instead of a file: a file under the service's root (relative to it)."),
]
WindowField = Annotated[
    str | None,
    Form(max_length=100, description="Display window: a preset (lung, mediastinum, bone, brain, abdomen, soft "
         "tissue, liver) or 'centre,width' in pixel units; replaces the file's own."),
]
FrameField = Annotated[int | None, Form(ge=0, description="DICOM frame, TIFF page or 4-D NIfTI volume.")]
SliceField = Annotated[int | None, Form(ge=0, description="NIfTI slice along the axis (default: the middle).")]
AxisField = Annotated[Axis, Form(description="NIfTI slice plane.")]


async def optional_image(
    request: Request,
    file: FileField = None,
    path: PathField = None,
    window: WindowField = None,
    frame: FrameField = None,
    slice_index: SliceField = None,
    axis: AxisField = "axial",
) -> ImageSource | None:
    """The request's image (an upload or a path under the root), or None when it names none."""
    if file is not None and path is not None:
        raise _bad_request("send either an image file ('file') or a 'path' under the root, not both")
    if file is None and path is None:
        return None
    chosen_window = parse_window(window)
    if file is not None:
        data = await file.read()
        return ImageSource(_upload_name(file), data=data, window=chosen_window, frame=frame,
                           slice_index=slice_index, axis=axis)
    assert path is not None
    target = resolve_under_root(request.app.state.settings.root, path)
    return ImageSource(path, path=target, window=chosen_window, frame=frame, slice_index=slice_index, axis=axis)


async def required_image(source: Annotated[ImageSource | None, Depends(optional_image)]) -> ImageSource:
    """The request's image; 400 when it names none."""
    if source is None:
        raise _bad_request("no image: send an image file ('file') or a 'path' under the root")
    return source
