"""Similarity heat maps: the grid lands on the right source pixels through every geometry, a region that matches the
query is where the map peaks (ViT and ResNet towers), and bad queries are refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from openmedclip.errors import InvalidInputError
from openmedclip.models import load_model
from openmedclip.models.family import Geometry
from openmedclip.tasks.heatmap import grid_to_source, similarity_map


def _ramp(rows: int, columns: int) -> np.ndarray:
    return (np.arange(rows)[:, None] + 10.0 * np.arange(columns)[None, :]).astype(np.float32)


@pytest.mark.parametrize(
    "geometry",
    [
        Geometry((100, 60), (64, 64), (0, 0), (64, 64)),  # squash
        Geometry((100, 160), (64, 102), (0, 19), (64, 64)),  # shortest side, centre crop
        Geometry((40, 90), (28, 64), (-18, 0), (64, 64)),  # longest side, padded
    ],
)
def test_grid_cell_centres_land_where_the_geometry_puts_them(geometry):
    grid = _ramp(4, 4)
    values = grid_to_source(grid, geometry)
    assert values.shape == geometry.source_size and values.dtype == np.float32
    step = geometry.model_size[0] / 4
    for i in range(4):
        for j in range(4):
            row, column = geometry.to_source((i + 0.5) * step - 0.5, (j + 0.5) * step - 0.5)
            r, c = round(row), round(column)
            if 0 <= r < values.shape[0] and 0 <= c < values.shape[1]:
                # the ramp changes by at most 10 per grid cell, a cell spans >= 1.5 source pixels
                assert abs(values[r, c] - grid[i, j]) < 10 / 1.5, (i, j, values[r, c], grid[i, j])


def test_cropped_source_columns_are_nan_and_padding_is_never_shown():
    cropped = grid_to_source(_ramp(4, 4), Geometry((100, 160), (64, 102), (0, 19), (64, 64)))
    left_edge = int(19 * 160 / 102)
    assert np.isnan(cropped[:, : left_edge - 1]).all() and np.isnan(cropped[:, -(left_edge - 1):]).all()
    assert not np.isnan(cropped[:, left_edge + 2 : -(left_edge + 2)]).any()
    padded = grid_to_source(_ramp(4, 4), Geometry((40, 90), (28, 64), (-18, 0), (64, 64)))
    assert not np.isnan(padded).any()
    # the source sits in the middle rows of the padded window: its values come from the middle grid rows
    first_column = padded[:, 0]
    assert first_column.min() > 0.5 and first_column.max() < 2.5 and np.all(np.diff(first_column) >= 0)


def _half_and_half(size: int) -> Image.Image:
    """Left half: fine black-and-white stripes; right half: flat grey."""
    pixels = np.full((size, size), 128, dtype=np.uint8)
    stripes = (np.arange(size) // 2 % 2 * 255).astype(np.uint8)
    pixels[:, : size // 2] = stripes[:, None]
    return Image.fromarray(pixels).convert("RGB")


def _mean_patch_feature(loaded, picture: Image.Image) -> torch.Tensor:
    pixels = loaded.preprocess(picture)[None].to(loaded.dtype)
    with torch.no_grad():
        patches = loaded.family.patch_features(loaded.model, pixels)[0].float()
    return torch.nn.functional.normalize(patches, dim=-1).mean(dim=(0, 1))


@pytest.mark.parametrize("which", ["vit", "resnet"])
def test_the_map_peaks_on_the_half_that_matches_the_query(which, tiny_model):
    loaded = tiny_model if which == "vit" else load_model("openmedclip-base", device="cpu")
    # The query matches the stripes and not the grey: the direction from an all-grey image's mean patch feature
    # to an all-stripes image's (a text embedding that "means" the left half).
    stripes = np.tile((np.arange(128) // 2 % 2 * 255).astype(np.uint8)[:, None], (1, 128))
    grey = np.full((128, 128), 128, dtype=np.uint8)
    query = _mean_patch_feature(loaded, Image.fromarray(stripes).convert("RGB")) - _mean_patch_feature(
        loaded, Image.fromarray(grey).convert("RGB")
    )
    result = similarity_map(loaded, _half_and_half(128), query, smooth=0)
    grid_columns = result.grid.shape[1]
    assert grid_columns >= 2
    left, right = result.grid[:, : grid_columns // 2], result.grid[:, grid_columns // 2 :]
    assert left.mean() > right.mean()
    assert result.peak()[1] < 64
    assert np.nanmean(result.values[:, :64]) > np.nanmean(result.values[:, 64:])


def test_text_queries_and_bad_queries(tiny_model, tmp_path):
    picture = _half_and_half(64)
    result = similarity_map(tiny_model, picture, "a chest x-ray")
    assert result.values.shape == (64, 64) and np.isfinite(result.values).all()
    assert np.all(np.abs(result.grid) <= 1.0 + 1e-5)
    with pytest.raises(InvalidInputError, match="empty"):
        similarity_map(tiny_model, picture, "  ")
    with pytest.raises(InvalidInputError, match="finite values"):
        similarity_map(tiny_model, picture, torch.zeros(3))
    with pytest.raises(InvalidInputError, match="smooth"):
        similarity_map(tiny_model, picture, "x", smooth=-1)
