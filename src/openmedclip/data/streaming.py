"""`ShardStream`: WebDataset shards read lazily, as an `IterableDataset`, for training data larger than memory.

`WebDatasetSource` reads every shard into memory up front; a `ShardStream` opens one shard at a time per source
and per loader worker and keeps only a shuffle buffer of still-encoded samples (``shuffle_buffer`` of them),
decoding each sample when it leaves the buffer. What a stream holds does not grow with the number of shards or
samples: only the shard lists, one open tar stream per source and the buffer.

Where the samples come from (one stream per process and loader worker):

- ``resample=True`` (training): every (process, worker) reads its own endless stream. Each source's shards are
  drawn with replacement (`webdataset.ResampledShards`, deterministic seed), and each sample is taken from a
  source chosen at random in proportion to the weights, so over many samples each source's share approaches
  ``weight / sum(weights)``. The trainer takes exactly as many samples as it needs from it.
- ``resample=False`` (one pass): the shard list, shuffled by (seed, epoch) the same way everywhere, is split by
  process (rank) and then by loader worker, as `webdataset.split_by_node` and `split_by_worker` do; together
  the streams of all processes and workers cover every readable sample exactly once. Sources are interleaved
  at random by weight until all are used up. A process or worker with no shard left to read yields nothing, so
  give at least ``world_size * num_workers`` shards.

Seeding: the order (shard draws, source choices, shuffle buffer) is seeded by (seed, epoch, rank, worker), so a
run is reproducible for a fixed number of processes and loader workers, and differs when they change. What is
drawn *for a sample* (its caption, its random crop: see `openmedclip.train.pairs.PairEncoder`) depends only on
(seed, sample id, epoch), where the id is ``"<shard url>#<__key__>"`` (`StreamItem.id`), never on the process or
worker that read it.

Samples without an image entry, with an undecodable image or an unreadable ``json`` are logged (once per id and
process) and skipped, or, with ``keep_skipped``, yielded as `SkippedItem` markers for the consumer to count and
report; unreadable or truncated shards are logged and skipped. None of them ends the stream.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from torch.utils.data import IterableDataset, get_worker_info

from openmedclip.data.base import Sample, SkippedItem
from openmedclip.data.factory import canonical_type
from openmedclip.data.webds import IMAGE_EXTS, _dataset_info, shard_urls
from openmedclip.errors import ImageReadError, InvalidInputError
from openmedclip.io import read_image_bytes

log = logging.getLogger(__name__)

SHUFFLE_BUFFER = 1000
"""Default number of (encoded) samples in the shuffle buffer of each process and worker."""
SPEC_KEYS = ("type", "path", "urls", "name", "streaming")
"""Keys a streaming dataset spec may hold once the trainer has taken ``weight``, ``captions`` and
``shuffle_buffer`` from it."""


@dataclass(frozen=True)
class ShardSource:
    """One streamed source: its shard urls, a name and, when `write_shards`'s ``dataset.json`` lists exactly these
    shards, its sample count (the default weight)."""

    name: str
    urls: tuple[str, ...]
    count: int | None = None

    @classmethod
    def open(cls, urls: str | Path | Sequence[str | Path], *, name: str | None = None) -> ShardSource:
        """The shards of a folder (its ``*.tar``), a brace pattern or a list, checked to exist (local ones)."""
        found = shard_urls(urls)
        info = _dataset_info(found)
        listed = info.get("shards")
        count = info.get("count") if listed and sorted(listed) == sorted(Path(u).name for u in found) else None
        return cls(name or info.get("name") or Path(found[0]).parent.name, tuple(found), count)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> ShardSource:
        """A recipe's ``{type: webdataset, path: shards/, streaming: true, name: ...}`` entry."""
        kind = canonical_type(str(spec.get("type", "webdataset")))
        if kind != "webdataset":
            raise InvalidInputError(
                f"dataset {spec.get('path')!r}: 'streaming: true' needs webdataset shards (type: webdataset), "
                f"not type {spec.get('type')!r}; convert it with 'openmedclip shards' first"
            )
        unknown = sorted(set(spec) - set(SPEC_KEYS))
        if unknown:
            raise InvalidInputError(
                f"streaming dataset {spec.get('path')!r}: unknown option(s) {unknown}; accepted: "
                "path, name, weight, captions, shuffle_buffer"
            )
        urls = spec.get("path", spec.get("urls"))
        if urls is None:
            raise InvalidInputError("streaming dataset: missing 'path' (a shard folder, brace pattern or list)")
        return cls.open(urls, name=spec.get("name"))


@dataclass
class StreamItem:
    """One decoded sample of a stream: which source it came from, its id (``"<shard url>#<__key__>"``, what
    per-sample draws are seeded with), the epoch it was read for, and the sample."""

    source: int
    id: str
    epoch: int
    sample: Sample


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from `parts`, the same in every process (unlike `hash` of a string)."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def worker_slot() -> tuple[int, int]:
    """``(worker id, number of workers)`` of the current DataLoader worker; ``(0, 1)`` in the main process."""
    info = get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


def resumed_slot(worker: int, workers: int, skip_batches: int) -> tuple[int, int]:
    """``(slot, samples to skip)`` of loader worker `worker` of `workers` when a loader restarts a stream after
    its first `skip_batches` batches (in units of samples, per batch: multiply by the batch size).

    A DataLoader over an iterable dataset takes batch ``i`` from worker ``i % workers``, each worker batching its
    own stream. Restarted, its batch ``j`` is batch ``skip_batches + j`` of the uninterrupted loader, which came
    from the stream of worker ``(skip_batches + j) % workers``: so worker ``w`` reads the stream of slot
    ``(w + skip_batches) % workers`` (what seeds it), less that slot's share of the skipped batches.
    """
    slot = (worker + skip_batches) % workers
    return slot, len(range(slot, skip_batches, workers))


class ShardStream(IterableDataset):
    """Samples of several shard sources, mixed by weight, decoded lazily (see the module docstring).

    ``weights`` default to the sources' sample counts from ``dataset.json`` (a single source needs none).
    ``rank``/``world_size`` default to what `webdataset` finds (torchrun's environment or the process group).
    ``transform`` maps each `StreamItem` to what the stream yields (e.g. pixels and tokens), in the worker;
    without it the items themselves are yielded. With ``keep_skipped``, each unreadable sample is yielded as a
    `SkippedItem` (not transformed, not logged) instead of being logged and left out. Call `set_epoch` before
    iterating for each epoch.
    """

    def __init__(
        self,
        sources: Sequence[ShardSource],
        weights: Sequence[float] | None = None,
        *,
        seed: int = 0,
        resample: bool = True,
        shuffle_buffer: int = SHUFFLE_BUFFER,
        rank: int | None = None,
        world_size: int | None = None,
        transform: Callable[[StreamItem], Any] | None = None,
        keep_skipped: bool = False,
    ):
        super().__init__()
        self.sources = list(sources)
        if not self.sources:
            raise InvalidInputError("a shard stream needs at least one source")
        self.weights = self._weights(weights)
        self.seed = seed
        self.resample = resample
        self.shuffle_buffer = int(shuffle_buffer)
        if self.shuffle_buffer < 0:
            raise InvalidInputError(f"shuffle_buffer must be >= 0, got {shuffle_buffer}")
        if rank is None or world_size is None:
            from webdataset.utils import pytorch_worker_info

            found_rank, found_world = pytorch_worker_info()[:2]
            rank = found_rank if rank is None else rank
            world_size = found_world if world_size is None else world_size
        if not 0 <= rank < world_size:
            raise InvalidInputError(f"rank {rank} is not one of {world_size} processes")
        self.rank, self.world_size = rank, world_size
        self.transform = transform
        self.keep_skipped = keep_skipped
        self.epoch, self.skip_batches, self.batch_size = 0, 0, 1
        self.skipped: list[tuple[str, str]] = []
        """(sample id, reason) of each sample skipped in this process (a loader worker keeps its own)."""
        self._reported: set[str] = set()

    def _weights(self, weights: Sequence[float] | None) -> list[float]:
        if weights is None:
            if len(self.sources) == 1:
                return [1.0]
            unknown = [s.name for s in self.sources if s.count is None]
            if unknown:
                raise InvalidInputError(
                    f"give every streamed dataset a 'weight': the sample count of {unknown} is unknown "
                    "(no dataset.json listing exactly these shards)"
                )
            weights = [float(s.count or 0) for s in self.sources]
        weights = [float(w) for w in weights]
        if len(weights) != len(self.sources):
            raise InvalidInputError(f"need one weight per source: {len(self.sources)} sources, {len(weights)} weights")
        if min(weights) < 0 or sum(weights) <= 0:
            raise InvalidInputError(f"weights must be >= 0 with a positive sum, got {weights}")
        return weights

    def set_epoch(self, epoch: int, *, skip_batches: int = 0, batch_size: int = 1) -> None:
        """Read `epoch`'s stream next, leaving out its first `skip_batches` loader batches of `batch_size`: a
        DataLoader (same batch size and number of workers) then yields what an uninterrupted one yields from
        its batch `skip_batches` on (see `resumed_slot`).

        Skipped samples are read and decoded (to skip exactly the samples a loader would have batched: bad ones
        too with ``keep_skipped``, else not) but not transformed. Skipping assumes full batches, as an endless
        stream gives."""
        self.epoch, self.skip_batches, self.batch_size = int(epoch), int(skip_batches), int(batch_size)

    # -- the stream -----------------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Any]:
        import webdataset as wds

        worker, workers = worker_slot()
        slot, skip_batches = resumed_slot(worker, workers, self.skip_batches)
        epoch = self.epoch
        where = (self.seed, epoch, self.rank, slot)
        active = [s for s, w in enumerate(self.weights) if w > 0]
        streams = {s: self._source_records(s, epoch, slot, workers) for s in active}
        records = self._mix(streams, random.Random("|".join(map(str, (*where, "mix")))))
        if self.shuffle_buffer > 1:
            rng = random.Random("|".join(map(str, (*where, "shuffle"))))
            records = wds.shuffle(self.shuffle_buffer, initial=self.shuffle_buffer, rng=rng)(records)
        skip = skip_batches * self.batch_size
        for record in records:
            item = self._decode(record, epoch)
            if item is None:
                continue
            if skip:
                skip -= 1
                continue
            yield item if self.transform is None or isinstance(item, SkippedItem) else self.transform(item)

    def _shards(self, s: int, epoch: int, slot: int, workers: int) -> Iterator[dict]:
        """``{"url": ...}`` for each shard this process reads from source `s` in worker slot `slot`."""
        import webdataset as wds

        urls = list(self.sources[s].urls)
        seed = stable_seed(self.seed, epoch, s, "shards")
        if self.resample:
            where = stable_seed(self.rank, slot)
            yield from wds.ResampledShards(urls, seed=seed, worker_seed=lambda: where, deterministic=True)
            return
        # the same shuffled list everywhere, then split_by_node and split_by_worker with explicit positions
        mine = islice(iter(wds.SimpleShardList(urls, seed=seed)), self.rank, None, self.world_size)
        yield from islice(mine, slot, None, workers)

    def _source_records(self, s: int, epoch: int, slot: int, workers: int) -> Iterator[dict]:
        """Source `s`'s encoded samples (dicts of tar entries), shard after shard."""
        import webdataset as wds

        source = self.sources[s]
        read = wds.tarfile_to_samples(handler=self._shard_error)
        empty_run = 0
        for shard in self._shards(s, epoch, slot, workers):
            found = 0
            for record in read(iter([shard])):
                found += 1
                record["__source__"] = s
                yield record
            empty_run = 0 if found else empty_run + 1
            if self.resample and empty_run >= 2 * len(source.urls) + 10:
                raise InvalidInputError(f"{source.name}: {empty_run} shards in a row held no samples; are they tars?")

    def _mix(self, streams: dict[int, Iterator[dict]], rng: random.Random) -> Iterator[dict]:
        """One record at a time from a source chosen by weight; a used-up source leaves the mix. (webdataset's
        `RandomMix` does this with the global `random` state, which no stream seeds, hence this seeded copy.)"""
        live = dict(streams)
        while live:
            keys = list(live)
            s = keys[0] if len(keys) == 1 else rng.choices(keys, weights=[self.weights[k] for k in keys])[0]
            try:
                yield next(live[s])
            except StopIteration:
                del live[s]

    def _shard_error(self, error: Exception) -> bool:
        """webdataset's error handler: log a shard that cannot be opened or read, and go on."""
        log.warning("skipped part of a shard: %s", error)
        return True

    def _decode(self, record: dict, epoch: int) -> StreamItem | SkippedItem | None:
        """The sample of one record; when it has no readable image, None (logged), or with ``keep_skipped`` a
        `SkippedItem`."""
        s = record["__source__"]
        sample_id = f"{record['__url__']}#{record['__key__']}"
        try:
            info = json.loads(record["json"]) if "json" in record else {}
            if not isinstance(info, dict):
                raise ValueError(f"json holds a {type(info).__name__}, not an object")
            ext = next((e for e in IMAGE_EXTS if e in record), None)
            if ext is None:
                raise ImageReadError(sample_id, "no image entry")
            image = read_image_bytes(record[ext], sample_id)
            text = record["txt"].decode("utf-8").strip() if "txt" in record else ""
        except ImageReadError as err:
            return self._report(s, sample_id, err.problem)
        except (OSError, ValueError) as err:  # json and utf-8 errors are ValueErrors
            return self._report(s, sample_id, f"{type(err).__name__}: {err}")
        sample = Sample(
            image,
            list(info.get("captions") or ([text] if text else [])),
            list(info.get("labels") or []),
            str(info.get("key") or record["__key__"]),
            dict(info.get("meta") or {}),
        )
        return StreamItem(s, sample_id, epoch, sample)

    def _report(self, s: int, sample_id: str, reason: str) -> SkippedItem | None:
        """Record an unreadable sample (logged once per id, unless ``keep_skipped`` gives it to the consumer)."""
        if sample_id not in self._reported:
            self._reported.add(sample_id)
            self.skipped.append((sample_id, reason))
            if not self.keep_skipped:
                log.warning("%s: skipped sample %s (%s)", self.sources[s].name, sample_id, reason)
        return SkippedItem(sample_id, reason) if self.keep_skipped else None

    def __repr__(self) -> str:
        names = ", ".join(f"{s.name}×{w:g} ({len(s.urls)} shards)" for s, w in zip(self.sources, self.weights))
        return (
            f"ShardStream([{names}], resample={self.resample}, shuffle_buffer={self.shuffle_buffer}, "
            f"rank={self.rank}/{self.world_size})"
        )
