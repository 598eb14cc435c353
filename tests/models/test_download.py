"""``download_model``: a registry model's files fetched from a loopback hub, then loaded offline by name."""

from __future__ import annotations

import hashlib
import socket
import time
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
from huggingface_hub import try_to_load_from_cache
from safetensors.torch import load_file

from fake_hub import MODEL_FILES, TEXT_FILES, FakeHub, publish_tiny_biomedclip
from openmedclip.errors import ModelLoadError
from openmedclip.models import load_model
from openmedclip.models.download import Checksum, DownloadError, download_entry, download_model
from openmedclip.models.families.open_clip.config import OpenClipEntry
from openmedclip.models.locate import download_hint, registry_folder
from openmedclip.models.registry import REGISTRY, RegistryEntry, registry
from tiny_models import BIOMEDBERT

NAME = "test/tiny-biomedclip"
REPO = "org/tiny-biomedclip"


@pytest.fixture()
def hub(monkeypatch):
    """A loopback hub at $HF_ENDPOINT (read by the download at call time), with offline mode on as elsewhere.

    ``huggingface_hub.constants.ENDPOINT`` stays as it is: file URLs are built from the default endpoint and then
    rewritten to the one passed in, which fails when the constant is changed alone.
    """
    with FakeHub() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        yield server


@pytest.fixture()
def entry(monkeypatch):
    """``entry(**fields)`` registers the tiny test model under NAME for one test."""
    registry()

    def make(**fields) -> RegistryEntry:
        fields = {"hf_repo": REPO, "needs": (BIOMEDBERT,), "files": MODEL_FILES, **fields}
        made = RegistryEntry(NAME, "open_clip", description="tiny test model", config=OpenClipEntry(), **fields)
        monkeypatch.setitem(REGISTRY, NAME, made)
        return made

    return make


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_weights_equal(loaded, source: Path) -> None:
    expected = load_file(str(source / "open_clip_model.safetensors"))
    state = loaded.model.state_dict()
    assert state and all(torch.equal(value, expected[key]) for key, value in state.items())


def test_download_into_models_folder_then_load_by_name(hub, entry, tiny_biomedclip_source, tmp_path, monkeypatch,
                                                       hf_cache):
    publish_tiny_biomedclip(hub, tiny_biomedclip_source, REPO)
    published = _sha256(tiny_biomedclip_source / "open_clip_model.safetensors")
    entry(checksums={"open_clip_model.safetensors": f"sha256:{published}"})
    monkeypatch.setenv("OPENMEDCLIP_MODELS", str(tmp_path / "zoo"))

    folder = download_model(NAME)

    assert folder == tmp_path / "zoo" / NAME == registry_folder(REGISTRY[NAME])
    assert {path.name for path in folder.iterdir() if path.is_file()} == set(MODEL_FILES)  # no README, no .bin
    text = folder / BIOMEDBERT
    assert {path.name for path in text.iterdir() if path.is_file()} == set(TEXT_FILES)  # no text-tower weights
    assert not [path for path in hf_cache.rglob("*") if path.is_file() and "refs" not in path.parts]  # self-contained
    assert huggingface_hub.constants.HF_HUB_OFFLINE is True  # offline again after the download
    loaded = load_model(NAME, device="cpu")
    assert loaded.spec.source == str(folder / "open_clip_model.safetensors")
    assert Path(loaded.model.text.config.name_or_path) == text
    _assert_weights_equal(loaded, tiny_biomedclip_source)


def test_download_into_cache_then_load_offline(hub, entry, tiny_biomedclip_source, hf_cache):
    commit = publish_tiny_biomedclip(hub, tiny_biomedclip_source, REPO)
    entry(files=())  # the whole repository

    done = download_entry(REGISTRY[NAME])

    assert done.in_cache and done.folder == hf_cache / "models--org--tiny-biomedclip" / "snapshots" / commit
    assert set(done.files) == {*MODEL_FILES, "README.md", "open_clip_pytorch_model.bin"}
    assert isinstance(try_to_load_from_cache(BIOMEDBERT, "vocab.txt", cache_dir=str(hf_cache)), str)
    assert try_to_load_from_cache(BIOMEDBERT, "pytorch_model.bin", cache_dir=str(hf_cache)) is None
    requests = len(hub.requests)
    loaded = load_model(NAME, device="cpu")
    assert len(hub.requests) == requests  # loading is offline
    assert loaded.spec.source == str(done.folder / "open_clip_model.safetensors")
    _assert_weights_equal(loaded, tiny_biomedclip_source)


def test_download_of_some_files_into_cache_is_found(hub, entry, tiny_biomedclip_source):
    publish_tiny_biomedclip(hub, tiny_biomedclip_source, REPO)
    registered = entry()  # only the config and the safetensors of the repository
    folder = download_model(NAME, cache=True)
    assert {path.name for path in folder.iterdir()} == set(MODEL_FILES)
    assert registry_folder(registered) == folder


def test_revision_and_dataset_repository_are_requested(hub, entry, tiny_biomedclip_source, tmp_path):
    hub.add_repo(REPO, {name: b"other revision" for name in MODEL_FILES}, repo_type="dataset")
    commit = publish_tiny_biomedclip(hub, tiny_biomedclip_source, REPO, revision="v1.1", repo_type="dataset")
    entry(revision="v1.1", repo_type="dataset", files=())

    download_model(NAME)

    assert f"GET /api/datasets/{REPO}/revision/v1.1" in hub.requests
    assert f"GET /datasets/{REPO}/resolve/{commit}/open_clip_model.safetensors" in hub.requests
    assert not [line for line in hub.requests if f"/models/{REPO}" in line or line.endswith(f" /{REPO}")]
    _assert_weights_equal(load_model(NAME, device="cpu"), tiny_biomedclip_source)  # v1.1, not main


@pytest.mark.parametrize("into", ["folder", "cache"])
def test_wrong_checksum_names_the_file_and_leaves_no_bad_file(into, hub, entry, tiny_biomedclip_source, tmp_path,
                                                              hf_cache, monkeypatch):
    publish_tiny_biomedclip(hub, tiny_biomedclip_source, REPO)
    actual = _sha256(tiny_biomedclip_source / "open_clip_model.safetensors")
    entry(files=() if into == "cache" else MODEL_FILES, checksums={"open_clip_model.safetensors": "sha256:" + "0" * 64})
    if into == "folder":
        monkeypatch.setenv("OPENMEDCLIP_MODELS", str(tmp_path / "zoo"))

    with pytest.raises(DownloadError) as error:
        download_model(NAME)

    message = str(error.value)
    assert "open_clip_model.safetensors" in message and "sha256:" + "0" * 64 in message
    assert f"sha256:{actual}" in message
    root = tmp_path / "zoo" if into == "folder" else hf_cache
    assert not [path for path in root.rglob("*") if path.is_file() and _sha256(path) == actual]
    with pytest.raises(ModelLoadError):
        load_model(NAME, device="cpu")


def test_matching_md5_is_reported(hub, entry, tiny_biomedclip_source, tmp_path):
    publish_tiny_biomedclip(hub, tiny_biomedclip_source, REPO)
    digest = hashlib.md5((tiny_biomedclip_source / "open_clip_config.json").read_bytes()).hexdigest()
    entry(checksums={"open_clip_config.json": f"md5:{digest.upper()}"})
    done = download_entry(REGISTRY[NAME], to=tmp_path / "out")
    assert done.verified == (Checksum("open_clip_config.json", "md5", digest),)


def test_force_downloads_again(hub, entry, tiny_biomedclip_source, tmp_path):
    publish_tiny_biomedclip(hub, tiny_biomedclip_source, REPO)
    entry()
    folder = download_model(NAME, to=tmp_path / "out")
    (folder / "open_clip_config.json").write_text("{}", encoding="utf-8")
    download_model(NAME, to=tmp_path / "out", force=True)
    restored = (folder / "open_clip_config.json").read_bytes()
    assert restored == (tiny_biomedclip_source / "open_clip_config.json").read_bytes()


def test_unreachable_endpoint_fails_fast_with_a_clear_error(entry, monkeypatch):
    entry()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends: nothing listens there
    start = time.monotonic()
    with pytest.raises(DownloadError) as error:
        download_model(NAME, endpoint=f"http://127.0.0.1:{port}")
    assert time.monotonic() - start < 5
    assert f"cannot reach the Hugging Face hub at http://127.0.0.1:{port}" in str(error.value)


def test_silent_endpoint_times_out(entry, monkeypatch):
    entry()
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "1")
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        start = time.monotonic()
        with pytest.raises(DownloadError, match="no answer within 1 s"):
            download_model(NAME, endpoint="http://{}:{}".format(*silent.getsockname()))
        assert time.monotonic() - start < 5


@pytest.mark.parametrize(("fields", "problem"), [
    ({"hf_repo": "org/missing"}, "repository org/missing on http://127.0.0.1:"),
    ({"revision": "v9"}, "at revision 'v9' on http://127.0.0.1:"),
    ({"files": ("*.ckpt",)}, "has no file matching '*.ckpt'"),
])
def test_hub_problems_are_one_clear_line(fields, problem, hub, entry, tiny_biomedclip_source, tmp_path):
    publish_tiny_biomedclip(hub, tiny_biomedclip_source, REPO)
    entry(**fields)
    with pytest.raises(DownloadError) as error:
        download_model(NAME, to=tmp_path / "out")
    assert problem in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "out").exists()


def test_model_off_the_hub_gets_what_it_needs_and_says_where_to_get_the_rest(hub, entry, tiny_biomedclip_source,
                                                                             tmp_path, monkeypatch):
    publish_tiny_biomedclip(hub, tiny_biomedclip_source, REPO)
    entry(hf_repo="", files=("best.pt",), download_url="https://example.org/tiny")
    monkeypatch.setenv("OPENMEDCLIP_MODELS", str(tmp_path / "zoo"))

    done = download_entry(REGISTRY[NAME])

    assert done.folder is None and done.needs == {BIOMEDBERT: tmp_path / "zoo" / NAME / BIOMEDBERT}
    assert (tmp_path / "zoo" / NAME / BIOMEDBERT / "vocab.txt").is_file()
    assert "best.pt" in done.manual and "https://example.org/tiny" in done.manual
    assert str(tmp_path / "zoo" / NAME) in done.manual
    with pytest.raises(DownloadError, match="not on the Hugging Face hub"):
        download_model(NAME)


def test_chexzero_says_where_to_get_it_without_going_online(hub):
    with pytest.raises(DownloadError) as error:
        download_model("chexzero")
    message = str(error.value)
    assert "github.com/rajpurkarlab/CheXzero" in message and "$OPENMEDCLIP_MODELS/chexzero/" in message
    assert hub.requests == []


def test_bundled_model_is_already_installed(hub):
    assert download_model("openmedclip-base") == registry_folder(registry()["openmedclip-base"])
    assert hub.requests == []


def test_unknown_name_gives_the_load_model_message():
    with pytest.raises(ModelLoadError) as downloading:
        download_model("biomedclp")
    with pytest.raises(ModelLoadError) as loading:
        load_model("biomedclp")
    assert str(downloading.value) == str(loading.value) and "biomedclip" in str(loading.value)


def test_missing_model_hint_names_the_command_files_and_folder(entry, monkeypatch, tmp_path):
    monkeypatch.setenv("OPENMEDCLIP_MODELS", str(tmp_path))
    hint = download_hint(entry())
    assert f"openmedclip download {NAME}" in hint and f"into {tmp_path / NAME}" in hint
    assert "open_clip_config.json, open_clip_model.safetensors" in hint and f"https://huggingface.co/{REPO}" in hint
    assert f"$OPENMEDCLIP_MODELS/{NAME}/" in hint and f"https://huggingface.co/{BIOMEDBERT}" in hint
    with pytest.raises(ModelLoadError) as error:
        load_model(NAME, device="cpu")
    assert f"openmedclip download {NAME}" in str(error.value)
    manual = download_hint(entry(hf_repo="", needs=(), files=("best.pt",), download_url="https://example.org/tiny"))
    assert "openmedclip download" not in manual and "best.pt from https://example.org/tiny" in manual
