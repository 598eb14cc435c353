"""A build killed with SIGKILL keeps what it committed, and the next build goes on from there; several processes
(torchrun, CPU) build the same index as one."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from index_support import CORRUPT

from openmedclip.index import build_index, open_index

N_GOOD = 12

KILLABLE_BUILD = """
import sys, time
import openmedclip.embed as embed
from openmedclip.index import build_index

real, calls = embed.encode_images, []

def slow_after_the_first_chunk(*args, **kwargs):
    result = real(*args, **kwargs)
    calls.append(1)
    if len(calls) > 1:  # the second chunk is encoded but never committed: the process is killed here
        time.sleep(120)
    return result

embed.encode_images = slow_after_the_first_chunk
build_index(sys.argv[1], sys.argv[2], sys.argv[3], commit_every=4, device="cpu", precision="fp32")
"""


def _environment() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OPENMEDCLIP_PRECISION": "fp32", "OMP_NUM_THREADS": "1"}


def _query(out: Path, sql: str) -> list[tuple]:
    db = out / "index.sqlite"
    if not db.is_file():
        return []
    try:
        with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True) as connection:
            return connection.execute(sql).fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []


def _rows(out: Path) -> list[tuple[str, bytes]]:
    """``(path, vector bytes)`` of every indexed file, by path."""
    return _query(out, "SELECT path, vector FROM items ORDER BY path")


def _settled(out: Path) -> int:
    """Files committed so far, indexed or failed."""
    found = _query(out, "SELECT (SELECT count(*) FROM items) + (SELECT count(*) FROM failures)")
    return int(found[0][0]) if found else 0


def test_a_killed_build_loses_nothing_committed_and_the_next_one_continues(
    tiny_model, tiny_model_dir, archive, tmp_path, encoded_paths
):
    out = tmp_path / "idx"
    child = subprocess.Popen([sys.executable, "-c", KILLABLE_BUILD, str(archive), str(tiny_model_dir), str(out)],
                             env=_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while _settled(out) < 4 and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # well into the second chunk
        assert child.poll() is None, child.communicate()[1].decode()[-2000:]
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)
    committed = _rows(out)
    paths = sorted(p.relative_to(archive).as_posix() for p in archive.rglob("*") if p.is_file())
    first_chunk = [path for path in paths[:4] if path != CORRUPT]
    assert [path for path, _ in committed] == first_chunk  # exactly the first chunk: no FAISS file yet
    assert not list(out.glob("vectors-*.faiss"))
    assert open_index(out).count == len(first_chunk)  # the FAISS index is derived from the store on open

    report = build_index(archive, tiny_model, out, commit_every=4)
    assert sorted(encoded_paths) == sorted(str(archive / path) for path in paths[4:])
    assert report.unchanged == len(first_chunk) and report.added == N_GOOD - len(first_chunk)
    final = _rows(out)
    assert [path for path, _ in final] == sorted(set(paths) - {CORRUPT})  # each file once
    assert dict(final)[first_chunk[0]] == dict(committed)[first_chunk[0]]
    assert open_index(out).count == N_GOOD


@pytest.mark.slow
def test_torchrun_on_two_processes_builds_the_single_process_index(tiny_model, tiny_model_dir, archive, tmp_path):
    merged, single = tmp_path / "merged", tmp_path / "single"
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "openmedclip.cli", "index", "build", str(archive), "--out", str(merged), "-m", str(tiny_model_dir),
         "--device", "cpu", "--batch-size", "2"],
        env=_environment(), capture_output=True, text=True, timeout=300, check=False,
    )
    assert f"skipped {CORRUPT}" in done.stderr, done.stderr[-3000:]  # exit 1 for the corrupt file, as zeroshot
    summaries = [line for line in done.stdout.splitlines() if "file(s) indexed" in line]
    assert len(summaries) == 1 and f"{N_GOOD} added" in summaries[0] and "1 failed" in summaries[0]
    assert not list((merged / "parts").glob("*.sqlite"))
    assert _query(merged, "SELECT path FROM failures") == [(CORRUPT,)]
    build_index(archive, tiny_model, single)
    ours, theirs = _rows(merged), _rows(single)
    assert [path for path, _ in ours] == [path for path, _ in theirs] and len(ours) == N_GOOD
    for (_, a), (_, b) in zip(ours, theirs, strict=True):
        assert np.allclose(np.frombuffer(a, "<f4"), np.frombuffer(b, "<f4"), atol=1e-5)
    assert open_index(merged).count == N_GOOD
