"""Image–text pairs for training: caption choice, optional crops, tokens, and each process's batches.

Everything random here is seeded by (seed, sample, epoch), never by a process's RNG state, so the same run
sees the same pairs in the same order whatever the number of processes, workers or restarts.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterator, Sequence

import torch
from torch.utils.data import Dataset

from openmedclip.data import DataSource, Sample
from openmedclip.data.captions import CaptionSampler, caption_from_fields
from openmedclip.data.mixing import MixedSource
from openmedclip.errors import InvalidInputError
from openmedclip.io import MedicalImage

PairRef = tuple[int, int, int]
"""``(epoch, source_idx, item_idx)``: one pair of one epoch."""

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

    def __call__(self, sample: Sample, sample_id: int, epoch: int) -> str:
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
    return dataclasses.replace(image, pixels=image.pixels[top : top + height, left : left + width], meta={**image.meta, **crop})


class PairDataset(Dataset):
    """``dataset[(epoch, source_idx, item_idx)]`` -> (pixels ``[3, H, W]``, tokens ``[L]``).

    ``captions`` is one chooser for every source or one per source."""

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
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.captions = [captions] * len(self.sources) if isinstance(captions, CaptionChooser) else list(captions)
        self.augment = augment
        self.seed = seed
        self.offsets = [0]
        for source in self.sources:
            self.offsets.append(self.offsets[-1] + len(source))

    def __len__(self) -> int:
        return self.offsets[-1]

    def __getitem__(self, ref: PairRef) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, source_idx, item_idx = ref
        sample = self.sources[source_idx][item_idx]
        sample_id = self.offsets[source_idx] + item_idx
        image = sample.image
        if self.augment:
            image = random_crop(image, random.Random(f"{self.seed}|{sample_id}|{epoch}|crop"))
        text = self.captions[source_idx](sample, sample_id, epoch)
        return self.preprocess(image), self.tokenizer([text])[0]


class BatchPlan:
    """Which pairs each process encodes at each optimizer step.

    An epoch is `MixedSource.indices(epoch)` cut into global batches of ``batch_size * grad_accum * world_size``
    (an incomplete last batch is dropped). Process ``r`` takes the ``r``-th contiguous share of each global
    batch and splits it into ``grad_accum`` micro-batches, so one process with a global batch of ``2B`` and two
    processes with ``B`` each see the same pairs at every step.
    """

    def __init__(self, mixed: MixedSource, batch_size: int, grad_accum: int, rank: int = 0, world_size: int = 1):
        self.mixed = mixed
        self.batch_size = batch_size
        self.grad_accum = grad_accum
        self.rank = rank
        self.world_size = world_size
        self.global_batch = batch_size * grad_accum * world_size
        self.steps_per_epoch = len(mixed) // self.global_batch
        if self.steps_per_epoch == 0:
            raise InvalidInputError(
                f"an epoch of {len(mixed)} pairs is smaller than one global batch of {self.global_batch} "
                f"(batch_size {batch_size} x grad_accum {grad_accum} x {world_size} processes)"
            )

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
