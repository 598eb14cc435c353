"""Image–text pairs for training: caption choice, optional crops and flips, tokens, and each process's batches.

Everything random here is seeded by (seed, sample, epoch), never by a process's RNG state, so the same run
sees the same pairs in the same order whatever the number of processes, workers or restarts. Shared class
captions (``captions: {shared: true}``) are seeded by (seed, step) instead: every pair of a class in one
optimizer step gets the same sentence, so no pair of the class is another's negative (see
`openmedclip.train.losses`).

Flips are for sources whose images have no meaningful left and right (``flip: true`` on a dataset spec, e.g.
fundus photographs or breast ultrasound; never chest X-ray, CT or MR, where laterality matters), and even
there a pair whose caption names a side is never flipped.

An unreadable item becomes a `SkippedItem` in its pair's place; `collate_pairs` leaves it out of the batch and
hands it on, so the trainer reports and counts it (its batch is then smaller).

Streamed shards (`openmedclip.data.streaming.ShardStream`, read through `PairEncoder` and planned by `StreamPlan`)
keep the per-sample part: a sample's caption and crop depend only on (seed, sample id, epoch), its id being its
shard url and key. Their *order* is seeded by (seed, epoch, rank, worker): each process reads its own stream, so
a streamed run is reproducible for a fixed number of processes and loader workers, not across them.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from openmedclip.data import DataSource, Sample
from openmedclip.data.base import SampleText, SkippedItem
from openmedclip.data.captions import CaptionSampler, caption_from_fields
from openmedclip.data.mixing import MixedSource
from openmedclip.data.streaming import StreamItem
from openmedclip.errors import ImageReadError, InvalidInputError
from openmedclip.io import MedicalImage

PairRef = tuple[int, int, int, int]
"""``(epoch, source_idx, item_idx, step)``: one pair of one epoch, drawn for optimizer step ``step`` (counted over
the whole run)."""
SampleId = int | str
"""What per-sample draws are seeded with: a row's place among all sources' rows, or a streamed sample's id."""
Pair = tuple[torch.Tensor, torch.Tensor]
"""(pixels ``[3, H, W]``, tokens ``[L]``)."""

CROP_AREA = (0.8, 1.0)
FLIP_CHANCE = 0.5
HEADER_CHANCE = 0.5
"""Share of label captions that start with the modality header, when the recipe gives one."""
SIDE_WORDS = re.compile(r"\b(left|right)\b", re.IGNORECASE)
"""A caption with one of these words describes a side: its image is never flipped."""


class CaptionChooser:
    """The text of a sample at an epoch: one of its captions (seeded), else a caption built from its labels
    (a bank sentence per label) or, with ``from_fields``, from its metadata (modality, organ and up to
    ``max_qa`` question–answer pairs drawn per epoch, as VQA-RAD records have them).

    Label captions vary: with ``shared``, every sample of a class gets the same sentence at a step (a new one each
    step, or each epoch when no step is known, as in a stream); otherwise each sample draws its own per epoch.
    With ``modality`` (a modality bank class, e.g. ``X-ray``) and/or ``organ``, half of them start with a header
    such as "Radiograph of the chest.", drawn like the sentence; with ``header_alone``, that share of them is the
    header alone (and half of the rest start with it), so that the header on its own names the images."""

    def __init__(
        self,
        bank: CaptionSampler | None,
        seed: int,
        *,
        from_fields: bool = False,
        max_qa: int = 2,
        shared: bool = False,
        modality: str | None = None,
        organ: str | None = None,
        header_alone: float = 0.0,
    ):
        self.bank = bank
        self.seed = seed
        self.from_fields = from_fields
        self.max_qa = max_qa
        self.shared = shared
        self.header = caption_from_fields(modality=modality, organ=organ) if modality or organ else None
        if header_alone and self.header is None:
            raise InvalidInputError("captions: header_alone needs a modality or an organ to build the header from")
        self.header_alone = header_alone

    def __call__(self, sample: Sample | SampleText, sample_id: SampleId, epoch: int, step: int | None = None) -> str:
        rng = random.Random(f"{self.seed}|{sample_id}|{epoch}|caption")
        if sample.captions:
            return sample.captions[rng.randrange(len(sample.captions))]
        if self.from_fields:
            qa = [(pair.get("question"), pair.get("answer")) for pair in sample.meta.get("qa", [])]
            chosen = rng.sample(qa, min(self.max_qa, len(qa)))
            return caption_from_fields(modality=sample.meta.get("modality"), organ=sample.meta.get("organ"), qa=chosen)
        if self.bank is None:
            raise InvalidInputError(
                f"sample {sample.key!r} has no caption; set 'captions: {{bank: ...}}' in the recipe (or on its "
                "dataset) to caption its labels"
            )
        return self._label_caption(self.bank, sample.labels, sample_id, epoch, step)

    def _label_caption(
        self, bank: CaptionSampler, labels: list[str], sample_id: SampleId, epoch: int, step: int | None
    ) -> str:
        """Bank sentences for `labels`, drawn per sample and epoch or shared per step, maybe after the header."""
        owner, draw = ("shared", epoch if step is None else step) if self.shared else (sample_id, epoch)
        text = bank.caption_for_labels(labels, owner, draw)
        if self.header is None:
            return text
        chance = random.Random(f"{self.seed}|{owner}|{draw}|header").random()
        if chance < self.header_alone:
            return self.header
        if chance < self.header_alone + (1 - self.header_alone) * HEADER_CHANCE:
            return f"{self.header} {text}"
        return text


def random_crop(image: MedicalImage, rng: random.Random) -> MedicalImage:
    """A crop of 80–100 % of the area with the image's aspect ratio, at a random place."""
    rows, columns = image.pixels.shape[:2]
    side = rng.uniform(*CROP_AREA) ** 0.5
    width, height = max(1, round(columns * side)), max(1, round(rows * side))
    left, top = rng.randint(0, columns - width), rng.randint(0, rows - height)
    crop = {"crop": (top, left, height, width)}
    pixels = image.pixels[top : top + height, left : left + width]
    return dataclasses.replace(image, pixels=pixels, meta={**image.meta, **crop})


def flip_left_right(image: MedicalImage) -> MedicalImage:
    """The image mirrored left to right."""
    pixels = np.ascontiguousarray(image.pixels[:, ::-1])
    return dataclasses.replace(image, pixels=pixels, meta={**image.meta, "flipped": True})


class PairEncoder:
    """A sample -> (pixels ``[3, H, W]``, tokens ``[L]``): its caption, with ``augment`` its crop and, for sources
    that allow it (``flips``, one per source), a left–right flip half of the time unless the caption names a side;
    then the model's preprocessing and tokenizer. Crop and flip are seeded by (seed, sample id, epoch) only.

    ``captions`` is one chooser for every source or one per source (``n_sources`` of them). Called with a
    `StreamItem`, it is the transform of a `ShardStream` (run in the loader workers)."""

    def __init__(
        self,
        preprocess: Callable[[MedicalImage], torch.Tensor],
        tokenizer: Callable[[list[str]], torch.Tensor],
        captions: CaptionChooser | Sequence[CaptionChooser],
        n_sources: int,
        *,
        augment: bool = False,
        flips: Sequence[bool] | None = None,
        seed: int = 0,
    ):
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.captions = [captions] * n_sources if isinstance(captions, CaptionChooser) else list(captions)
        if len(self.captions) != n_sources:
            raise InvalidInputError(f"need one caption chooser per source: {n_sources} sources, {len(self.captions)}")
        self.flips = [False] * n_sources if flips is None else list(flips)
        if len(self.flips) != n_sources:
            raise InvalidInputError(f"need one flip setting per source: {n_sources} sources, {len(self.flips)}")
        self.augment = augment
        self.seed = seed

    def encode(
        self, sample: Sample, sample_id: SampleId, epoch: int, source_idx: int, step: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The pair of `sample` (row or stream id `sample_id`) at `epoch` (for optimizer `step`, when known),
        captioned by its source's chooser."""
        text = self.captions[source_idx](sample, sample_id, epoch, step)
        image = sample.image
        if self.augment:
            image = random_crop(image, random.Random(f"{self.seed}|{sample_id}|{epoch}|crop"))
            if self._flips(source_idx, text, random.Random(f"{self.seed}|{sample_id}|{epoch}|flip")):
                image = flip_left_right(image)
        return self.preprocess(image), self.tokenizer([text])[0]

    def _flips(self, source_idx: int, text: str, rng: random.Random) -> bool:
        """Whether to flip a pair of this source with this caption: half of the time, where allowed."""
        return self.flips[source_idx] and not SIDE_WORDS.search(text) and rng.random() < FLIP_CHANCE

    def __call__(self, item: StreamItem) -> Pair | SkippedItem:
        try:
            return self.encode(item.sample, item.id, item.epoch, item.source)
        except ImageReadError as err:
            return SkippedItem(err.path, err.problem)


class PairDataset(Dataset):
    """``dataset[(epoch, source_idx, item_idx, step)]`` -> (pixels ``[3, H, W]``, tokens ``[L]``).

    ``captions`` is one chooser for every source or one per source; ``flips`` says per source whether ``augment``
    may flip its images. A sample's id (what its caption, crop and flip are seeded with) is its place among all
    sources' rows."""

    def __init__(
        self,
        sources: Sequence[DataSource],
        preprocess: Callable[[MedicalImage], torch.Tensor],
        tokenizer: Callable[[list[str]], torch.Tensor],
        captions: CaptionChooser | Sequence[CaptionChooser],
        *,
        augment: bool = False,
        flips: Sequence[bool] | None = None,
        seed: int = 0,
    ):
        self.sources = list(sources)
        self.encoder = PairEncoder(
            preprocess, tokenizer, captions, len(self.sources), augment=augment, flips=flips, seed=seed
        )
        self.offsets = [0]
        for source in self.sources:
            self.offsets.append(self.offsets[-1] + len(source))

    def __len__(self) -> int:
        return self.offsets[-1]

    def __getitem__(self, ref: PairRef) -> Pair | SkippedItem:
        """The pair, or a `SkippedItem` when its image cannot be read."""
        epoch, source_idx, item_idx, step = ref
        try:
            sample = self.sources[source_idx][item_idx]
            return self.encoder.encode(sample, self.offsets[source_idx] + item_idx, epoch, source_idx, step)
        except ImageReadError as err:
            return SkippedItem(err.path, err.problem)


class PairBatch(NamedTuple):
    """A loader batch: the stacked readable pairs (None when there is none) and the items left out."""

    pixels: torch.Tensor | None
    tokens: torch.Tensor | None
    skipped: list[SkippedItem]


def collate_pairs(items: Sequence[Pair | SkippedItem]) -> PairBatch:
    """The DataLoader ``collate_fn``: pairs stacked, `SkippedItem` markers set aside."""
    skipped = [item for item in items if isinstance(item, SkippedItem)]
    pairs = [item for item in items if not isinstance(item, SkippedItem)]
    if not pairs:
        return PairBatch(None, None, skipped)
    pixels, tokens = default_collate(pairs)
    return PairBatch(pixels, tokens, skipped)


class EpochPlan:
    """Steps per epoch: ``n_pairs // global batch``, the global batch being ``batch_size * grad_accum *
    world_size`` (an incomplete last batch is dropped)."""

    def __init__(self, n_pairs: int, batch_size: int, grad_accum: int, rank: int = 0, world_size: int = 1):
        self.batch_size = batch_size
        self.grad_accum = grad_accum
        self.rank = rank
        self.world_size = world_size
        self.global_batch = batch_size * grad_accum * world_size
        self.steps_per_epoch = n_pairs // self.global_batch
        if self.steps_per_epoch == 0:
            raise InvalidInputError(
                f"an epoch of {n_pairs} pairs is smaller than one global batch of {self.global_batch} "
                f"(batch_size {batch_size} x grad_accum {grad_accum} x {world_size} processes)"
            )


class BatchPlan(EpochPlan):
    """Which pairs each process encodes at each optimizer step.

    An epoch is `MixedSource.indices(epoch)` cut into global batches of ``batch_size * grad_accum * world_size``
    (an incomplete last batch is dropped). Process ``r`` takes the ``r``-th contiguous share of each global
    batch and splits it into ``grad_accum`` micro-batches, so one process with a global batch of ``2B`` and two
    processes with ``B`` each see the same pairs at every step.
    """

    def __init__(self, mixed: MixedSource, batch_size: int, grad_accum: int, rank: int = 0, world_size: int = 1):
        super().__init__(len(mixed), batch_size, grad_accum, rank, world_size)
        self.mixed = mixed

    def micro_batches(self, epoch: int, start_step: int = 0) -> Iterator[list[PairRef]]:
        """This process's micro-batches of `epoch` from optimizer step `start_step` on, in order."""
        order = self.mixed.indices(epoch)
        share = self.batch_size * self.grad_accum
        for step in range(start_step, self.steps_per_epoch):
            first = step * self.global_batch + self.rank * share
            mine = order[first : first + share]
            run_step = epoch * self.steps_per_epoch + step
            for k in range(self.grad_accum):
                chunk = mine[k * self.batch_size : (k + 1) * self.batch_size]
                yield [(epoch, s, i, run_step) for s, i in chunk]


class StreamPlan(EpochPlan):
    """The steps of a streamed epoch: ``epoch_size // global batch`` optimizer steps, as for `BatchPlan`, but each
    process takes ``batch_size * grad_accum`` pairs per step from its own stream (`ShardStream` seeded by its
    rank) instead of a share of one epoch order."""

    def __init__(self, epoch_size: int, batch_size: int, grad_accum: int, rank: int = 0, world_size: int = 1):
        super().__init__(epoch_size, batch_size, grad_accum, rank, world_size)
        self.epoch_size = epoch_size

    def skipped_batches(self, start_step: int) -> int:
        """Loader batches (micro-batches) this process has used before optimizer step `start_step`."""
        return start_step * self.grad_accum
