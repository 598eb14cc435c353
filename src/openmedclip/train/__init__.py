"""Contrastive training and fine-tuning of CLIP models: recipes, losses, DDP, resumable checkpoints."""

from openmedclip.train.cli import main, run_from_cli
from openmedclip.train.config import TrainConfig, load_recipe
from openmedclip.train.loop import TrainSummary, train
from openmedclip.train.losses import InfoNCELoss, SigLIPLoss

__all__ = ["InfoNCELoss", "SigLIPLoss", "TrainConfig", "TrainSummary", "load_recipe", "main", "run_from_cli", "train"]
