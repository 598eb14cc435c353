"""``openmedclip demo``: the browser page (zero-shot classification with heat maps, index search) on a local port."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import InvalidInputError
from .options import DeviceOption, PrecisionOption, model_name, require_extra


def demo_command(
    model: Annotated[
        Optional[list[str]],
        typer.Option("--model", "-m", help="A model to offer (repeatable; the first is the default): registry name, "
                     "model folder or checkpoint file."),
    ] = None,
    index: Annotated[
        Optional[Path], typer.Option(help="An embedding index to search (adds a Search tab and the index's model).")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every network interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 7860,
    share: Annotated[bool, typer.Option(help="Also open a public gradio.live link (needs the internet).")] = False,
    device: DeviceOption = None,
    precision: PrecisionOption = "auto",
) -> None:
    """Serve a page to classify an uploaded image zero-shot, see its heat map and search an index (Ctrl+C stops)."""
    require_extra("gradio")
    names = list(dict.fromkeys(model or [model_name(None)]))

    from ..serve.demo import build_demo, launch
    from ..serve.session import ModelPool

    served = names
    if index is not None:
        require_extra("faiss")
        from ..index import open_index

        with open_index(index) as opened:
            served = [*names, opened.model]
    pool = ModelPool(names[0], served, device=device, precision=precision)
    pool.get()  # a bad default model fails here, as one line, not on the first click
    page = build_demo(pool, index)
    try:
        try:
            address = launch(page, host=host, port=port, share=share)
        except OSError as error:
            raise InvalidInputError(f"cannot listen on {host}:{port} (the port is in use or the address is not "
                                    "this machine's); choose another --port or --host") from error
        typer.echo(f"openmedclip demo on {address} with {', '.join(pool.allowed)} (Ctrl+C stops)")
        page.block_thread()  # returns on Ctrl+C, having closed only the web server
    except KeyboardInterrupt:  # Ctrl+C while the server was starting: a normal end too
        pass
    finally:  # stop the queue, the heartbeats and the worker threads too, or they can keep the process alive
        page.close(verbose=False)
