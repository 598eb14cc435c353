"""Contrastive training and fine-tuning of CLIP models: recipes, losses, DDP, resumable checkpoints.

Names are imported on first use, so ``python -m openmedclip.train --help`` does not wait for torch.
"""

from __future__ import annotations

from openmedclip.lazy import lazy_exports

_EXPORTS = {
    "InfoNCELoss": "openmedclip.train.losses",
    "SigLIPLoss": "openmedclip.train.losses",
    "TrainConfig": "openmedclip.train.config",
    "load_recipe": "openmedclip.train.config",
    "TrainSummary": "openmedclip.train.loop",
    "train": "openmedclip.train.loop",
    "main": "openmedclip.train.cli",
    "run_from_cli": "openmedclip.train.cli",
}

__all__ = ["InfoNCELoss", "SigLIPLoss", "TrainConfig", "TrainSummary", "load_recipe", "main", "run_from_cli", "train"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
