"""The work behind each endpoint, without HTTP: read the image, call the library, shape the answer. Every method
blocks (decoding, model passes) and runs on a worker thread of the service's :class:`~.limits.WorkLimiter`."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from openmedclip.errors import ImageReadError, InvalidInputError
from openmedclip.io import MedicalImage
from openmedclip.prompts import list_banks
from openmedclip.serve import responses
from openmedclip.serve.session import ModelPool, preset
from openmedclip.serve.settings import ServeSettings
from openmedclip.serve.uploads import ImageSource

if TYPE_CHECKING:
    from openmedclip.models.loaded import LoadedModel
    from openmedclip.tasks.heatmap import SimilarityMap

MAX_LABELS = 64
"""Most labels one zero-shot request may name."""


class NoIndex(LookupError):
    """The service was started without an index."""


class SearchHitLike(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


class SearchIndex(Protocol):
    """What the service uses of an index (:func:`openmedclip.index.open_index`; searches may run from several
    threads at once)."""

    count: int
    dim: int
    model: str

    def search_text(self, model: LoadedModel, text: str, k: int = 10,
                    where: dict[str, Any] | None = None) -> Sequence[SearchHitLike]: ...

    def search_image(self, model: LoadedModel, image: str | Path | MedicalImage, k: int = 10,
                     where: dict[str, Any] | None = None) -> Sequence[SearchHitLike]: ...


@dataclass(frozen=True)
class ZeroShotQuestion:
    """What to classify an image by: labels (or a preset's), and how they are phrased."""

    labels: list[str]
    preset: str | None = None
    bank: str | None = None
    templates: list[str] | None = None
    multilabel: bool | None = None
    threshold: float = 0.5


def split_labels(values: Sequence[str] | None) -> list[str]:
    """Labels given as repeated fields, comma-separated, or both; blanks dropped."""
    return [label.strip() for value in values or () for label in value.split(",") if label.strip()]


def downsample(values: np.ndarray, max_side: int) -> np.ndarray:
    """``values`` averaged over blocks so that neither side exceeds ``max_side`` (NaN ignored; NaN where a block is
    all NaN); unchanged when it is small enough already."""
    rows, columns = values.shape
    scale = max(rows, columns) / max_side
    if scale <= 1:
        return values
    shape = (max(1, round(rows / scale)), max(1, round(columns / scale)))
    finite = np.isfinite(values)
    sums, counts = np.where(finite, values, 0.0).astype(np.float64), finite.astype(np.float64)
    for axis, (size, out) in enumerate(zip(values.shape, shape)):
        starts = (np.arange(out) * size) // out
        sums, counts = np.add.reduceat(sums, starts, axis=axis), np.add.reduceat(counts, starts, axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sums / counts).astype(np.float32)


def _cells(values: np.ndarray) -> list[list[float | None]]:
    return [[float(value) if np.isfinite(value) else None for value in row] for row in values]


def _peak(result: SimilarityMap) -> responses.Peak:
    row, column = result.peak()
    return responses.Peak(row=row, column=column, value=float(result.values[row, column]))


def _where(text: str | None) -> dict[str, Any] | None:
    """A JSON object of metadata filters, or None."""
    if text is None or not text.strip():
        return None
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInputError(f"where must be a JSON object, e.g. {{\"modality\": \"CT\"}}: {error}") from None
    if not isinstance(parsed, dict):
        raise InvalidInputError(f"where must be a JSON object, got {type(parsed).__name__}")
    return parsed


class Service:
    """The models (shared, loaded once each), the optional index and the settings behind the endpoints."""

    def __init__(self, settings: ServeSettings, pool: ModelPool, index: SearchIndex | None):
        self.settings = settings
        self.pool = pool
        self.index = index

    def _image(self, source: ImageSource) -> MedicalImage:
        return source.read(self.settings.max_volume_bytes)

    def zero_shot(self, source: ImageSource, question: ZeroShotQuestion, model: str | None) -> responses.ZeroShot:
        from openmedclip.tasks.zeroshot import zero_shot

        labels, bank, multilabel = self._question(question)
        loaded = self.pool.get(model)
        templates = question.templates
        result = zero_shot(loaded, [self._image(source)], labels, bank=bank,
                           templates=templates[0] if templates and len(templates) == 1 else templates,
                           multilabel=multilabel, threshold=question.threshold)
        if result.errors:
            raise ImageReadError(source.name, result.errors[0].message)
        row = result.probabilities[0]
        return responses.ZeroShot(
            model=loaded.spec.name, image=source.name, mode=result.mode,
            labels=result.labels, probabilities={label: float(p) for label, p in zip(result.labels, row)},
            prediction=result.predictions()[0].labels, threshold=question.threshold if multilabel else None,
            bank=result.bank or bank,
        )

    def _question(self, question: ZeroShotQuestion) -> tuple[list[str], str | None, bool]:
        """The labels, sentence bank and mode of a zero-shot question (a preset's unless given)."""
        if question.preset and question.labels:
            raise InvalidInputError("give labels or a preset, not both")
        if not (question.preset or question.labels):
            raise InvalidInputError("no labels: give labels (comma-separated or repeated) or a preset")
        chosen = preset(question.preset) if question.preset else None
        labels = list(chosen.labels) if chosen else question.labels
        if len(labels) > MAX_LABELS:
            raise InvalidInputError(f"{len(labels)} labels given; at most {MAX_LABELS} per request")
        bank = question.bank or (chosen.bank if chosen and not question.templates else None)
        if bank is not None and bank not in list_banks():
            raise InvalidInputError(f"unknown sentence bank {bank!r}; built-in banks: {', '.join(list_banks())}")
        multilabel = question.multilabel if question.multilabel is not None else bool(chosen and chosen.multilabel)
        return labels, bank, multilabel

    def embed_image(self, source: ImageSource, model: str | None) -> responses.ImageEmbedding:
        from openmedclip.embed import encode_images

        loaded = self.pool.get(model)
        encoded = encode_images(loaded, [self._image(source)])
        if encoded.errors:
            raise ImageReadError(source.name, encoded.errors[0].message)
        vector = encoded.features[0]
        return responses.ImageEmbedding(model=loaded.spec.name, image=source.name, dim=int(vector.numel()),
                                        vector=vector.tolist())

    def embed_texts(self, texts: list[str], model: str | None) -> responses.TextEmbeddings:
        from openmedclip.embed import encode_texts

        loaded = self.pool.get(model)
        features = encode_texts(loaded, texts)
        return responses.TextEmbeddings(model=loaded.spec.name, dim=int(features.shape[1]),
                                        vectors=features.tolist())

    def _similarity_map(self, source: ImageSource, text: str, smooth: float, model: str | None) -> SimilarityMap:
        from openmedclip.tasks.heatmap import similarity_map

        return similarity_map(self.pool.get(model), self._image(source), text, smooth=smooth)

    def heatmap(self, source: ImageSource, text: str, smooth: float, model: str | None) -> responses.Heatmap:
        result = self._similarity_map(source, text, smooth, model)
        shown = downsample(result.values, self.settings.heatmap_size)
        return responses.Heatmap(
            model=self.pool.get(model).spec.name, image=source.name, text=text,
            source_size=result.values.shape, size=shown.shape, grid_size=result.grid.shape,
            values=_cells(shown), peak=_peak(result),
        )

    def heatmap_png(self, source: ImageSource, text: str, smooth: float, alpha: float,
                    model: str | None) -> tuple[bytes, responses.Peak]:
        """The heat map drawn over the image as a PNG, and its peak."""
        from openmedclip.eval.plots import heatmap_figure

        result = self._similarity_map(source, text, smooth, model)
        buffer = io.BytesIO()
        heatmap_figure(result, alpha=alpha).savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        return buffer.getvalue(), _peak(result)

    def search(self, text: str | None, source: ImageSource | None, k: int,
               where: str | None) -> responses.SearchResults:
        if self.index is None:
            raise NoIndex("no index configured (start the service with --index)")
        if (text is None) == (source is None):
            raise InvalidInputError("search by a text or by an image: give exactly one of 'text' and an image")
        filters = _where(where)
        loaded = self.pool.get(self.index.model)
        if text is not None:
            hits = self.index.search_text(loaded, text, k=k, where=filters)
        else:
            assert source is not None
            hits = self.index.search_image(loaded, self._image(source), k=k, where=filters)
        return responses.SearchResults(model=loaded.spec.name, query="text" if text is not None else "image", k=k,
                                       hits=[responses.SearchHit(**hit.to_dict()) for hit in hits])
