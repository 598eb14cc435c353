"""`MedMNIST`: one split of an official MedMNIST `.npz` file (2-D subsets), label names from `medmnist.INFO`."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from openmedclip.data.base import DataSource, Task
from openmedclip.errors import InvalidInputError
from openmedclip.io.image import MedicalImage

if TYPE_CHECKING:
    from numpy.lib.npyio import NpzFile

SPLITS = ("train", "val", "test")


def medmnist_info() -> dict[str, dict]:
    """`medmnist.INFO` (imported lazily: the package pulls in torch)."""
    from medmnist.info import INFO

    return INFO


def infer_flag(path: Path) -> str:
    """The MedMNIST flag from a file name: `pneumoniamnist.npz` or `pneumoniamnist_224.npz` -> `pneumoniamnist`."""
    flag = re.sub(r"_\d+$", "", path.stem.lower())
    known = medmnist_info()
    if flag not in known:
        raise InvalidInputError(
            f"{path}: cannot tell the MedMNIST subset from the name; pass flag= one of {list(known)}"
        )
    return flag


def _numeric_array(npz: NpzFile, key: str, path: Path) -> np.ndarray:
    """Array `key` of an open .npz file; one of Python objects (which would need unpickling) is refused."""
    try:
        return npz[key]
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise InvalidInputError(
                f"{path}: array {key!r} holds Python objects, which are not loaded (they would need unpickling); "
                "MedMNIST arrays hold numbers"
            ) from None
        raise InvalidInputError(f"{path}: array {key!r} is not readable ({err})") from None


class MedMNIST(DataSource):
    """A MedMNIST split: uint8 images kept in memory, converted to RGB on access.

    Tasks binary-class, multi-class and ordinal-regression become "multiclass" (with `targets`);
    multi-label becomes "multilabel". Keys are `<flag>/<split>/<index>`.
    """

    def __init__(self, npz_path: str | Path, split: str = "train", flag: str | None = None, *, name: str | None = None):
        path = Path(npz_path)
        if split not in SPLITS:
            raise InvalidInputError(f"{path}: split must be one of {list(SPLITS)}, got {split!r}")
        if not path.is_file():
            raise InvalidInputError(f"{path}: MedMNIST file not found")
        flag = (flag or infer_flag(path)).lower()
        info = medmnist_info().get(flag)
        if info is None:
            raise InvalidInputError(f"unknown MedMNIST flag {flag!r}; known: {list(medmnist_info())}")
        images, raw = self._read(path, split)
        self.name = name or flag
        self.flag, self.split = flag, split
        self.label_names = [info["label"][str(j)] for j in range(len(info["label"]))]
        self.task: Task = "multilabel" if info["task"].startswith("multi-label") else "multiclass"
        self._images = images
        self.labels, self.targets = self._label_arrays(path, raw)
        self.keys = [f"{flag}/{split}/{i}" for i in range(len(images))]
        self.metadata = [{"split": split, "index": i} for i in range(len(images))]
        self.skipped = []

    @staticmethod
    def _read(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
        if not zipfile.is_zipfile(path):
            raise InvalidInputError(f"{path}: not a valid .npz file (not a zip archive of numpy arrays)")
        try:
            with np.load(path, allow_pickle=False) as npz:
                wanted = [f"{split}_images", f"{split}_labels"]
                missing = [k for k in wanted if k not in npz.files]
                if missing:
                    raise InvalidInputError(f"{path}: missing array(s) {missing}; arrays present: {npz.files}")
                images, raw = (_numeric_array(npz, key, path) for key in wanted)
        except (OSError, EOFError, zipfile.BadZipFile) as err:
            raise InvalidInputError(f"{path}: not a readable .npz file ({err})") from None
        grey = images.ndim == 3
        rgb = images.ndim == 4 and images.shape[-1] == 3
        if images.dtype != np.uint8 or not (grey or rgb):
            raise InvalidInputError(
                f"{path}: {split}_images must be uint8 2-D images (N,H,W) or (N,H,W,3), "
                f"got {images.dtype} {images.shape}"
            )
        raw = raw.reshape(len(raw), -1)
        if len(raw) != len(images):
            raise InvalidInputError(f"{path}: {len(images)} {split} images but {len(raw)} labels")
        return images, raw

    def _label_arrays(self, path: Path, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        n_labels = len(self.label_names)
        if self.task == "multilabel":
            if raw.shape[1] != n_labels:
                raise InvalidInputError(
                    f"{path}: labels have {raw.shape[1]} columns, {self.flag} has {n_labels} labels"
                )
            return raw.astype(np.float32), None
        targets = raw[:, 0].astype(np.int64)
        if raw.shape[1] != 1 or (len(targets) and not 0 <= targets.min() <= targets.max() < n_labels):
            raise InvalidInputError(f"{path}: labels must be one class index in [0, {n_labels}) per image")
        return np.eye(n_labels, dtype=np.float32)[targets], targets

    def image(self, i: int) -> MedicalImage:
        pixels = self._images[i]
        meta = {"format": "medmnist", "bit_depth": 8, "frame": 0, "n_frames": 1, "inverted": False, "spacing": None}
        photometric = "RGB" if pixels.ndim == 3 else "MONOCHROME2"
        return MedicalImage(pixels.astype(np.float32), self.keys[i], photometric=photometric, meta=meta)
