"""Two processes (torchrun, Gloo on the CPU) with batch B each train exactly like one process with batch 2B."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from openmedclip.train import load_recipe, train
from openmedclip.train.log import read_log

LR = 1e-3


@pytest.mark.slow
def test_two_ranks_equal_one_rank_with_the_same_global_batch(recipe, tiny_model_dir, toy_table, tmp_path):
    # the SigLIP run also validates: rank 0 only, while the other process waits
    val = [{"type": "table", "path": str(toy_table)}]
    runs = {"infonce-accum2": {"loss": "infonce", "grad_accum": 2}, "siglip": {"loss": "siglip", "val_datasets": val}}
    recipes = []
    for name, options in runs.items():
        path = tmp_path / f"{name}.yaml"
        two = recipe(**options, epochs=2, augment=True, lr=LR, batch_size=4, out_dir=str(tmp_path / name / "two"))
        path.write_text(yaml.safe_dump(two), encoding="utf-8")
        recipes.append(str(path))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(Path(__file__).with_name("ddp_worker.py")), *recipes]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as ranks:
        ones = {  # the one-process runs, while the two processes run
            name: train(load_recipe(None, recipe(
                **options, epochs=2, augment=True, lr=LR, batch_size=8, out_dir=str(tmp_path / name / "one")
            )))
            for name, options in runs.items()
        }
        _, stderr = ranks.communicate(timeout=300)
    assert ranks.returncode == 0, stderr[-3000:]

    initial = _split_key_bias(load_file(str(tiny_model_dir / "open_clip_model.safetensors")))
    for name, one in ones.items():
        two_dir = tmp_path / name / "two"
        records = read_log(two_dir / "log.jsonl")
        assert records[0]["world_size"] == 2 and records[0]["global_batch"] == 8 * runs[name].get("grad_accum", 1)
        losses = [r["loss"] for r in records if r["event"] == "step"]
        assert len(losses) == len(one.losses) == 2 * 32 // (8 * runs[name].get("grad_accum", 1))
        assert losses == pytest.approx(one.losses, abs=1e-5), name
        a = _split_key_bias(_weights(one.checkpoint))
        b = _split_key_bias(_weights(two_dir / "checkpoints" / one.checkpoint.name))
        assert max((a[k] - initial[k]).abs().max().item() for k in initial) > 1e-3  # it did train
        assert max((a[k] - b[k]).abs().max().item() for k in a if not k.endswith(".key_bias")) < 1e-5, name
        # Attention key biases get no true gradient (softmax ignores a per-query shift), only rounding noise,
        # which Adam's normalisation magnifies into steps of up to ~lr: they agree only within lr x steps.
        noise = max((a[k] - b[k]).abs().max().item() for k in a if k.endswith(".key_bias"))
        assert noise < LR * len(losses), name
    validations = [r for r in read_log(tmp_path / "siglip" / "two" / "log.jsonl") if r["event"] == "validation"]
    assert [v["metrics"] for v in validations] == [v["metrics"] for v in ones["siglip"].validation]


def _weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint / "open_clip_model.safetensors"))


def _split_key_bias(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``attn.in_proj_bias`` split into its query/value part and its key part (``.key_bias``)."""
    out = {}
    for name, value in weights.items():
        if name.endswith("attn.in_proj_bias"):
            q, k, v = value.chunk(3)
            out[name], out[name + ".key_bias"] = torch.cat([q, v]), k
        else:
            out[name] = value
    return out
