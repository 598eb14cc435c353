"""The warm-up + cosine schedule and reading recipes."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from openmedclip.errors import InvalidInputError
from openmedclip.train.config import load_recipe
from openmedclip.train.schedule import WarmupCosine, warmup_cosine

REPO = Path(__file__).resolve().parents[2]


def test_warmup_then_cosine_to_zero():
    f = WarmupCosine(warmup_steps=4, total_steps=14)
    assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(9) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert f(14) == pytest.approx(0.0) and f(20) == pytest.approx(0.0)


def test_scheduler_state_round_trips_with_weights_only(tmp_path):
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=1.0)
    sched = warmup_cosine(opt, 2, 10)
    for _ in range(3):
        opt.step()
        sched.step()
    torch.save(sched.state_dict(), tmp_path / "s.pt")
    again = warmup_cosine(torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=1.0), 2, 10)
    again.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    assert again.get_last_lr() == sched.get_last_lr()


def test_recipe_with_typed_and_dotted_overrides(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("model: ViT-B-32\ndatasets:\n  - {type: table, path: a.jsonl, weight: 2}\nlr: 1.0e-4\n")
    config = load_recipe(path, {"lr": "3e-5", "lock-image": "2", "datasets.0.path": "b.jsonl", "resume": "true"})
    assert config.lr == 3e-5 and config.lock_image == 2 and config.resume is True
    assert config.datasets == [{"type": "table", "path": "b.jsonl", "weight": 2}]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"batch_size": "0"}, "batch_size"),
        ({"precision": "fp8"}, "precision"),
        ({"loss": "triplet"}, "loss"),
        ({"lr": "fast"}, "lr"),
        ({"colour": "blue"}, "unknown option"),
        ({"datasets": "[]"}, "datasets"),
    ],
)
def test_bad_recipes_are_named(overrides, message):
    base = {"model": "ViT-B-32", "datasets": "[{type: table, path: a.jsonl}]"}
    with pytest.raises(InvalidInputError, match=message):
        load_recipe(None, {**base, **overrides})


def test_shipped_recipes_load():
    config = load_recipe(REPO / "configs" / "train" / "tiny-smoke.yaml")
    assert config.datasets and config.val_datasets
