"""Fixtures for the model-loading tests: an isolated hub cache, the tiny BiomedCLIP folder, a tiny architecture."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tiny_models import tiny_openclip_config, write_tiny_biomedclip_folder

TINY_ARCH = "Tiny-ViT-test"


@pytest.fixture(autouse=True)
def hf_cache(monkeypatch, tmp_path) -> Path:
    """An empty Hugging Face cache for each test (ours reads $HF_HUB_CACHE, open_clip/transformers the constant)."""
    import huggingface_hub.constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("OPENMEDCLIP_MODELS", raising=False)
    return cache


@pytest.fixture(scope="session")
def tiny_biomedclip_source(tmp_path_factory) -> Path:
    """The tiny BiomedCLIP-shaped folder, written once; copy it before changing anything."""
    return write_tiny_biomedclip_folder(tmp_path_factory.mktemp("tiny_biomedclip"))


@pytest.fixture()
def tiny_biomedclip_dir(tiny_biomedclip_source, tmp_path) -> Path:
    """A private copy of the tiny BiomedCLIP-shaped folder."""
    return Path(shutil.copytree(tiny_biomedclip_source, tmp_path / "biomedclip"))


@pytest.fixture()
def tiny_arch(monkeypatch) -> str:
    """The tiny open_clip config registered as an open_clip architecture name for one test."""
    from openmedclip.models.families.open_clip.catalog import EXTRA_ARCHITECTURES

    monkeypatch.setitem(EXTRA_ARCHITECTURES, TINY_ARCH, tiny_openclip_config()["model_cfg"])
    return TINY_ARCH
