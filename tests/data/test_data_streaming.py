"""Streamed shards (`ShardStream`): splitting by process and worker, weighted mixing, per-sample seeding, bad
samples, bounded memory."""

from __future__ import annotations

import gc
import io
import json
import logging
import pickle
import tracemalloc
from collections import Counter
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torch.utils.data import DataLoader

from openmedclip.data import ImageTextTable, WebDatasetSource, write_shards
from openmedclip.data.streaming import ShardSource, ShardStream, StreamItem, resumed_slot
from openmedclip.errors import InvalidInputError
from openmedclip.train.pairs import CaptionChooser, PairEncoder
from shard_files import write_tar


def _png(rng: np.random.Generator, size: int = 12) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def _write_table_shards(folder: Path, n: int, maxcount: int, tag: str = "s") -> Path:
    """`n` small PNGs with three captions each, as a table converted with `write_shards`."""
    rng = np.random.default_rng(len(tag) * 1000 + n)
    (folder / "img").mkdir(parents=True)
    rows = []
    for i in range(n):
        (folder / "img" / f"{tag}{i:03d}.png").write_bytes(_png(rng))
        captions = [f"{tag} {i} {word}" for word in ("one", "two", "three")]
        rows.append({"image": f"img/{tag}{i:03d}.png", "caption": captions})
    table = folder / "pairs.jsonl"
    table.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    write_shards(ImageTextTable(table), folder / "shards", maxcount=maxcount)
    return folder / "shards"


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """23 samples in 12 shards (2 per shard, the last one with 1)."""
    return _write_table_shards(tmp_path_factory.mktemp("stream"), 23, maxcount=2)


def _id(item: StreamItem) -> str:
    return item.id


def _ids(stream: ShardStream, num_workers: int) -> list:
    """What `stream` yields, read in this process or through a loader with `num_workers` workers (which turns
    tuples into lists)."""
    if num_workers == 0:
        return list(stream)
    return list(DataLoader(stream, batch_size=None, num_workers=num_workers))


def test_split_by_node_and_worker_reads_every_sample_exactly_once_per_pass(shards):
    everything = [item.sample.key for item in ShardStream([ShardSource.open(shards)], resample=False)]
    assert len(everything) == len(set(everything)) == 23
    ids: dict[tuple[int, int], list[str]] = {}
    for world_size in (1, 2, 3):
        for workers in (0, 2):
            per_rank = [
                _ids(
                    ShardStream([ShardSource.open(shards)], resample=False, shuffle_buffer=4, rank=rank,
                                world_size=world_size, transform=_id),
                    workers,
                )
                for rank in range(world_size)
            ]
            seen = [i for part in per_rank for i in part]
            assert len(seen) == len(set(seen)) == 23, (world_size, workers)
            assert all(part for part in per_rank)
            ids[(world_size, workers)] = seen
    assert set(ids[(1, 0)]) == set(ids[(3, 2)])
    # one loader worker reads exactly what the main process reads
    one = ShardStream([ShardSource.open(shards)], resample=False, shuffle_buffer=4, transform=_id)
    assert _ids(one, 1) == _ids(one, 0) == ids[(1, 0)]
    # a new epoch, a new order of the same samples
    one.set_epoch(1)
    again = _ids(one, 0)
    assert sorted(again) == sorted(ids[(1, 0)]) and again != ids[(1, 0)]


def test_weighted_resampling_gives_each_source_its_share(tmp_path, shards):
    small = ShardSource.open(_write_table_shards(tmp_path / "small", 6, maxcount=2, tag="t"))
    big = ShardSource.open(shards)
    assert (small.count, big.count) == (6, 23)
    stream = ShardStream([small, big], [1, 3], seed=5, shuffle_buffer=16)
    counts = Counter(item.source for item in islice(stream, 2000))
    assert counts[0] / 2000 == pytest.approx(0.25, abs=0.04)
    by_size = ShardStream([small, big], seed=5, shuffle_buffer=16)  # default weights: dataset.json counts
    counts = Counter(item.source for item in islice(by_size, 1000))
    assert counts[0] / 1000 == pytest.approx(6 / 29, abs=0.05)
    # resampling draws every sample of the small source; a zero weight leaves a source out
    assert len({item.id for item in islice(ShardStream([small], shuffle_buffer=4), 200)}) == 6
    assert {item.source for item in islice(ShardStream([small, big], [0, 1]), 50)} == {1}
    with pytest.raises(InvalidInputError, match="weight"):
        ShardStream([small, ShardSource(big.name, big.urls)])  # no count, no weights


def test_resampled_streams_are_seeded_by_epoch_rank_and_worker(shards):
    source = ShardSource.open(shards)

    def first(epoch: int = 0, **options) -> list[str]:
        stream = ShardStream([source], shuffle_buffer=8, transform=_id, **options)
        stream.set_epoch(epoch)
        return list(islice(iter(stream), 30))

    assert first(rank=0, world_size=2) == first(rank=0, world_size=2)
    assert first(rank=0, world_size=2) != first(rank=1, world_size=2)
    assert first(seed=1) != first(seed=2) and first(epoch=1) != first(epoch=0)
    two_workers = list(islice(iter(DataLoader(ShardStream([source], shuffle_buffer=8, transform=_id),
                                              batch_size=None, num_workers=2)), 30))
    assert two_workers[0::2] == first()[:15]  # worker 0 reads the main process's stream; worker 1 its own


class _Draws:
    """What a pair's encoder draws for an item: its crop and caption (with its id)."""

    def __init__(self, seed: int = 3):
        self.encoder = PairEncoder(_crop_of, _texts, CaptionChooser(None, seed), 1, augment=True, seed=seed)

    def __call__(self, item: StreamItem) -> tuple[str, tuple[int, ...], str]:
        crop, caption = self.encoder(item)
        return item.id, crop, caption


def _crop_of(image) -> tuple[int, ...]:
    return tuple(image.meta["crop"])


def _texts(texts: list[str]) -> list[str]:
    return texts


def test_captions_and_crops_depend_on_the_sample_not_on_workers_or_ranks(shards):
    source = ShardSource.open(shards)
    draws = {}
    for world_size, workers in ((1, 0), (1, 2), (2, 2), (3, 0)):
        seen = []
        for rank in range(world_size):
            stream = ShardStream([source], resample=False, shuffle_buffer=4, rank=rank, world_size=world_size,
                                 transform=_Draws())
            seen += _ids(stream, workers)
        draws[(world_size, workers)] = {sample_id: (tuple(crop), caption) for sample_id, crop, caption in seen}
    reference = draws[(1, 0)]
    assert len(reference) == 23
    assert all(d == reference for d in draws.values())
    assert len({caption for _, caption in reference.values()}) == 23  # one of each sample's own captions
    # another epoch draws again
    later = ShardStream([source], resample=False, transform=_Draws())
    later.set_epoch(1)
    assert {i: (c, t) for i, c, t in later} != reference
    # an endless stream sees samples again, each time with the same draws within an epoch
    repeated: dict[str, set] = {}
    for sample_id, crop, caption in islice(ShardStream([source], shuffle_buffer=8, transform=_Draws()), 120):
        repeated.setdefault(sample_id, set()).add((crop, caption))
    assert max(len(v) for v in repeated.values()) == 1 and len(repeated) > 15
    assert all(repeated[i] == {reference[i]} for i in repeated)


def test_bad_samples_are_logged_and_skipped(tmp_path, caplog):
    rng = np.random.default_rng(0)
    folder = tmp_path / "bad"
    folder.mkdir()
    write_tar(folder / "a.tar", {
        "s1.png": _png(rng), "s1.txt": b"first",
        "s2.png": b"not an image", "s2.txt": b"broken image",
        "s3.txt": b"no image at all",
        "s4.png": _png(rng), "s4.json": b"{not json",
        "s5.jpg": _png(rng), "s5.json": json.dumps({"key": "five", "captions": ["fifth"]}).encode(),
    })
    (folder / "b.tar").write_bytes(b"this is not a tar file at all" * 40)
    write_tar(folder / "c.tar", {"s6.png": _png(rng), "s6.txt": b"sixth"})
    source = ShardSource.open(folder)
    with caplog.at_level(logging.WARNING, logger="openmedclip.data.streaming"):
        stream = ShardStream([source], resample=False, shuffle_buffer=0)
        items = list(stream)
    assert sorted(item.sample.key for item in items) == ["five", "s1", "s6"]
    assert {item.sample.key: item.sample.captions for item in items}["five"] == ["fifth"]
    skipped = dict(stream.skipped)
    assert sorted(Path(key).name for key in skipped) == ["a.tar#s2", "a.tar#s3", "a.tar#s4"]
    assert "no image entry" in skipped[f"{folder / 'a.tar'}#s3"]
    logged = caplog.text
    assert all(f"a.tar#{key}" in logged for key in ("s2", "s3", "s4")) and "b.tar" in logged
    # endless: the bad samples come round again, are not logged again, and never end the stream
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="openmedclip.data.streaming"):
        endless = ShardStream([source], shuffle_buffer=0)
        keys = {item.sample.key for item in islice(endless, 60)}
    assert keys == {"five", "s1", "s6"}
    assert len(endless.skipped) == 3 and caplog.text.count("a.tar#s2") == 1


def test_a_stream_refuses_what_it_cannot_read(tmp_path, shards):
    with pytest.raises(InvalidInputError, match="not found"):
        ShardSource.open([str(tmp_path / "missing.tar")])
    with pytest.raises(InvalidInputError, match="webdataset"):
        ShardSource.from_spec({"type": "table", "path": "x.jsonl", "streaming": True})
    with pytest.raises(InvalidInputError, match="unknown option"):
        ShardSource.from_spec({"type": "wds", "path": str(shards), "streaming": True, "validate": True})
    assert ShardSource.from_spec({"type": "wds", "path": str(shards), "name": "x"}).name == "x"
    (tmp_path / "empty.tar").write_bytes(b"")
    with pytest.raises(InvalidInputError, match="no samples"):
        next(iter(ShardStream([ShardSource.open([str(tmp_path / "empty.tar")])])))


def test_restarting_after_some_batches_skips_exactly_those_batches(shards):
    assert [resumed_slot(w, 2, 5) for w in (0, 1)] == [(1, 2), (0, 3)]  # worker 0 goes on with slot 1's stream
    stream = ShardStream([ShardSource.open(shards)], shuffle_buffer=8, transform=_id)
    for workers in (0, 2):
        stream.set_epoch(3)
        batches = list(islice(iter(DataLoader(stream, batch_size=4, num_workers=workers)), 9))
        for done in (1, 5):
            stream.set_epoch(3, skip_batches=done, batch_size=4)
            rest = list(islice(iter(DataLoader(stream, batch_size=4, num_workers=workers)), 9 - done))
            assert rest == batches[done:], (workers, done)


def _noise_shards(folder: Path, n_shards: int, per_shard: int) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(1)
    for s in range(n_shards):
        members = {}
        for i in range(per_shard):
            members[f"{s:03d}-{i:02d}.png"] = _png(rng, size=48)  # noise: ~7 kB that PNG cannot compress
            members[f"{s:03d}-{i:02d}.txt"] = b"noise"
        write_tar(folder / f"shard-{s:03d}.tar", members)
    return folder


def _traced(run) -> tuple[int, int, object]:
    """(bytes still allocated after `run`, peak bytes during it, its result), from a clean start."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        result = run()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return current - base, peak - base, result


def test_memory_does_not_grow_with_the_number_of_shards(tmp_path):
    many = _noise_shards(tmp_path / "many", n_shards=50, per_shard=8)
    total = sum(p.stat().st_size for p in many.glob("*.tar"))
    held, _, in_memory = _traced(lambda: WebDatasetSource(many))
    assert len(in_memory) == 400 and held > 0.7 * total  # every image's bytes, all the time

    def stream_all(folder: Path) -> int:
        return sum(1 for _ in ShardStream([ShardSource.open(folder)], resample=False, shuffle_buffer=16))

    _, peak, count = _traced(lambda: stream_all(many))
    assert count == 400
    assert peak * 5 < held, (peak, held)  # a shuffle buffer, one open shard and one decoded image at a time
    few = _noise_shards(tmp_path / "few", n_shards=5, per_shard=8)
    _, peak_few, _ = _traced(lambda: stream_all(few))
    assert peak < 2 * peak_few + 100_000, (peak, peak_few)  # ten times the shards, about the same memory
    # the dataset itself holds the shard list, nothing per sample
    stream = ShardStream([ShardSource.open(many)], resample=False)
    assert len(pickle.dumps(stream)) < 10_000 < total
    sizes = [len(v) for v in vars(stream).values() if isinstance(v, list | tuple | set | dict)]
    assert max(sizes) < 50
