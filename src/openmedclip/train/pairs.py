"""Image–text pairs for training: caption choice, optional crops, tokens, and each process's batches.

Everything random here is seeded by (seed, sample, epoch), never by a process's RNG state, so the same run
sees the same pairs in the same order whatever the number of processes, workers or restarts.

Streamed shards (`openmedclip.data.streaming.ShardStream`, read through `PairEncoder` and planned by `StreamPlan`)
keep the per-sample part: a sample's caption and crop depend only on (seed, sample id, epoch), its id being its
shard url and key. Their *order* is seeded by (seed, epoch, rank, worker): each process reads its own stream, so
a streamed run is reproducible for a fixed number of processes and loader workers, not across them.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterator, Sequence

import torch
from torch.utils.data import Dataset

from openmedclip.data import DataSource, Sample
from openmedclip.data.base import SampleText
from openmedclip.data.captions import CaptionSampler, caption_from_fields
from openmedclip.data.mixing import MixedSource
from openmedclip.data.streaming import StreamItem
from openmedclip.errors import InvalidInputError
from openmedclip.io import MedicalImage

PairRef = tuple[int, int, int]
"""``(epoch, source_idx, item_idx)``: one pair of one epoch."""
SampleId = int | str
"""What per-sample draws are seeded with: a row's place among all sources' rows, or a streamed sample's id."""

CROP_AREA = (0.8, 1.0)


class CaptionChooser:
    """The text of a sample at an epoch: one of its captions (seeded), else a caption built from its labels
    (a bank sentence per label) or, with ``from_fields``, from its metadata (modality, organ and up to
    ``max_qa`` question–answer pairs drawn per epoch, as VQA-RAD records have them)."""

    def __init__(self, bank: CaptionSampler | None, seed: int, *, from_fields: bool = False, max_qa: int = 2):
        self.bank = bank
        self.seed = seed
        self.from_fields = from_fields
        self.max_qa = max_qa

    def __call__(self, sample: Sample | SampleText, sample_id: SampleId, epoch: int) -> str:
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
        return self.bank.caption_for_labels(sample.labels, sample_id, epoch)


def random_crop(image: MedicalImage, rng: random.Random) -> MedicalImage:
    """A crop of 80–100 % of the area with the image's aspect ratio, at a random place."""
    rows, columns = image.pixels.shape[:2]
    side = rng.uniform(*CROP_AREA) ** 0.5
    width, height = max(1, round(columns * side)), max(1, round(rows * side))
    left, top = rng.randint(0, columns - width), rng.randint(0, rows - height)
    crop = {"crop": (top, left, height, width)}
    pixels = image.pixels[top : top + height, left : left + width]
    return dataclasses.replace(image, pixels=pixels, meta={**image.meta, **crop})


class PairEncoder:
    """A sample -> (pixels ``[3, H, W]``, tokens ``[L]``): its caption, its crop with ``augment``, the model's
    preprocessing and tokenizer. Caption and crop are seeded by (seed, sample id, epoch) only.

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
        seed: int = 0,
    ):
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.captions = [captions] * n_sources if isinstance(captions, CaptionChooser) else list(captions)
        if len(self.captions) != n_sources:
            raise InvalidInputError(f"need one caption chooser per source: {n_sources} sources, {len(self.captions)}")
        self.augment = augment
        self.seed = seed

    def encode(
        self, sample: Sample, sample_id: SampleId, epoch: int, source_idx: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The pair of `sample` (row or stream id `sample_id`) at `epoch`, captioned by its source's chooser."""
        image = sample.image
        if self.augment:
            image = random_crop(image, random.Random(f"{self.seed}|{sample_id}|{epoch}|crop"))
        text = self.captions[source_idx](sample, sample_id, epoch)
        return self.preprocess(image), self.tokenizer([text])[0]

    def __call__(self, item: StreamItem) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode(item.sample, item.id, item.epoch, item.source)


class PairDataset(Dataset):
    """``dataset[(epoch, source_idx, item_idx)]`` -> (pixels ``[3, H, W]``, tokens ``[L]``).

    ``captions`` is one chooser for every source or one per source. A sample's id (what its caption and crop are
    seeded with) is its place among all sources' rows."""

    def __init__(
        self,
        sources: Sequence[DataSource],
        preprocess: Callable[[MedicalImage], torch.Tensor],
        tokenizer: Callable[[list[str]], torch.Tensor],
        captions: CaptionChooser | Sequence[CaptionChooser],
        *,
        augment: bool = False,
        seed: int = 0,
    ):
        self.sources = list(sources)
        self.encoder = PairEncoder(preprocess, tokenizer, captions, len(self.sources), augment=augment, seed=seed)
        self.offsets = [0]
        for source in self.sources:
            self.offsets.append(self.offsets[-1] + len(source))

    def __len__(self) -> int:
        return self.offsets[-1]

    def __getitem__(self, ref: PairRef) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, source_idx, item_idx = ref
        sample = self.sources[source_idx][item_idx]
        return self.encoder.encode(sample, self.offsets[source_idx] + item_idx, epoch, source_idx)


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
            for k in range(self.grad_accum):
                chunk = mine[k * self.batch_size : (k + 1) * self.batch_size]
                yield [(epoch, s, i) for s, i in chunk]


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
