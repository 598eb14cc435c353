"""``openmedclip heatmap IMAGE --text "..."``: where in an image a text matches, drawn over the image as a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .options import (
    DeviceOption,
    ForceWindowOption,
    ModelOption,
    PrecisionOption,
    WindowOption,
    model_name,
    window_read_options,
)


def heatmap_command(
    image: Annotated[Path, typer.Argument(help="An image file (PNG, JPEG, TIFF, DICOM, NIfTI).")],
    text: Annotated[str, typer.Option("--text", "-t", help="The prompt to locate, e.g. 'left pleural effusion'.")],
    model: ModelOption = None,
    out: Annotated[
        Optional[Path], typer.Option("--out", "-o", help="PNG to write (default: IMAGE's name + '_heatmap.png').")
    ] = None,
    smooth: Annotated[float, typer.Option(min=0.0, help="Gaussian smoothing, in grid cells (0: none).")] = 0.5,
    alpha: Annotated[float, typer.Option(min=0.0, max=1.0, help="Opacity of the map over the image.")] = 0.45,
    window: WindowOption = None,
    force_window: ForceWindowOption = False,
    device: DeviceOption = None,
    precision: PrecisionOption = "auto",
) -> None:
    """Draw the similarity of a text with each location of an image (patch or feature-map level) over the image."""
    read_options = window_read_options(window, force_window)

    from ..eval.plots import save_heatmap
    from ..models import load_model
    from ..tasks.heatmap import similarity_map

    loaded = load_model(model_name(model), device=device, precision=precision)
    result = similarity_map(loaded, image, text, smooth=smooth,
                            read_options=read_options)
    destination = out if out is not None else image.with_name(image.name.split(".")[0] + "_heatmap.png")
    save_heatmap(result, destination, alpha=alpha)
    row, column = result.peak()
    grid_rows, grid_columns = result.grid.shape
    typer.echo(
        f"{destination}: '{text}' on {image.name}, {grid_rows}x{grid_columns} locations; peak cosine "
        f"{result.values[row, column]:.3f} at row {row}, column {column} (of {result.values.shape[0]}x"
        f"{result.values.shape[1]})"
    )
