"""Options and value parsing shared by the commands. Light on purpose: typer and the standard library only, so
``openmedclip --help`` never waits for torch."""

from __future__ import annotations

import math
import os
from typing import Annotated, Any, Optional

import typer

from ..errors import InvalidInputError

ModelOption = Annotated[
    Optional[str],
    typer.Option("--model", "-m", help="Registry name, open_clip architecture, model folder or checkpoint file."),
]
DeviceOption = Annotated[Optional[str], typer.Option(help="cpu, cuda, cuda:1, mps (default: best available).")]
PrecisionOption = Annotated[
    str,
    typer.Option(
        help="auto (bf16 on a CPU with AVX-512 BF16 or AMX and on recent GPUs, fp16 on older GPUs, else fp32; "
        "$OPENMEDCLIP_PRECISION replaces it), fp32, bf16 or fp16 (GPU).",
    ),
]
WindowOption = Annotated[
    Optional[str],
    typer.Option(
        help="Display window: a preset (lung, mediastinum, bone, brain, abdomen, soft tissue, liver) "
        "or 'centre,width' in pixel units (e.g. '40,400'); replaces the file's own window.",
    ),
]

ForceWindowOption = Annotated[
    bool,
    typer.Option(
        "--force-window",
        help="Apply --window even where it does not fit the data (a CT preset needs CT in Hounsfield units; "
        "numbers need CT or a DICOM header window), with a warning per file.",
    ),
]

WINDOW_USAGE = "a preset name (e.g. lung) or 'centre,width' (two numbers, width > 0, e.g. '40,400')"


def window_read_options(text: str | None, force: bool) -> dict[str, Any] | None:
    """The image readers' options for ``--window`` and ``--force-window`` (checked here), or None."""
    if text is None or parse_window(text) is None:
        return None
    return {"window": text.strip(), "force_window": force}


def parse_window(text: str | None) -> tuple[float, float] | None:
    """``--window`` value: a preset name or ``'centre,width'`` -> checked ``(centre, width)``; None stays None.

    The numbers are checked here, as ``openmedclip.io.windowing.resolve_window`` checks them, so that a bad value
    fails before numpy and the readers are imported."""
    if text is None:
        return None
    if "," not in text:
        # the presets live with the image readers, imported only when a name is given
        from ..io.windowing import resolve_window

        try:
            return resolve_window(text.strip())
        except InvalidInputError as error:
            raise InvalidInputError(f"--window: {error}") from None
    parts = [part.strip() for part in text.split(",")]
    try:
        centre, width = (float(part) for part in parts)
    except ValueError:
        raise InvalidInputError(f"--window {text!r}: expected {WINDOW_USAGE}") from None
    if not (math.isfinite(centre) and math.isfinite(width)) or width <= 0:
        raise InvalidInputError(f"--window {text!r}: centre and width must be finite and width > 0")
    return centre, width


def model_name(model: str | None) -> str:
    """``--model``, else ``$OPENMEDCLIP_MODEL``, else the default model."""
    from ..models import DEFAULT_MODEL

    chosen = model or os.environ.get("OPENMEDCLIP_MODEL") or DEFAULT_MODEL
    if not chosen:
        raise InvalidInputError("no model given: pass --model NAME|PATH or set OPENMEDCLIP_MODEL")
    return chosen


def names(text: str | None, option: str) -> list[str]:
    """Comma-separated names; a given but empty list, or an empty name between commas, is an error."""
    if text is None:
        return []
    parts = [part.strip() for part in text.split(",")]
    parsed = [part for part in parts if part]
    if not parsed:
        raise InvalidInputError(f"{option} needs at least one comma-separated name")
    if len(parsed) < len(parts):
        raise InvalidInputError(f"{option} {text!r}: name {parts.index('') + 1} is empty (two commas in a row?)")
    return parsed


def key_values(items: list[str] | None, option: str) -> dict[str, str]:
    """Repeated ``KEY=VALUE`` options as a dict."""
    parsed = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(f"{option} {item!r} must look like KEY=VALUE")
        parsed[key.strip()] = value
    return parsed


EXTRAS = {
    "webdataset": "train",
    "matplotlib": "plots",
    "medmnist": "data",
    "faiss": "index",
    "fastapi": "serve",
    "uvicorn": "serve",
    "multipart": "serve",
    "gradio": "demo",
}
"""Optional dependencies (top-level module -> the extra of ``pyproject.toml`` that installs it)."""


def missing_extra(error: ModuleNotFoundError) -> str | None:
    """The one-line message for a missing optional dependency, or None when ``error`` is about another module."""
    module = (error.name or "").partition(".")[0]
    extra = EXTRAS.get(module)
    if extra is None:
        return None
    return f"{module} is not installed (an optional dependency): pip install 'openmedclip[{extra}]'"


def require_extra(module: str) -> None:
    """Fail early (one line naming the extra, see :func:`missing_extra`) when an optional ``module`` is absent."""
    from importlib.util import find_spec

    if find_spec(module) is None:
        raise ModuleNotFoundError(f"No module named {module!r}", name=module)
