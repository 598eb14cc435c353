"""Validation during training: image↔text retrieval recall@1/5/10 on a held-out image–text source.

Images and captions go through the one encode engine (:mod:`openmedclip.embed`), so an unreadable validation
image is reported and skipped instead of stopping the run before its checkpoint is written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager

from openmedclip.data import DataSource
from openmedclip.embed import encode_images, encode_texts
from openmedclip.metrics.defaults import RECALL_KS, retrieval_key
from openmedclip.models import LoadedModel
from openmedclip.tasks.retrieval import retrieval_metrics
from openmedclip.train.pairs import CaptionChooser

log = logging.getLogger(__name__)


def evaluate_retrieval(
    loaded: LoadedModel,
    source: DataSource,
    *,
    chooser: CaptionChooser,
    batch_size: int,
    autocast: Callable[[], AbstractContextManager],
    num_workers: int = 0,
) -> dict[str, float]:
    """Recall@k (k = 1, 5, 10) both ways over `source`'s readable images and captions, under the metric keys of the
    result files (``image_retrieval_recall@k`` = text→image, ``text_retrieval_recall@k`` = image→text), plus
    ``n_images`` and ``n_skipped``. A label-only item is captioned with its epoch-0 caption.

    Image→text counts a hit when any of the image's captions is in the top k (see
    `openmedclip.tasks.retrieval`). The model runs in eval mode and is put back in its previous mode.
    """
    model = loaded.model
    was_training = model.training
    model.eval()
    try:
        encoded = encode_images(loaded, source, batch_size=batch_size, num_workers=num_workers, autocast=autocast)
        texts, owners = [], []
        for position, row in enumerate(encoded.indices):
            sample_captions = source.captions(row) or [chooser(source.sample_text(row), row, 0)]
            texts += sample_captions
            owners += [position] * len(sample_captions)
        text_features = encode_texts(loaded, texts, batch_size=batch_size, autocast=autocast)
    finally:
        model.train(was_training)
    for error in encoded.errors:
        log.warning("%s: validation image skipped: %s", error.item, error.message)
    result = retrieval_metrics(encoded.features, text_features, owners, RECALL_KS, n_bootstrap=0)
    metrics: dict[str, float] = {}
    for name, direction in (("image_to_text", result.image_to_text), ("text_to_image", result.text_to_image)):
        metrics.update({retrieval_key(name, k): estimate.value for k, estimate in direction.recall.items()})
    metrics |= {"n_images": len(encoded.indices), "n_skipped": len(encoded.errors)}
    return metrics
