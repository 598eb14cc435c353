"""Shared test set-up: offline hub access, the real-data folder, tiny models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

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
