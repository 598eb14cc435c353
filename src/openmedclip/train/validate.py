"""Validation during training: image↔text retrieval recall@1/5/10 on a held-out image–text source."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from openmedclip.data import DataSource
from openmedclip.tasks.retrieval import retrieval_metrics
from openmedclip.train.pairs import CaptionChooser
from openmedclip.train.step import DualEncoder

RECALL_AT = (1, 5, 10)


class _Items(Dataset):
    """Item ``i`` -> (pixels, all its captions); a label-only item gets its epoch-0 bank caption."""

    def __init__(self, source: DataSource, preprocess: Callable[[Image.Image], torch.Tensor], chooser: CaptionChooser):
        self.source = source
        self.preprocess = preprocess
        self.chooser = chooser

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, list[str]]:
        sample = self.source[i]
        return self.preprocess(sample.image), sample.captions or [self.chooser(sample, i, 0)]


def _collate(items: list[tuple[torch.Tensor, list[str]]]) -> tuple[torch.Tensor, list[list[str]]]:
    return torch.stack([pixels for pixels, _ in items]), [texts for _, texts in items]


@torch.no_grad()
def evaluate_retrieval(
    encoder: DualEncoder,
    source: DataSource,
    *,
    preprocess: Callable[[Image.Image], torch.Tensor],
    tokenizer: Callable[[list[str]], torch.Tensor],
    chooser: CaptionChooser,
    batch_size: int,
    device: torch.device,
    autocast: Callable[[], AbstractContextManager],
    num_workers: int = 0,
) -> dict[str, float]:
    """``image_to_text_R@k`` / ``text_to_image_R@k`` (k = 1, 5, 10) over all of `source`'s images and captions.

    Image→text counts a hit when any of the image's captions is in the top k (see
    `openmedclip.tasks.retrieval`). The encoder runs in eval mode and is put back in its previous mode.
    """
    loader = DataLoader(_Items(source, preprocess, chooser), batch_size=batch_size, num_workers=num_workers,
                        collate_fn=_collate)
    was_training = encoder.training
    encoder.eval()
    images, texts, owners = [], [], []
    try:
        for pixels, captions in loader:
            start = sum(len(batch) for batch in images)
            with autocast():
                images.append(encoder.encode_image(pixels.to(device)).float().cpu())
            owners.extend(start + k for k, row in enumerate(captions) for _ in row)
            flat = [text for row in captions for text in row]
            for first in range(0, len(flat), batch_size):
                with autocast():
                    tokens = tokenizer(flat[first : first + batch_size]).to(device)
                    texts.append(encoder.encode_text(tokens).float().cpu())
    finally:
        encoder.train(was_training)
    result = retrieval_metrics(torch.cat(images), torch.cat(texts), owners, RECALL_AT, n_bootstrap=0)
    metrics = {}
    for name, direction in (("image_to_text", result.image_to_text), ("text_to_image", result.text_to_image)):
        metrics.update({f"{name}_R@{k}": estimate.value for k, estimate in direction.recall.items()})
    return metrics
