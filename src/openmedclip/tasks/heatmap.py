"""Similarity heat maps: how well each location of an image matches a text, in the source image's own pixels.

The model family gives per-location features in the joint space (``ModelFamily.patch_features``: ViT patch tokens
through the image projection, a CNN tower's last feature map through its projection, BioViL's patch embeddings,
GLoRIA's local features). Their cosine with the text feature is a grid over the model's input window, which the
preprocess geometry (resize, crop, pad; ``Preprocess.geometry``) maps back onto the source image: DICOM, NIfTI and
the other formats alike, since every reader gives a ``MedicalImage``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from openmedclip.embed import encode_texts
from openmedclip.embed.inputs import ImageItem, ItemReader
from openmedclip.errors import InvalidInputError
from openmedclip.io import MedicalImage
from openmedclip.models.family import Geometry
from openmedclip.models.loaded import LoadedModel


@dataclass
class SimilarityMap:
    """The cosine similarity of one text with every location of one image."""

    values: np.ndarray
    """``[rows, columns]`` float32 in source pixels: the smoothed grid, bilinearly interpolated; NaN where the
    model's input window does not reach (cropped away)."""
    grid: np.ndarray
    """``[grid rows, grid columns]`` float32: the cosine per patch or feature-map location, unsmoothed."""
    geometry: Geometry
    text: str
    image: MedicalImage

    def peak(self) -> tuple[int, int]:
        """(row, column) in source pixels of the highest similarity."""
        flat = int(np.nanargmax(self.values))
        return divmod(flat, self.values.shape[1])


def similarity_map(
    model: LoadedModel | str,
    image: ImageItem,
    text: str | torch.Tensor,
    *,
    smooth: float = 0.5,
    read_options: dict | None = None,
) -> SimilarityMap:
    """The heat map of ``text`` on ``image`` (a path, ``MedicalImage`` or PIL image).

    ``text`` is a prompt, or a feature vector in the joint space (``[D]``; e.g. another image's pooled feature).
    ``smooth`` is the standard deviation, in grid cells, of the Gaussian applied to the grid (0: none).
    ``read_options`` go to ``read_image`` (``window``, ``frame``, ``slice_index``, ``axis``).
    """
    if smooth < 0:
        raise InvalidInputError(f"smooth must be >= 0, got {smooth}")
    if isinstance(model, str):
        from openmedclip.models.load import load_model

        model = load_model(model)
    medical = ItemReader([image], None, read_options).read(0)
    pixels = model.preprocess(medical)[None].to(model.device, dtype=model.dtype)
    with torch.inference_mode():
        patches = model.family.patch_features(model.model, pixels)[0].float().cpu()
    query = _query(model, text, patches.shape[-1])
    grid = (F.normalize(patches, dim=-1) @ query).numpy().astype(np.float32)
    geometry = model.preprocess.geometry(medical.pixels.shape[:2])
    values = grid_to_source(_smoothed(grid, smooth), geometry)
    return SimilarityMap(values, grid, geometry, text if isinstance(text, str) else "<embedding>", medical)


def _query(model: LoadedModel, text: str | torch.Tensor, width: int) -> torch.Tensor:
    if isinstance(text, str):
        if not text.strip():
            raise InvalidInputError("the heat map's text is empty")
        return encode_texts(model, [text])[0]
    vector = torch.as_tensor(text, dtype=torch.float32).flatten()
    if vector.numel() != width or not torch.isfinite(vector).all() or vector.norm() == 0:
        raise InvalidInputError(f"a query embedding must be {width} finite values, not all zero")
    return F.normalize(vector, dim=0)


def _smoothed(grid: np.ndarray, sigma: float) -> np.ndarray:
    """``grid`` convolved with a Gaussian of ``sigma`` cells (edges repeated outward)."""
    if sigma == 0:
        return grid
    radius = max(1, round(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    padded = F.pad(torch.from_numpy(grid)[None, None], (radius, radius, radius, radius), mode="replicate")
    rows_done = F.conv2d(padded, kernel.view(1, 1, 1, -1))
    return F.conv2d(rows_done, kernel.view(1, 1, -1, 1))[0, 0].numpy()


def grid_to_source(grid: np.ndarray, geometry: Geometry) -> np.ndarray:
    """A grid over the model's input window, bilinearly interpolated at every source pixel (``[rows, columns]``
    float32, NaN outside the window). Grid cell ``(i, j)`` covers its share of the window; its centre lands where
    ``geometry.to_source`` puts the matching model pixel."""
    rows, columns = geometry.source_size
    axes = []
    for size, resized, offset, window in zip(
        (rows, columns), geometry.resized_size, geometry.offset, geometry.model_size
    ):
        source = np.arange(size, dtype=np.float64)
        model_pixel = (source + 0.5) * resized / size - 0.5 - offset  # inverse of Geometry.to_source
        axes.append((model_pixel + 0.5) / window * 2 - 1)  # grid_sample's coordinates, align_corners=False
    y, x = np.meshgrid(axes[0], axes[1], indexing="ij")
    coordinates = torch.from_numpy(np.stack([x, y], axis=-1)[None].astype(np.float32))
    sampled = F.grid_sample(torch.from_numpy(grid)[None, None], coordinates, mode="bilinear",
                            padding_mode="border", align_corners=False)[0, 0].numpy()
    outside = (np.abs(y) > 1) | (np.abs(x) > 1)
    return np.where(outside, np.nan, sampled).astype(np.float32)
