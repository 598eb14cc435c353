"""What a REST service is started with: its models, optional index and file root, and its limits."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from openmedclip.errors import InvalidInputError

TOKEN_ENV = "OPENMEDCLIP_SERVE_TOKEN"
"""Environment variable holding the bearer token clients must send (``openmedclip serve --token`` replaces it)."""


@dataclass(frozen=True)
class ServeSettings:
    """Settings of :func:`openmedclip.serve.api.create_app`, checked when built (``InvalidInputError`` otherwise).

    ``models``: the names clients may ask for, the first being the default (empty: the index's model when there is
    an index, else the package's default model). ``index``: an index folder searched by ``POST /search``, built with
    one of the served models. ``root``: the only folder whose files clients may name by path (none without it).
    ``token``: the bearer token every endpoint but ``/health`` requires (None: open).
    """

    models: tuple[str, ...] = ()
    index: Path | None = None
    root: Path | None = None
    token: str | None = None
    max_upload_mb: float = 20.0
    """Largest request body, in MB (10^6 bytes); larger requests get 413 before their body is read."""
    max_volume_mb: float = 512.0
    """Largest decompressed size of an uploaded ``.nii.gz``, in MB."""
    timeout_s: float = 60.0
    """Longest time a request may take, waiting included (504 after it)."""
    max_concurrency: int = 2
    """How many requests run model work at once; the others wait their turn."""
    queue_wait_s: float = 30.0
    """Longest wait for a turn (503 after it)."""
    heatmap_size: int = 64
    """Largest side of a heat map returned as JSON (the map is averaged down to it)."""
    device: str | None = None
    precision: str = "auto"

    def __post_init__(self) -> None:
        for name in ("max_upload_mb", "max_volume_mb", "timeout_s", "queue_wait_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise InvalidInputError(f"{name} must be a positive number, got {value!r}")
        for name in ("max_concurrency", "heatmap_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name} must be a positive whole number, got {value!r}")
        if self.root is not None and not Path(self.root).is_dir():
            raise InvalidInputError(f"root {self.root} is not an existing folder")
        if self.token is not None and not self.token.strip():
            raise InvalidInputError("the bearer token is empty")
        if any(not name.strip() for name in self.models):
            raise InvalidInputError("a served model name is empty")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1_000_000)

    @property
    def max_volume_bytes(self) -> int:
        return int(self.max_volume_mb * 1_000_000)
