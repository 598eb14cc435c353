"""``openmedclip download NAME``: against a loopback hub, never the internet; offline mode stays on around it."""

from __future__ import annotations

import hashlib
import socket
import time

import huggingface_hub.constants
import pytest
from cli_support import assert_usage_error, python

from fake_hub import MODEL_FILES, FakeHub, publish_tiny_biomedclip
from openmedclip.models.families.open_clip.config import OpenClipEntry
from openmedclip.models.registry import REGISTRY, RegistryEntry, registry
from tiny_models import BIOMEDBERT, BIOMEDCLIP_REPO, write_tiny_biomedclip_folder

NAME = "test/tiny-biomedclip"
REPO = "org/tiny-biomedclip"


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return write_tiny_biomedclip_folder(tmp_path_factory.mktemp("tiny_biomedclip"))


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """An empty Hugging Face cache, no $OPENMEDCLIP_MODELS, offline mode on."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.delenv("OPENMEDCLIP_MODELS", raising=False)
    return cache


@pytest.fixture()
def hub(monkeypatch, source):
    """The tiny model published on a loopback hub at $HF_ENDPOINT."""
    with FakeHub() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        publish_tiny_biomedclip(server, source, REPO)
        yield server


def _register(monkeypatch, **fields) -> RegistryEntry:
    registry()
    fields = {"hf_repo": REPO, "needs": (BIOMEDBERT,), "files": MODEL_FILES, **fields}
    entry = RegistryEntry(NAME, "open_clip", description="tiny test model", config=OpenClipEntry(), **fields)
    monkeypatch.setitem(REGISTRY, NAME, entry)
    return entry


def test_download_into_models_folder_shows_destination_and_checksums(cli, hub, source, monkeypatch, tmp_path):
    digest = hashlib.sha256((source / "open_clip_model.safetensors").read_bytes()).hexdigest()
    _register(monkeypatch, checksums={"open_clip_model.safetensors": f"sha256:{digest}"})
    monkeypatch.setenv("OPENMEDCLIP_MODELS", str(tmp_path / "zoo"))

    result = cli("download", NAME)

    folder = tmp_path / "zoo" / NAME
    assert result.code == 0, result.err
    assert f"{NAME}: repository {REPO} -> {folder}" in result.out
    assert f"2 file(s) in {folder}" in result.out
    assert "checksum sha256 ok: open_clip_model.safetensors" in result.out
    assert f"config and tokenizer files of {BIOMEDBERT} in {folder / BIOMEDBERT}" in result.out
    assert f"openmedclip finds it as '{NAME}'" in result.out
    assert huggingface_hub.constants.HF_HUB_OFFLINE is True


def test_download_to_a_folder_into_the_cache_and_again(cli, hub, monkeypatch, tmp_path, isolated):
    _register(monkeypatch, files=(), revision="main")
    out = tmp_path / "models" / NAME
    to_folder = cli("download", NAME, "--to", out)
    assert to_folder.code == 0, to_folder.err
    assert f"-> {out}" in to_folder.out and "checksums: none published (files not verified)" in to_folder.out
    assert f"load it as '{NAME}' with OPENMEDCLIP_MODELS={tmp_path / 'models'}" in to_folder.out

    into_cache = cli("download", NAME, "--cache")
    assert into_cache.code == 0, into_cache.err
    assert f"-> the Hugging Face cache {isolated}" in into_cache.out
    assert f"openmedclip finds it as '{NAME}'" in into_cache.out
    again = cli("download", NAME, "--cache", "--force")
    assert again.code == 0 and again.out.count("file(s) in") == 1


def test_wrong_checksum_is_one_error_line(cli, hub, monkeypatch, tmp_path):
    _register(monkeypatch, checksums={"open_clip_config.json": "md5:" + "f" * 32})
    result = cli("download", NAME, "--to", tmp_path / "out")
    assert result.code == 2 and "Traceback" not in result.err
    error = result.error_lines[-1]  # after the download's progress bars
    assert error.startswith(f"error: model '{NAME}': checksum mismatch for open_clip_config.json: ")
    assert "expected md5:" + "f" * 32 in error and "got md5:" in error
    assert not (tmp_path / "out" / "open_clip_config.json").exists()


def test_unreachable_hub_is_one_error_line_at_once(cli, monkeypatch):
    _register(monkeypatch)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    start = time.monotonic()
    result = cli("download", NAME)
    assert time.monotonic() - start < 5
    assert_usage_error(result, f"cannot reach the Hugging Face hub at http://127.0.0.1:{port}")


def test_model_off_the_hub_prints_where_to_get_it(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("OPENMEDCLIP_MODELS", str(tmp_path))
    result = cli("download", "chexzero")
    assert result.code == 1 and "Traceback" not in result.err
    assert "github.com/rajpurkarlab/CheXzero" in result.out and f"put them in {tmp_path / 'chexzero'}" in result.out


def test_model_off_the_hub_with_needs_prints_where_to_get_it_and_fetches_the_rest(cli, hub, monkeypatch, tmp_path):
    _register(monkeypatch, hf_repo="", files=("best.pt",), download_url="https://example.org/tiny")
    result = cli("download", NAME, "--to", tmp_path / "out")
    assert result.code == 1, result.err
    assert "1. get these files: best.pt from https://example.org/tiny" in result.out
    assert f"2. put them in {tmp_path / 'out'}" in result.out
    assert f"config and tokenizer files of {BIOMEDBERT} in {tmp_path / 'out' / BIOMEDBERT}" in result.out
    assert (tmp_path / "out" / BIOMEDBERT / "vocab.txt").is_file()


def test_fresh_process_with_hf_hub_offline_downloads_then_loads_offline(source, tmp_path):
    cache = tmp_path / "fresh-cache"
    with FakeHub() as hub:
        publish_tiny_biomedclip(hub, source, BIOMEDCLIP_REPO)
        env = {"HF_HUB_OFFLINE": "1", "HF_ENDPOINT": hub.url, "HF_HUB_CACHE": str(cache), "OPENMEDCLIP_MODELS": ""}
        done = python("-m", "openmedclip.cli", "download", "biomedclip", env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "openmedclip finds it as 'biomedclip'" in done.stdout
        requests = len(hub.requests)
        probe = "from openmedclip.models import load_model; print(load_model('biomedclip', device='cpu').spec.source)"
        loaded = python("-c", probe, env=env)
        assert loaded.returncode == 0, loaded.stderr[-3000:]
        assert len(hub.requests) == requests
    assert loaded.stdout.strip().endswith("open_clip_model.safetensors") and str(cache) in loaded.stdout
