"""``openmedclip serve``: the REST service (FastAPI on uvicorn) until interrupted."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import InvalidInputError
from ..serve.settings import TOKEN_ENV
from .options import DeviceOption, PrecisionOption, model_name, require_extra


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``, or a one-line error when that address cannot be used."""
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        listener = socket.socket(family, kind, protocol)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
    except OSError as error:
        raise InvalidInputError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    return listener


def serve_command(
    model: Annotated[
        Optional[list[str]],
        typer.Option("--model", "-m", help="A model clients may use (repeatable; the first is the default; "
                     "default: the index's model, else $OPENMEDCLIP_MODEL or the default model)."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    index: Annotated[Optional[Path], typer.Option(help="An index folder searched by POST /search.")] = None,
    root: Annotated[
        Optional[Path], typer.Option(help="The only folder whose files clients may name by path (default: none).")
    ] = None,
    token: Annotated[
        Optional[str],
        typer.Option(envvar=TOKEN_ENV, show_envvar=True,
                     help="Bearer token every endpoint but /health requires (prefer the environment variable)."),
    ] = None,
    max_upload_mb: Annotated[float, typer.Option(help="Largest request body in MB (413 above).")] = 20.0,
    max_volume_mb: Annotated[float, typer.Option(help="Largest decompressed .nii.gz upload in MB.")] = 512.0,
    timeout_s: Annotated[float, typer.Option(help="Longest time a request may take, in seconds (504 after).")] = 60.0,
    max_concurrency: Annotated[int, typer.Option(help="Requests doing model work at once.")] = 2,
    queue_wait_s: Annotated[
        float, typer.Option(help="Longest wait for a free worker, in seconds (503 after).")
    ] = 30.0,
    heatmap_size: Annotated[int, typer.Option(help="Largest side of a heat map returned as JSON.")] = 64,
    device: DeviceOption = None,
    precision: PrecisionOption = "auto",
) -> None:
    """Serve zero-shot classification, embeddings, heat maps and index search over HTTP (see docs/serving.md)."""
    from ..serve.settings import ServeSettings

    models = tuple(model or ()) or ((model_name(None),) if index is None else ())
    settings = ServeSettings(
        models=models, index=index, root=root, token=token, max_upload_mb=max_upload_mb,
        max_volume_mb=max_volume_mb, timeout_s=timeout_s, max_concurrency=max_concurrency,
        queue_wait_s=queue_wait_s, heatmap_size=heatmap_size, device=device, precision=precision,
    )
    for module in ("fastapi", "uvicorn", "multipart"):
        require_extra(module)
    with _listen(host, port) as listener:
        import uvicorn

        from ..serve.api import create_app

        app = create_app(settings)
        served = ", ".join(app.state.service.pool.allowed)
        bound_host, bound_port = listener.getsockname()[:2]
        address = f"[{bound_host}]" if ":" in bound_host else bound_host
        typer.echo(f"serving {served} on http://{address}:{bound_port} (API documentation at /docs); "
                   "Ctrl+C stops it", err=True)
        server = uvicorn.Server(uvicorn.Config(app, log_level="info", timeout_graceful_shutdown=5))
        try:
            server.run(sockets=[listener])
        except KeyboardInterrupt:  # uvicorn has shut down gracefully, then passes Ctrl+C on: a normal end
            pass
