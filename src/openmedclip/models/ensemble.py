"""Ensembles: several checkpoints of one architecture whose zero-shot probabilities are averaged.

CheXzero's published result averages the predictions of ten ViT-B/32 checkpoints. The ensemble module encodes an
input with every member and returns the members' unit features side by side, each divided by ``sqrt(members)``:
the result has unit norm, its dot product with another such vector is the members' mean cosine (retrieval and
probes use that), and zero-shot scoring splits it back into members (:func:`member_similarities`) to average the
members' probabilities, as CheXzero does.
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F

from openmedclip.models.protocol import ClipModel


class ClipEnsemble(torch.nn.Module):
    """Members of one architecture behind the model protocol; ``ensemble_size`` tells scoring how to split."""

    def __init__(self, members: list[torch.nn.Module]):
        super().__init__()
        self.members = torch.nn.ModuleList(members)
        self.ensemble_size = len(members)

    def _clips(self) -> list[ClipModel]:
        return [cast("ClipModel", member) for member in self.members]

    @property
    def visual(self) -> torch.nn.Module:
        """The first member's image tower (its input size is every member's)."""
        return cast("torch.nn.Module", self.members[0].visual)

    @property
    def logit_scale(self) -> torch.Tensor:
        """The members' mean learned temperature (CheXzero's scoring does not use it)."""
        return torch.stack([member.logit_scale for member in self._clips()]).mean()

    def _joined(self, features: list[torch.Tensor]) -> torch.Tensor:
        scale = 1 / math.sqrt(self.ensemble_size)
        return torch.cat([F.normalize(part, dim=-1) * scale for part in features], dim=-1)

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return self._joined([member.encode_image(pixels) for member in self._clips()])

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self._joined([member.encode_text(tokens) for member in self._clips()])


def normalize_members(features: torch.Tensor, members: int) -> torch.Tensor:
    """Unit-normalise each member's part of ``[N, members * D]`` features (``F.normalize`` for one member)."""
    if members == 1:
        return F.normalize(features, dim=-1)
    parts = features.chunk(members, dim=-1)
    return torch.cat([F.normalize(part, dim=-1) / math.sqrt(members) for part in parts], dim=-1)


def member_similarities(images: torch.Tensor, texts: torch.Tensor, members: int) -> torch.Tensor:
    """``[members, N, C]`` per-member cosine similarities of joined features (``[1, N, C]`` dot products for one)."""
    if members == 1:
        return (images @ texts.T)[None]
    pairs = zip(images.chunk(members, dim=-1), texts.chunk(members, dim=-1), strict=True)
    return torch.stack([members * (image @ text.T) for image, text in pairs])
