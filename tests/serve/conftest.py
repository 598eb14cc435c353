"""The REST service under test: real HTTP on loopback (uvicorn in a background thread, httpx clients), the bundled
``openmedclip-base`` model loaded once for every server, and a served root with real images in it."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import nibabel
import pytest
import uvicorn
from pydicom.data import get_testdata_file

from openmedclip.models.loaded import LoadedModel
from openmedclip.serve.api import create_app
from openmedclip.serve.session import ModelPool
from openmedclip.serve.settings import ServeSettings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NIBABEL_FILES = Path(nibabel.__file__).parent / "tests" / "data"
MODEL = "openmedclip-base"


def _shipped_dicom(name: str) -> Path:
    """A DICOM file shipped with pydicom or pydicom-data on this machine (never downloaded)."""
    found = get_testdata_file(name, download=False)
    if found is None:
        pytest.skip(f"{name} is not shipped locally")
    return Path(found)


@dataclass
class LiveServer:
    """A running service: its address, its application and its settings."""

    url: str
    app: object
    settings: ServeSettings

    def client(self, **options) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **options)


@contextmanager
def live_server(settings: ServeSettings, pool: ModelPool) -> Iterator[LiveServer]:
    """``create_app(settings, pool=pool)`` served by uvicorn on a free loopback port until the block ends."""
    app = create_app(settings, pool=pool)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield LiveServer(f"http://127.0.0.1:{listener.getsockname()[1]}", app, settings)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        listener.close()


@pytest.fixture(scope="session")
def pool() -> ModelPool:
    """The bundled model, loaded once and shared by every test server (fp32 on the CPU)."""
    shared = ModelPool(MODEL, device="cpu", precision="fp32")
    shared.get()
    return shared


@pytest.fixture(scope="session")
def model(pool) -> LoadedModel:
    """The served model itself, for calling the library directly."""
    return pool.get()


@pytest.fixture(scope="session")
def served_root(tmp_path_factory) -> Path:
    """The served root: the example PNG/JPEG files, and in ``scans/`` a CT DICOM (``ct.dcm``), a 4-D gzip NIfTI
    series (``volume.nii.gz``) and a 3-D NIfTI volume (``anatomical.nii``); plus a secret file beside the root and a
    link inside it that leads to that secret (``escape.png``)."""
    base = tmp_path_factory.mktemp("serve")
    root = base / "root"
    (root / "scans").mkdir(parents=True)
    for example in EXAMPLES.glob("*.png"):
        shutil.copy(example, root / example.name)
    shutil.copy(EXAMPLES / "head_ct.jpg", root / "head_ct.jpg")
    shutil.copy(_shipped_dicom("CT_small.dcm"), root / "scans" / "ct.dcm")
    shutil.copy(NIBABEL_FILES / "example4d.nii.gz", root / "scans" / "volume.nii.gz")
    shutil.copy(NIBABEL_FILES / "anatomical.nii", root / "scans" / "anatomical.nii")
    secret = base / "secret.png"
    shutil.copy(EXAMPLES / "chest_xray_normal.png", secret)
    (root / "escape.png").symlink_to(secret)
    return root


@pytest.fixture(scope="session")
def make_server(pool) -> Iterator[Callable[..., LiveServer]]:
    """``make_server(**settings)``: a server with those settings (on the shared model unless ``pool`` is given),
    stopped at the end of the session."""
    with ExitStack() as servers:

        def make(pool_override: ModelPool | None = None, **settings) -> LiveServer:
            return servers.enter_context(live_server(ServeSettings(models=(MODEL,), **settings), pool_override or pool))

        yield make


@pytest.fixture(scope="session")
def server(make_server, served_root) -> LiveServer:
    """The service with default limits, the served root and no token."""
    return make_server(root=served_root)


@pytest.fixture()
def client(server) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http
