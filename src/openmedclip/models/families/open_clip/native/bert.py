"""A BERT encoder in plain torch with the module names of transformers' ``BertModel``, for inference without
importing transformers (which costs seconds at start-up).

Covers the BERT configs text towers use: absolute positions, GELU, post-layer-norm, encoder only; its
``last_hidden_state`` equals transformers' within float rounding (tested).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from openmedclip.models.families.open_clip.native.layers import Embedding, Linear


@dataclass(frozen=True)
class BertShape:
    """The fields of a BERT ``config.json`` the encoder needs."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float
    pad_token_id: int

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> BertShape | None:
        """The shape of ``config``, or None when it is not a plain BERT encoder this module reproduces."""
        plain = (
            config.get("model_type") == "bert"
            and config.get("hidden_act", "gelu") == "gelu"
            and config.get("position_embedding_type", "absolute") == "absolute"
            and not config.get("is_decoder", False)
            and not config.get("add_cross_attention", False)
        )
        if not plain:
            return None
        try:
            return cls(
                vocab_size=int(config["vocab_size"]),
                hidden_size=int(config["hidden_size"]),
                num_hidden_layers=int(config["num_hidden_layers"]),
                num_attention_heads=int(config["num_attention_heads"]),
                intermediate_size=int(config["intermediate_size"]),
                max_position_embeddings=int(config.get("max_position_embeddings", 512)),
                type_vocab_size=int(config.get("type_vocab_size", 2)),
                layer_norm_eps=float(config.get("layer_norm_eps", 1e-12)),
                pad_token_id=int(config.get("pad_token_id", 0) or 0),
            )
        except (KeyError, TypeError, ValueError):
            return None


class _Embeddings(nn.Module):
    def __init__(self, shape: BertShape):
        super().__init__()
        self.word_embeddings = Embedding(shape.vocab_size, shape.hidden_size, padding_idx=shape.pad_token_id)
        self.position_embeddings = Embedding(shape.max_position_embeddings, shape.hidden_size)
        self.token_type_embeddings = Embedding(shape.type_vocab_size, shape.hidden_size)
        self.LayerNorm = nn.LayerNorm(shape.hidden_size, eps=shape.layer_norm_eps)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        embedded = self.word_embeddings(tokens) + self.token_type_embeddings.weight[0]
        return self.LayerNorm(embedded + self.position_embeddings(positions))


class _SelfAttention(nn.Module):
    def __init__(self, shape: BertShape):
        super().__init__()
        self.heads = shape.num_attention_heads
        self.query = Linear(shape.hidden_size, shape.hidden_size)
        self.key = Linear(shape.hidden_size, shape.hidden_size)
        self.value = Linear(shape.hidden_size, shape.hidden_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape

        def split(projection: Linear) -> torch.Tensor:
            return projection(x).view(batch, length, self.heads, width // self.heads).transpose(1, 2)

        attended = F.scaled_dot_product_attention(split(self.query), split(self.key), split(self.value), mask)
        return attended.transpose(1, 2).reshape(batch, length, width)


class _DenseNorm(nn.Module):
    """``LayerNorm(dense(x) + residual)``: BERT's attention output and layer output."""

    def __init__(self, inputs: int, shape: BertShape):
        super().__init__()
        self.dense = Linear(inputs, shape.hidden_size)
        self.LayerNorm = nn.LayerNorm(shape.hidden_size, eps=shape.layer_norm_eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class _Attention(nn.Module):
    def __init__(self, shape: BertShape):
        super().__init__()
        self.self = _SelfAttention(shape)
        self.output = _DenseNorm(shape.hidden_size, shape)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(x, mask), x)


class _Intermediate(nn.Module):
    def __init__(self, shape: BertShape):
        super().__init__()
        self.dense = Linear(shape.hidden_size, shape.intermediate_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x))


class _Layer(nn.Module):
    def __init__(self, shape: BertShape):
        super().__init__()
        self.attention = _Attention(shape)
        self.intermediate = _Intermediate(shape)
        self.output = _DenseNorm(shape.intermediate_size, shape)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        attended = self.attention(x, mask)
        return self.output(self.intermediate(attended), attended)


class _Encoder(nn.Module):
    def __init__(self, shape: BertShape):
        super().__init__()
        self.layer = nn.ModuleList(_Layer(shape) for _ in range(shape.num_hidden_layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for layer in self.layer:
            x = layer(x, mask)
        return x


class BertEncoder(nn.Module):
    """``BertModel`` without its pooler: token ids ``[B, L]`` and a 0/1 attention mask -> ``[B, L, hidden]``."""

    def __init__(self, shape: BertShape):
        super().__init__()
        self.shape = shape
        self.embeddings = _Embeddings(shape)
        self.encoder = _Encoder(shape)

    def forward(self, tokens: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.bool()[:, None, None, :]
        return self.encoder(self.embeddings(tokens), mask)
