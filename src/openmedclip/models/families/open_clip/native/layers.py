"""Layers that skip their random initialisation: the native models are only built to receive weights from files
(:func:`openmedclip.models.families.open_clip.native.applies` requires them, and the strict loader rejects a
checkpoint missing any key), so drawing random weights first would only cost start-up time."""

from __future__ import annotations

from torch import nn


class Linear(nn.Linear):
    def reset_parameters(self) -> None:
        """Weights come from the checkpoint."""


class Conv2d(nn.Conv2d):
    def reset_parameters(self) -> None:
        """Weights come from the checkpoint."""


class Embedding(nn.Embedding):
    def reset_parameters(self) -> None:
        """Weights come from the checkpoint."""
