"""Training on streamed shards (``streaming: true``): learning, checkpoints, loader workers, resume, refusals."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from openmedclip.data import ImageTextTable, write_shards
from openmedclip.errors import InvalidInputError
from openmedclip.models import load_model
from openmedclip.train import load_recipe, train
from openmedclip.train.checkpoint import latest_checkpoint, load_state
from openmedclip.train.log import read_log


@pytest.fixture(scope="module")
def toy_shards(toy_table, tmp_path_factory) -> Path:
    """The toy pairs as 8 shards of 4 (`write_shards`, with its dataset.json)."""
    out = tmp_path_factory.mktemp("toy_shards") / "shards"
    write_shards(ImageTextTable(toy_table), out, maxcount=4)
    return out


@pytest.fixture()
def streamed(recipe, toy_shards):
    """Overrides of a small run streaming the toy shards, with `changes` applied."""

    def make(**changes) -> dict:
        dataset = {"type": "webdataset", "path": str(toy_shards), "streaming": True, "shuffle_buffer": 16}
        return recipe(**{"datasets": [dataset], "epoch_size": 32, **changes})

    return make


def test_streamed_run_learns_and_leaves_a_loadable_checkpoint(streamed, toy_table):
    val = [{"type": "table", "path": str(toy_table)}]
    summary = train(load_recipe(None, streamed(epochs=4, val_datasets=val, val_every=4)))
    assert summary.steps_per_epoch == 4 and summary.step == 16 and len(summary.losses) == 16
    assert sum(summary.losses[-4:]) / 4 < sum(summary.losses[:4]) / 4 - 0.3
    records = read_log(summary.out_dir / "log.jsonl")
    assert records[0]["streaming"] is True and records[0]["steps_per_epoch"] == 4
    assert [r["step"] for r in records if r["event"] == "step"] == list(range(1, 17))
    assert [r["event"] for r in records].count("validation") == 1
    state = load_state(summary.checkpoint)[1]
    assert state["stream"] == {"world_size": 1, "num_workers": 0} and state["epoch"] == 4
    loaded = load_model(summary.checkpoint, device="cpu")
    assert loaded.model.logit_scale.exp().item() > 0


def test_two_loader_workers_grad_accum_and_resume_continue_the_same_stream(streamed):
    # 3 micro-batches per step: resuming after one step, the loader's workers swap streams (see `resumed_slot`)
    options = {"epochs": 2, "epoch_size": 24, "batch_size": 4, "grad_accum": 3, "num_workers": 2, "augment": True}
    straight = train(load_recipe(None, streamed(**options, out_dir=str(streamed()["out_dir"]) + "-straight")))
    assert straight.step == 4 and straight.steps_per_epoch == 2
    first = train(load_recipe(None, streamed(**options, max_steps=3)))
    state = load_state(first.checkpoint)[1]
    assert (state["epoch"], state["step_in_epoch"], state["step"]) == (1, 1, 3)  # inside the second epoch
    rest = train(load_recipe(None, streamed(**options, resume=True)))
    assert rest.resumed_from == 3 and rest.step == 4
    assert first.losses + rest.losses == pytest.approx(straight.losses, abs=1e-6)
    assert len(set(straight.losses)) == 4


def test_resuming_with_other_loader_workers_warns(streamed, caplog):
    train(load_recipe(None, streamed(max_steps=1)))
    with caplog.at_level(logging.WARNING, logger="openmedclip.train.loop"):
        resumed = train(load_recipe(None, streamed(max_steps=2, resume=True, num_workers=1)))
    assert resumed.step == 2 and "num_workers" in caplog.text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"epoch_size": None}, "need 'epoch_size'"),
        ({"extra": {"type": "table", "path": "TABLE"}}, "stream every dataset or none"),
        ({"first": {"streaming": "yes"}}, "streaming: expected true or false"),
        ({"first": {"type": "table", "path": "TABLE"}}, "needs webdataset shards"),
        ({"first": {"shuffle_buffer": -1}}, "shuffle_buffer"),
        ({"first": {"validate": True}}, "unknown option"),
        ({"epoch_size": 4}, "smaller than one global batch"),
    ],
)
def test_streaming_recipes_that_cannot_run_are_refused(streamed, toy_table, change, message):
    options = streamed()
    dataset = dict(options["datasets"][0])
    dataset.update({k: str(toy_table) if v == "TABLE" else v for k, v in change.pop("first", {}).items()})
    options["datasets"] = [dataset]
    if "extra" in change:
        options["datasets"].append({**change.pop("extra"), "path": str(toy_table)})
    options.update(change)
    with pytest.raises(InvalidInputError, match=message):
        train(load_recipe(None, options))


@pytest.mark.slow
def test_two_processes_train_on_their_own_streams(streamed, tmp_path):
    path = tmp_path / "ddp.yaml"
    options = streamed(epochs=1, epoch_size=32, batch_size=4, grad_accum=2, out_dir=str(tmp_path / "two"))
    path.write_text(yaml.safe_dump(options), encoding="utf-8")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(Path(__file__).with_name("ddp_worker.py")), str(path)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    records = read_log(tmp_path / "two" / "log.jsonl")
    assert records[0]["world_size"] == 2 and records[0]["global_batch"] == 16 and records[0]["streaming"]
    losses = [r["loss"] for r in records if r["event"] == "step"]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    state = load_state(latest_checkpoint(tmp_path / "two" / "checkpoints"))[1]
    assert state["stream"] == {"world_size": 2, "num_workers": 0} and state["step"] == 2
