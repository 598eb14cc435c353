"""End-to-end runs on the tiny model and toy pairs: learning, logs, checkpoints, resume, locks, precision."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from openmedclip.models import load_model
from openmedclip.train import load_recipe, train
from openmedclip.train.checkpoint import latest_checkpoint, load_state
from openmedclip.train.log import read_log


def _weights(checkpoint) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint / "open_clip_model.safetensors"))


def test_loss_decreases_and_run_leaves_log_and_loadable_checkpoint(recipe, toy_table):
    summary = train(load_recipe(None, recipe(epochs=4, val_datasets=[{"type": "table", "path": str(toy_table)}])))
    assert summary.step == 16 and summary.epoch == 4 and len(summary.losses) == 16
    assert sum(summary.losses[-4:]) / 4 < sum(summary.losses[:4]) / 4 - 0.3
    records = read_log(summary.out_dir / "log.jsonl")
    steps = [r for r in records if r["event"] == "step"]
    assert [r["step"] for r in steps] == list(range(1, 17))
    assert [r["loss"] for r in steps] == pytest.approx(summary.losses)
    validations = [r for r in records if r["event"] == "validation"]
    assert len(validations) == 4 and set(validations[0]["metrics"]["pairs"]) == {
        f"{kind}_retrieval_recall@{k}" for kind in ("image", "text") for k in (1, 5, 10)
    } | {"n_images", "n_skipped"}
    first, last = validations[0]["metrics"]["pairs"], validations[-1]["metrics"]["pairs"]
    assert last["text_retrieval_recall@5"] > first["text_retrieval_recall@5"]
    loaded = load_model(summary.checkpoint, device="cpu")
    assert torch.equal(loaded.model.state_dict()["logit_scale"], _weights(summary.checkpoint)["logit_scale"])
    assert len(list((summary.out_dir / "checkpoints").glob("step-*"))) == 2  # keep_checkpoints


def test_resume_continues_the_same_loss_curve(recipe):
    options = {"epochs": 3, "grad_accum": 2, "batch_size": 4, "augment": True}
    straight = train(load_recipe(None, recipe(**options, out_dir=str(recipe()["out_dir"]) + "-straight")))
    first = train(load_recipe(None, recipe(**options, max_steps=5)))
    assert first.step == 5 and first.epoch == 1  # stopped in the middle of the second epoch
    state = load_state(first.checkpoint)[1]
    assert (state["epoch"], state["step_in_epoch"], state["step"]) == (1, 1, 5)
    rest = train(load_recipe(None, recipe(**options, resume=True)))
    assert rest.resumed_from == 5 and rest.step == straight.step == 12
    assert first.losses + rest.losses == pytest.approx(straight.losses, abs=1e-6)
    logged = [r["loss"] for r in read_log(rest.out_dir / "log.jsonl") if r["event"] == "step"]
    assert logged == pytest.approx(straight.losses, abs=1e-6)
    a, b = _weights(straight.checkpoint), _weights(rest.checkpoint)
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6


def test_resume_without_checkpoint_starts_afresh_and_after_the_end_does_nothing(recipe):
    done = train(load_recipe(None, recipe(epochs=1, resume=True)))
    assert done.resumed_from is None and done.step == 4
    again = train(load_recipe(None, recipe(epochs=1, resume=True)))
    assert again.resumed_from == 4 and again.losses == [] and again.checkpoint == latest_checkpoint(
        done.out_dir / "checkpoints"
    )


def test_locked_towers_do_not_change(recipe, tiny_model_dir):
    before = load_file(str(tiny_model_dir / "open_clip_model.safetensors"))
    summary = train(load_recipe(None, recipe(epochs=1, lock_image=True, lock_text=2)))
    after = _weights(summary.checkpoint)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert not any(k.startswith("visual.") for k in changed)
    frozen_text = ("transformer.resblocks.0.", "token_embedding", "positional_embedding")
    assert not any(k.startswith(frozen_text) for k in changed)
    # lock_text=2 leaves open_clip's last two groups trainable: the projection, and the last block + final norm
    assert {"text_projection", "ln_final.weight", "logit_scale"} <= changed
    assert any(k.startswith("transformer.resblocks.1.") for k in changed)


def test_bf16_autocast_step_on_cpu(recipe):
    summary = train(load_recipe(None, recipe(precision="bf16", max_steps=2, grad_accum=2, batch_size=4)))
    assert len(summary.losses) == 2 and all(torch.isfinite(torch.tensor(summary.losses)))
    assert all(t.dtype == torch.float32 for t in _weights(summary.checkpoint).values())


@pytest.mark.parametrize("fast_bf16", [True, False])
def test_auto_precision_is_bf16_only_on_a_cpu_with_bf16_units(recipe, monkeypatch, fast_bf16):
    import openmedclip.hardware as hardware
    from openmedclip.precision import PRECISION_ENV

    monkeypatch.delenv(PRECISION_ENV, raising=False)
    info = hardware.CpuInfo("test cpu", frozenset({"amx_bf16", "amx_tile"} if fast_bf16 else {"avx2"}), "AVX2")
    monkeypatch.setattr(hardware, "cpu_info", lambda: info)
    seen: list[torch.dtype] = []
    original = torch.nn.Linear.forward

    def recording(self, x):
        out = original(self, x)
        seen.append(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.Linear, "forward", recording)
    summary = train(load_recipe(None, recipe(precision="auto", max_steps=1)))
    start = next(r for r in read_log(summary.out_dir / "log.jsonl") if r["event"] == "start")
    assert start["precision"] == ("bf16" if fast_bf16 else "fp32")
    assert set(seen) == {torch.bfloat16 if fast_bf16 else torch.float32}
    assert all(t.dtype == torch.float32 for t in _weights(summary.checkpoint).values())


def test_siglip_adds_a_bias_that_the_checkpoint_keeps(recipe):
    summary = train(load_recipe(None, recipe(loss="siglip", max_steps=3)))
    loaded = load_model(summary.checkpoint, device="cpu")
    assert loaded.model.logit_bias is not None
    assert loaded.model.logit_bias.item() != pytest.approx(-10.0)  # trained away from its initial value


def test_gradient_checkpointing_and_loader_workers_change_nothing(recipe):
    plain = train(load_recipe(None, recipe(epochs=1, augment=True)))
    other = recipe(epochs=1, augment=True, grad_checkpointing=True, num_workers=2)
    varied = train(load_recipe(None, {**other, "out_dir": other["out_dir"] + "-varied"}))
    assert varied.losses == pytest.approx(plain.losses, abs=1e-6)


def test_a_corrupt_validation_image_is_skipped_and_the_checkpoint_still_written(recipe, toy_table, tmp_path):
    import shutil

    val = tmp_path / "val"
    shutil.copytree(toy_table.parent, val)
    (val / "img" / "003.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    val_datasets = [{"type": "table", "path": str(val / "pairs.jsonl")}]
    summary = train(load_recipe(None, recipe(epochs=1, val_datasets=val_datasets)))
    metrics = summary.validation[0]["metrics"]["pairs"]
    assert metrics["n_skipped"] == 1 and metrics["n_images"] == 31
    assert 0 <= metrics["text_retrieval_recall@1"] <= 1
    assert latest_checkpoint(summary.out_dir / "checkpoints") == summary.checkpoint
    assert summary.checkpoint is not None and (summary.checkpoint / "open_clip_model.safetensors").is_file()


def test_validation_of_a_label_only_source_reads_each_image_once(tiny_model, tmp_path, monkeypatch):
    from contextlib import nullcontext

    import numpy as np
    from PIL import Image

    from openmedclip.data import ClassFolders
    from openmedclip.train.data import caption_chooser
    from openmedclip.train.validate import evaluate_retrieval

    rng = np.random.default_rng(0)
    for label in ("normal", "pneumonia"):
        (tmp_path / label).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8)).save(tmp_path / label / f"{i}.png")
    source = ClassFolders(tmp_path)
    reads = []
    original = ClassFolders.image
    monkeypatch.setattr(ClassFolders, "image", lambda self, i: reads.append(i) or original(self, i))
    chooser = caption_chooser({"bank": "pediatric_chest_xray"}, seed=0)
    metrics = evaluate_retrieval(tiny_model, source, chooser=chooser, batch_size=4, autocast=nullcontext)
    assert sorted(reads) == list(range(6))
    assert metrics["n_images"] == 6 and 0 <= metrics["image_retrieval_recall@10"] <= 1
