"""CXR-BERT, rebuilt from plain transformers classes (no remote code): ``BertForMaskedLM`` plus a projection head
on the [CLS] token of the last layer.

Keys follow the published ``pytorch_model.bin``: ``bert.*`` (no pooler), ``cls.predictions.*`` (the masked-LM
head) and ``cls_projection_head.*``. The MLM decoder is tied to the word embeddings and to ``cls.predictions.bias``,
so its two keys are left out of the state dict (a copy of other keys) and accepted on reading when they equal
what they are tied to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig, BertForMaskedLM

from openmedclip.errors import ModelLoadError

TIED_KEYS = {
    "cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
    "cls.predictions.decoder.bias": "cls.predictions.bias",
}
"""The masked-LM decoder's keys and the keys they are tied to."""

PROJECTION_SIZE = 128
"""``projection_size`` when ``config.json`` has none (CXRBertConfig's default)."""

HEAD_EPS = 1e-12


def read_text_config(folder: Path, name: str) -> dict[str, Any]:
    """The folder's ``config.json`` parsed by ``BertConfig`` itself, whatever its ``model_type`` and ``auto_map``
    say (they differ between revisions of the published files; nothing of them is imported)."""
    try:
        values, _ = BertConfig.get_config_dict(str(folder))
        config = BertConfig.from_dict(values)
    except (OSError, ValueError, TypeError) as error:
        raise ModelLoadError(name, f"cannot read the CXR-BERT config.json in {folder}: {error}") from None
    values = config.to_dict()
    values.setdefault("projection_size", PROJECTION_SIZE)
    return values


class ProjectionHead(nn.Module):
    """Linear → GELU → LayerNorm → Linear into the joint space."""

    def __init__(self, hidden_size: int, projection_size: int):
        super().__init__()
        self.dense_to_hidden = nn.Linear(hidden_size, projection_size)
        self.LayerNorm = nn.LayerNorm(projection_size, eps=HEAD_EPS)
        self.dense_to_output = nn.Linear(projection_size, projection_size)

    def forward(self, cls: torch.Tensor) -> torch.Tensor:
        return self.dense_to_output(self.LayerNorm(F.gelu(self.dense_to_hidden(cls))))


class TextTower(nn.Module):
    """Token ids ``[B, L]`` (padding = ``pad_token_id``, masked) -> projected [CLS] embeddings ``[B, D]``."""

    def __init__(self, values: dict[str, Any]):
        super().__init__()
        config = BertConfig(**{key: value for key, value in values.items() if key != "transformers_version"})
        masked_lm = BertForMaskedLM(config)
        self.bert = masked_lm.bert
        self.cls = masked_lm.cls
        self.cls_projection_head = ProjectionHead(config.hidden_size, int(values["projection_size"]))
        self.pad_token_id = int(config.pad_token_id or 0)
        self.register_state_dict_post_hook(_drop_tied_keys)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        mask = (tokens != self.pad_token_id).long()
        hidden = self.bert(input_ids=tokens, attention_mask=mask).last_hidden_state
        return self.cls_projection_head(hidden[:, 0])


def _drop_tied_keys(module: nn.Module, state: dict[str, Any], prefix: str, metadata: Any) -> None:
    for key in TIED_KEYS:
        state.pop(prefix + key, None)


def untie_check(state: dict[str, torch.Tensor], prefix: str, name: str) -> dict[str, torch.Tensor]:
    """``state`` without the decoder's tied keys; ``ModelLoadError`` when one differs from what it is tied to."""
    for key, source in TIED_KEYS.items():
        value = state.pop(prefix + key, None)
        tied = state.get(prefix + source)
        if value is not None and tied is not None and not torch.equal(value.to(tied.dtype), tied):
            raise ModelLoadError(name, f"{prefix + key} differs from {prefix + source}, to which it is tied")
    return state
