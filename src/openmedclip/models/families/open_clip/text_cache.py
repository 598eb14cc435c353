"""A bounded cache of a frozen Hugging Face text transformer's pooled output, per distinct token sequence.

With every transformer weight frozen (as in LiT), only the projection learns, so a caption's pooled transformer
output never changes. :class:`FrozenTextEncoder` computes it once (without dropout, without gradients), keeps
up to ``max_entries`` of them (least recently used dropped first) and applies the trainable projection on
every call. It is used explicitly by the training encoder; the model itself is not modified.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from open_clip.hf_model import HFTextEncoder
from torch import nn


class FrozenTextEncoder:
    """``tokens [B, L] -> features [B, D]`` for an :class:`HFTextEncoder` whose transformer is frozen."""

    def __init__(self, text: HFTextEncoder, max_entries: int):
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.text = text
        self.max_entries = max_entries
        self.pooled: OrderedDict[tuple[int, ...], torch.Tensor] = OrderedDict()

    @staticmethod
    def applies(text: nn.Module | None) -> bool:
        """Whether ``text`` is a Hugging Face tower with pooled output and every transformer weight frozen."""
        return (
            isinstance(text, HFTextEncoder)
            and not text.output_tokens
            and not any(parameter.requires_grad for parameter in text.transformer.parameters())
        )

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        keys = [tuple(row) for row in tokens.tolist()]
        new = sorted({i for i, key in enumerate(keys) if key not in self.pooled}, key=lambda i: keys[i])
        if new:
            self._compute(tokens[new], [keys[i] for i in new])
        rows = []
        for key in keys:
            self.pooled.move_to_end(key)
            rows.append(self.pooled[key])
        while len(self.pooled) > self.max_entries:
            self.pooled.popitem(last=False)
        return self.text.proj(torch.stack(rows))

    def _compute(self, batch: torch.Tensor, keys: list[tuple[int, ...]]) -> None:
        transformer = self.text.transformer
        was_training = transformer.training
        transformer.eval()
        try:
            mask = (batch != self.text.config.pad_token_id).long()
            with torch.no_grad():
                pooled = self.text.pooler(transformer(input_ids=batch, attention_mask=mask), mask)
        finally:
            transformer.train(was_training)
        self.pooled.update(zip(keys, pooled))
