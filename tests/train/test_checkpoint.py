"""Checkpoints: written atomically, loadable with ``weights_only=True``, RNG states restored exactly."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from openmedclip.models import load_model
from openmedclip.train import checkpoint as ckpt
from openmedclip.train import load_recipe, train


def test_crash_while_writing_leaves_the_previous_checkpoint_complete(recipe, monkeypatch):
    config = recipe(epochs=2, keep_checkpoints=1)
    real_save = torch.save

    def failing_save(obj, path, *args, **kwargs):
        if str(path).endswith(ckpt.STATE_FILE) and "step-00000008" in str(path):
            raise OSError("disk full")
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(ckpt.torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        train(load_recipe(None, config))
    root = Path(config["out_dir"]) / "checkpoints"
    assert ckpt.latest_checkpoint(root).name == "step-00000004"
    assert list(root.glob(f"{ckpt.TMP_PREFIX}*"))  # the half-written one is still there, unused
    load_model(ckpt.latest_checkpoint(root), device="cpu")
    optimizer, state = ckpt.load_state(ckpt.latest_checkpoint(root))
    assert state["step"] == 4 and optimizer["state"]

    monkeypatch.setattr(ckpt.torch, "save", real_save)
    summary = train(load_recipe(None, {**config, "resume": True}))
    assert summary.resumed_from == 4 and summary.step == 8
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step-00000008"]


def test_rng_states_round_trip_through_weights_only_files(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    torch.save(ckpt.rng_state(), tmp_path / "rng.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    ckpt.set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
