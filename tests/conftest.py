"""Shared test set-up: offline hub access, the real-data folder, tiny models."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# What the code caches on disk (text classifiers) goes to a throw-away folder, never the user's home.
os.environ["OPENMEDCLIP_CACHE"] = tempfile.mkdtemp(prefix="openmedclip-test-cache-")
# 'auto' (inference's default) resolves to fp32, the precision the expected numbers were computed in; tests of the
# per-device policy remove the variable.
os.environ.setdefault("OPENMEDCLIP_PRECISION", "fp32")

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_data_dir() -> Path:
    return Path(os.environ.get("OPENMEDCLIP_TEST_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real medical data folder (``../shared/data``); tests using it skip when it is absent."""
    root = _shared_data_dir()
    if not (root / "README.md").is_file():
        pytest.skip(f"real test data not found at {root} (set OPENMEDCLIP_TEST_DATA to its folder)")
    return root


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny open_clip model saved in hub format (ViT image tower, open_clip text tower)."""
    from tiny_models import write_tiny_openclip_folder

    return write_tiny_openclip_folder(tmp_path_factory.mktemp("tiny_openclip"))


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    """The tiny model loaded through ``load_model`` (fp32, CPU)."""
    from openmedclip.models import load_model

    return load_model(tiny_model_dir, device="cpu")


@pytest.fixture()
def ct_dicom(tmp_path) -> Path:
    """A 40 x 44 CT slice in Hounsfield units (stored values with RescaleIntercept -1024), deterministic."""
    import numpy as np

    from dicom_files import build_dicom

    stored = np.random.default_rng(1).integers(0, 2500, (40, 44)).astype(np.uint16)
    path = tmp_path / "ct.dcm"
    build_dicom(stored, Modality="CT", RescaleIntercept=-1024, RescaleSlope=1).save_as(path, enforce_file_format=True)
    return path


@pytest.fixture()
def image_folder(tmp_path) -> Path:
    """Six small random RGB/grey PNGs in a folder tree, deterministic."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    (tmp_path / "sub").mkdir()
    for i in range(6):
        folder = tmp_path / "sub" if i % 2 else tmp_path
        shape = (40 + i, 48, 3) if i % 3 else (40, 44)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(folder / f"img{i}.png")
    return tmp_path
