"""The batched encoding engine: images and texts in, L2-normalised float32 features out.

Images are files, ``MedicalImage``s, PIL images or the rows of a data source. Decoding and the model family's
preprocess (which receives the ``MedicalImage``, so a family may use one channel or high-bit input) run in
DataLoader workers while the model encodes the previous batch, where that is faster (measured on a first
batch). An item whose *content* is bad (unreadable, corrupt, wrong shape: an
:class:`~openmedclip.errors.OpenMedClipError`) is recorded in ``errors`` and skipped; every other item still gets
its features. Any other exception is a bug and propagates.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset

from openmedclip.embed.inputs import ImageItem, ItemReader, expand_folders
from openmedclip.errors import InvalidInputError, OpenMedClipError
from openmedclip.hardware import loader_workers, threads_beside_loaders
from openmedclip.models.loaded import LoadedModel
from openmedclip.progress import progress_bar

if TYPE_CHECKING:
    from openmedclip.data.base import DataSource
    from openmedclip.models.protocol import ClipModel


@dataclass(frozen=True)
class ItemError:
    """One input that could not be encoded, and why."""

    index: int
    item: str
    message: str
    kind: str = "ImageReadError"
    """The error's class name (e.g. 'WindowNotApplicableError')."""

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "item": self.item, "message": self.message}


@dataclass
class EncodedImages:
    """Features for the items that could be read.

    ``features`` is ``[M, D]`` float32, L2-normalised, on the CPU; row ``k`` belongs to input ``indices[k]``
    (a position in the items, or in ``rows`` for a data source), named ``items[k]``.
    """

    features: torch.Tensor
    indices: list[int]
    items: list[str]
    errors: list[ItemError] = field(default_factory=list)


def _problem(error: OpenMedClipError) -> str:
    return getattr(error, "problem", None) or str(error) or type(error).__name__


class _ImageDataset(Dataset):
    """Reads and preprocesses one item; input problems travel as messages, bugs as exceptions."""

    def __init__(self, reader: ItemReader, preprocess: Callable[[Any], torch.Tensor]):
        self.reader = reader
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, tuple[str, str] | None]:
        try:
            return index, self.preprocess(self.reader.read(index)), None
        except OpenMedClipError as error:
            return index, None, (_problem(error), type(error).__name__)


def _collate(batch: list[tuple[int, torch.Tensor | None, tuple[str, str] | None]]):
    good = [(index, tensor) for index, tensor, _ in batch if tensor is not None]
    failed = [(index, problem) for index, tensor, problem in batch if problem is not None]
    pixels = torch.stack([tensor for _, tensor in good]) if good else None
    return [index for index, _ in good], pixels, failed


def normalise(features: torch.Tensor) -> torch.Tensor:
    """L2-normalise rows and return float32 on the CPU."""
    return F.normalize(features.float(), dim=-1).cpu()


class _Collector:
    """Encodes collated batches and gathers features, indices and per-item errors."""

    def __init__(self, loaded: LoadedModel, reader: ItemReader, features_of: Callable[[torch.Tensor], torch.Tensor],
                 autocast: Callable[[], AbstractContextManager] | None, advance: Callable[[int], None]):
        self.loaded = loaded
        self.reader = reader
        self.features_of = features_of
        self.context = autocast or nullcontext
        self.advance = advance
        self.chunks: list[torch.Tensor] = []
        self.indices: list[int] = []
        self.errors: list[ItemError] = []

    def add(self, batch: tuple[list[int], torch.Tensor | None, list[tuple[int, tuple[str, str]]]]) -> int:
        """Encode one collated batch; returns how many items it encoded."""
        batch_indices, pixels, failed = batch
        self.errors.extend(ItemError(i, self.reader.name(i), message, kind) for i, (message, kind) in failed)
        if pixels is not None:
            pixels = pixels.to(self.loaded.device, dtype=self.loaded.dtype, non_blocking=True)
            with self.context():
                self.chunks.append(self.features_of(pixels).float().cpu())
            self.indices.extend(batch_indices)
        self.advance(len(batch_indices) + len(failed))
        return len(batch_indices)

    def result(self) -> EncodedImages:
        """Everything encoded, in input order."""
        order = sorted(range(len(self.indices)), key=self.indices.__getitem__)
        features = torch.cat(self.chunks)[order] if self.chunks else torch.empty(0, 0)
        indices = [self.indices[k] for k in order]
        errors = sorted(self.errors, key=lambda error: error.index)
        return EncodedImages(features, indices, [self.reader.name(i) for i in indices], errors)


def _probe_rows(n_items: int, batch_size: int) -> list[int]:
    """``batch_size`` items spread evenly over all ``n_items`` (a folder sorted by kind is sampled from every kind)."""
    return sorted({index * n_items // batch_size for index in range(batch_size)})


def _probe(dataset: _ImageDataset, collector: _Collector, rows: list[int]) -> int:
    """Encode ``rows`` in this process, timing decoding and the forward pass per item (the second half, after the
    first has warmed the model up); return the loader workers for the rest
    (:func:`openmedclip.hardware.loader_workers`)."""
    start = time.perf_counter()
    batch = [dataset[index] for index in rows]
    decode = (time.perf_counter() - start) / len(rows)
    half = len(rows) // 2
    collector.add(_collate(batch[:half]))
    start = time.perf_counter()
    encoded = collector.add(_collate(batch[half:]))
    forward = (time.perf_counter() - start) / encoded if encoded else 0.0
    return loader_workers(decode, forward)


def encode_images(
    loaded: LoadedModel,
    items: Sequence[ImageItem] | DataSource,
    *,
    rows: Sequence[int] | None = None,
    batch_size: int = 32,
    num_workers: int | None = None,
    read_options: dict[str, Any] | None = None,
    autocast: Callable[[], AbstractContextManager] | None = None,
    progress: bool = False,
    encode: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> EncodedImages:
    """Encode images in batches; items with bad content are listed in ``errors`` and skipped.

    ``items`` is a sequence of paths / ``MedicalImage`` / PIL images, or a data source (``rows`` picks its rows,
    default all); a folder path stands for its images (recursively, sorted), and indices then count them.
    ``read_options`` go to ``read_image`` for paths (window, frame, slice). ``autocast`` gives the
    mixed-precision context of the forward passes (training validation); by default inputs are cast to the
    model's dtype. ``encode`` replaces the L2-normalised pooled features by another per-batch function of the
    pixels (e.g. a family's patch or local features); its output is returned as float32 on the CPU.
    ``num_workers`` None (the default) decodes up to two batches in this process; for more, one batch of items
    spread over the input is decoded and encoded here, timed, and the rest uses the loader workers that this
    model on these files and cores is fastest with (:func:`openmedclip.hardware.loader_workers`: none for a large
    model on two cores, one or more when decoding costs more than the forward pass). With loader workers, torch
    runs on the cores they leave free (:func:`openmedclip.hardware.threads_beside_loaders`) until the images are
    encoded.
    """
    from openmedclip.data.base import DataSource

    reader = ItemReader(items if isinstance(items, DataSource) else expand_folders(items), rows, read_options)
    dataset = _ImageDataset(reader, loaded.preprocess)
    model = cast("ClipModel", loaded.model)
    features_of = encode or (lambda pixels: normalise(model.encode_image(pixels)))
    with (
        progress_bar("Encoding images", total=len(reader), enabled=progress) as advance,
        torch.inference_mode(),
    ):
        collector = _Collector(loaded, reader, features_of, autocast, advance)
        probed: list[int] = []
        workers = num_workers or 0
        if num_workers is None and len(reader) > 2 * batch_size:
            probed = _probe_rows(len(reader), batch_size)
            workers = _probe(dataset, collector, probed)
        rest = sorted(set(range(len(reader))) - set(probed))
        if rest:
            loader = DataLoader(
                Subset(dataset, rest) if probed else dataset,
                batch_size=batch_size,
                num_workers=workers,
                collate_fn=_collate,
                pin_memory=loaded.device.type == "cuda",
                persistent_workers=False,
            )
            threads = threads_beside_loaders(workers) if workers > 0 else nullcontext()
            with threads:
                for batch in loader:
                    collector.add(batch)
    return collector.result()


def trim_padding(tokens: torch.Tensor, pad_id: int | None) -> torch.Tensor:
    """``tokens`` without the trailing columns that are ``pad_id`` in every row (at least one column kept)."""
    if pad_id is None:
        return tokens
    used = (tokens != pad_id).any(dim=0).nonzero()
    return tokens[:, : int(used[-1]) + 1 if len(used) else 1]


def encode_texts(
    loaded: LoadedModel,
    texts: Sequence[str],
    *,
    batch_size: int = 256,
    autocast: Callable[[], AbstractContextManager] | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Encode texts in batches: ``[N, D]`` float32, L2-normalised, on the CPU.

    Where the family allows it (:meth:`~openmedclip.models.family.ModelFamily.text_pad_id`), each batch is cut to
    its longest text before the text tower runs; the features are those of the full context.
    """
    texts = list(texts)
    context = autocast or nullcontext
    model = cast("ClipModel", loaded.model)
    pad_id = loaded.family.text_pad_id(loaded.model)
    chunks: list[torch.Tensor] = []
    with progress_bar("Encoding texts", total=len(texts), enabled=progress) as advance, torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            tokens = trim_padding(loaded.tokenizer(batch), pad_id).to(loaded.device)
            with context():
                chunks.append(normalise(model.encode_text(tokens)))
            advance(len(batch))
    if not chunks:
        raise InvalidInputError("encode_texts needs at least one text")
    return torch.cat(chunks)
