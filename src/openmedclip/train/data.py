"""Training data from a recipe: the mixed (or streamed) image–text pairs, the batch plan, caption rules and the
validation sources."""

from __future__ import annotations

from typing import Any

from openmedclip.data import DataSource, open_source
from openmedclip.data.captions import CaptionSampler
from openmedclip.data.mixing import MixedSource
from openmedclip.data.streaming import SHUFFLE_BUFFER, ShardSource, ShardStream
from openmedclip.errors import InvalidInputError
from openmedclip.models import LoadedModel
from openmedclip.train.config import CaptionOptions, TrainConfig
from openmedclip.train.pairs import BatchPlan, CaptionChooser, PairDataset, PairEncoder, StreamPlan


def training_data(
    config: TrainConfig, loaded: LoadedModel, chooser: CaptionChooser, rank: int, world_size: int
) -> tuple[PairDataset, BatchPlan] | tuple[ShardStream, StreamPlan]:
    """This process's pairs and batch plan: the recipe's sources mixed by their ``weight`` (all or none given;
    none: in proportion to their sizes), read into memory or, when every spec says ``streaming: true``, streamed.
    ``chooser`` captions the datasets without a ``captions`` rule of their own; ``flip: true`` lets ``augment``
    flip a dataset's images."""
    specs: list[dict[str, Any]] = [dict(spec) for spec in config.datasets]
    choosers = [
        caption_chooser(spec.pop("captions"), config.seed) if "captions" in spec else chooser
        for spec in specs
    ]
    flips = [bool(spec.pop("flip", False)) for spec in specs]
    weighted = ["weight" in spec for spec in specs]
    if any(weighted) and not all(weighted):
        raise InvalidInputError("recipe: give a 'weight' to every dataset or to none")
    weights = [float(spec.pop("weight")) for spec in specs] if all(weighted) else None
    streamed = [_streaming(spec.pop("streaming", False), i) for i, spec in enumerate(specs)]
    if any(streamed):
        if not all(streamed):
            raise InvalidInputError(
                f"recipe: datasets {[i for i, s in enumerate(streamed) if s]} are streamed (streaming: true) "
                f"but {[i for i, s in enumerate(streamed) if not s]} are not; stream every dataset or none "
                "(write the others as shards with 'openmedclip shards' and stream them too)"
            )
        return _streamed_data(config, loaded, specs, choosers, flips, weights, rank, world_size)
    sources = [open_source(spec) for spec in specs]
    mixed = MixedSource(sources, weights, epoch_size=config.epoch_size, seed=config.seed)
    pairs = PairDataset(
        sources, loaded.preprocess, loaded.tokenizer, choosers, augment=config.augment, flips=flips,
        seed=config.seed,
    )
    return pairs, BatchPlan(mixed, config.batch_size, config.grad_accum, rank, world_size)


def _streamed_data(
    config: TrainConfig,
    loaded: LoadedModel,
    specs: list[dict],
    choosers: list[CaptionChooser],
    flips: list[bool],
    weights: list[float] | None,
    rank: int,
    world_size: int,
) -> tuple[ShardStream, StreamPlan]:
    """This process's stream of pairs over the specs' shards, and the steps of an epoch of it."""
    if config.epoch_size is None:
        raise InvalidInputError(
            "recipe: streamed datasets need 'epoch_size' (pairs per epoch): a stream has no length to take "
            "an epoch from"
        )
    buffers = [
        _shuffle_buffer(spec.pop("shuffle_buffer"), i) for i, spec in enumerate(specs) if "shuffle_buffer" in spec
    ]
    sources = [ShardSource.from_spec(spec) for spec in specs]
    encoder = PairEncoder(
        loaded.preprocess, loaded.tokenizer, choosers, len(sources), augment=config.augment, flips=flips,
        seed=config.seed,
    )
    stream = ShardStream(
        sources, weights, seed=config.seed, resample=True, shuffle_buffer=max(buffers, default=SHUFFLE_BUFFER),
        rank=rank, world_size=world_size, transform=encoder, keep_skipped=True,
    )
    return stream, StreamPlan(config.epoch_size, config.batch_size, config.grad_accum, rank, world_size)


def validation_data(specs: list[dict]) -> list[tuple[str, DataSource]]:
    """The validation sources with unique names (the source's name, numbered when two share one)."""
    sources = [open_source(spec) for spec in specs]
    names = [source.name for source in sources]
    return [
        (name if names.count(name) == 1 else f"{name}-{i}", source)
        for i, (name, source) in enumerate(zip(names, sources, strict=True))
    ]


def _streaming(value: Any, i: int) -> bool:
    if not isinstance(value, bool):
        raise InvalidInputError(f"recipe: datasets.{i}.streaming: expected true or false, got {value!r}")
    return value


def _shuffle_buffer(value: Any, i: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInputError(
            f"recipe: datasets.{i}.shuffle_buffer: expected a number of samples >= 0, got {value!r}"
        )
    return value


def caption_chooser(captions: CaptionOptions, seed: int) -> CaptionChooser:
    """The caption rule a recipe's ``captions`` mapping describes (see `TrainConfig.captions`)."""
    bank = None
    if bank_name := captions.get("bank"):
        bank = CaptionSampler(bank_name, seed, normal_class=captions.get("normal_class"))
    return CaptionChooser(
        bank, seed, from_fields=bool(captions.get("from_fields")), max_qa=int(captions.get("max_qa", 2)),
        shared=bool(captions.get("shared")), modality=captions.get("modality"), organ=captions.get("organ"),
        header_alone=float(captions.get("header_alone", 0.0)),
    )
