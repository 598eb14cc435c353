"""InfoNCE and SigLIP against open_clip's losses and a by-hand computation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss, SigLipLoss

from openmedclip.errors import InvalidInputError
from openmedclip.train.losses import InfoNCELoss, SigLIPLoss, build_loss


def _features(n: int = 6, d: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=g), dim=-1), F.normalize(torch.randn(n, d, generator=g), dim=-1)


def test_infonce_matches_open_clip_and_hand_computation():
    image, text = _features()
    log_scale = torch.tensor(math.log(20.0))
    ours = InfoNCELoss()(image, text, log_scale)
    theirs = ClipLoss()(image, text, log_scale.exp())
    logits = 20.0 * image @ text.T
    by_hand = -(logits.log_softmax(1).diagonal().mean() + logits.T.log_softmax(1).diagonal().mean()) / 2
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-6)
    assert ours.item() == pytest.approx(by_hand.item(), abs=1e-6)


def test_infonce_clamps_the_temperature_at_100():
    image, text = _features()
    clamped = InfoNCELoss()(image, text, torch.tensor(math.log(500.0)))
    assert clamped.item() == pytest.approx(ClipLoss()(image, text, torch.tensor(100.0)).item(), abs=1e-6)


def test_siglip_matches_open_clip_and_hand_computation():
    image, text = _features()
    log_scale, bias = torch.tensor(math.log(10.0)), torch.tensor(-3.0)
    ours = SigLIPLoss()(image, text, log_scale, bias)
    theirs = SigLipLoss()(image, text, log_scale.exp(), bias)
    logits = 10.0 * image @ text.T - 3.0
    signs = 2 * torch.eye(6) - 1
    by_hand = -torch.log(torch.sigmoid(signs * logits)).sum() / 6
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-5)
    assert ours.item() == pytest.approx(by_hand.item(), abs=1e-5)


def test_siglip_needs_a_bias_and_unknown_losses_are_refused():
    image, text = _features()
    with pytest.raises(InvalidInputError, match="logit_bias"):
        SigLIPLoss()(image, text, torch.tensor(1.0))
    with pytest.raises(InvalidInputError, match="unknown loss"):
        build_loss("triplet")


def test_gradients_reach_features_and_temperature():
    image, text = (t.requires_grad_() for t in _features())
    log_scale = torch.tensor(math.log(10.0), requires_grad=True)
    InfoNCELoss()(image, text, log_scale).backward()
    assert image.grad.abs().sum() > 0 and text.grad.abs().sum() > 0 and log_scale.grad != 0
