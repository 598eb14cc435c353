"""The warm-up + cosine schedule and reading recipes."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from openmedclip.errors import InvalidInputError
from openmedclip.train.config import TrainConfig, load_recipe
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
        ({"batch_size": "0"}, "recipe: batch_size: Input should be greater than or equal to 1 (got 0)"),
        ({"precision": "fp8"}, "recipe: precision: Input should be 'fp32', 'bf16', 'fp16' or 'auto' (got 'fp8')"),
        ({"loss": "triplet"}, "recipe: loss: Input should be 'infonce' or 'siglip'"),
        ({"lr": "fast"}, "recipe: lr: expected a number (got 'fast')"),
        ({"lr": "true"}, "recipe: lr: expected a number (got True)"),
        ({"lr": "0"}, "recipe: lr: Input should be greater than 0"),
        ({"epochs": "1.5"}, "recipe: epochs: expected an integer (got 1.5)"),
        ({"lock_text": "-1"}, "recipe: lock_text: must be true/false or a number of unlocked layers >= 0"),
        ({"colour": "blue"}, "recipe: colour: unknown key (known: model, datasets, checkpoint,"),
        ({"batch_sizee": "8"}, "recipe: batch_sizee: unknown key (did you mean 'batch_size'?)"),
        ({"captions.bankk": "fundus"}, "recipe: captions.bankk: unknown key (did you mean 'bank'?)"),
        ({"datasets.0.captions": "{bankk: fundus}"}, "recipe: datasets.0.captions.bankk: unknown key"),
        ({"datasets.0.weight": "heavy"}, "recipe: datasets.0.weight: expected a number (got 'heavy')"),
        ({"datasets": "[]"}, "recipe: datasets: needs at least 1 item"),
        ({"datasets": "[a.jsonl]"}, "recipe: datasets.0: expected a mapping (got 'a.jsonl')"),
    ],
)
def test_bad_recipes_are_named(overrides, message):
    base = {"model": "ViT-B-32", "datasets": "[{type: table, path: a.jsonl}]"}
    with pytest.raises(InvalidInputError) as error:
        load_recipe(None, {**base, **overrides})
    assert str(error.value).startswith(message)


def test_recipe_errors_name_the_file_and_missing_options(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("model: ViT-B-32\ndatasets:\n  - {type: table, path: a.jsonl, captions: {bankk: x}}\n")
    with pytest.raises(InvalidInputError, match=r"r\.yaml: recipe: datasets\.0\.captions\.bankk: unknown key"):
        load_recipe(path)
    with pytest.raises(InvalidInputError, match="recipe: missing 'model', 'datasets'"):
        load_recipe(None)


def test_constructing_a_bad_config_raises_invalid_input():
    with pytest.raises(InvalidInputError, match=r"^recipe: epochs: Input should be greater than or equal to 1"):
        TrainConfig(model="m", datasets=[{"type": "table"}], epochs=0)


def test_paths_and_ints_convert():
    overrides = {"model": Path("m"), "datasets": [{"type": "table"}], "out_dir": Path("runs/x"), "lr": 1}
    config = load_recipe(None, overrides)
    assert config.model == "m" and config.out_dir == "runs/x"
    assert config.lr == 1.0 and isinstance(config.lr, float)


def test_to_dict_is_plain_data():
    config = load_recipe(None, {"model": "m", "datasets": "[{type: table, path: a.jsonl, captions: {bank: x}}]"})
    assert config.to_dict()["datasets"] == [{"type": "table", "path": "a.jsonl", "captions": {"bank": "x"}}]
    assert config.to_dict()["captions"] == {} and config.to_dict()["lock_image"] is False


@pytest.mark.parametrize("recipe", sorted((REPO / "configs" / "train").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_recipes_load(recipe):
    config = load_recipe(recipe)
    assert config.datasets and config.val_datasets
