"""GLoRIA's image–text similarities: global (cosine of the global features), local (words attending to image
regions) and both (their average), as GLoRIA scores image–text pairs.

Local similarity of an image and a caption: each word feature attends over the local feature map (a softmax over
the caption's words for each region, then, scaled by 4, a softmax over the regions for each word); the word's
cosine with its attended image feature ``c`` gives ``exp(5 c)``; the caption's score is the log of the largest of
these over its words, i.e. ``5 · max c``. The words are those between ``[CLS]`` and ``[SEP]`` (their true count; a
caption without words scores 0).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from openmedclip.models.families.gloria.model import GloriaModel
    from openmedclip.models.loaded import LoadedModel

Kind = Literal["global", "local", "both"]
ATTENTION_TEMPERATURE = 4.0
WORD_TEMPERATURE = 5.0
EPS = 1e-8


def local_similarity_of_features(
    image_local: torch.Tensor, words: torch.Tensor, counts: torch.Tensor
) -> torch.Tensor:
    """``[N, T]`` local similarities of ``[N, D, h, w]`` local image features and ``[T, L, D]`` word features with
    ``[T]`` word counts."""
    context = image_local.flatten(2)  # [N, D, S]
    columns = []
    for caption, count in zip(words, counts.tolist()):
        if count == 0:
            columns.append(image_local.new_zeros(image_local.shape[0]))
            continue
        query = caption[1 : count + 1]  # [W, D]
        attention = torch.einsum("nds,wd->nsw", context, query).softmax(dim=-1)
        attention = (ATTENTION_TEMPERATURE * attention.transpose(1, 2)).softmax(dim=-1)  # [N, W, S]
        attended = torch.einsum("nds,nws->nwd", context, attention)
        norms = (query.norm(dim=-1) * attended.norm(dim=-1)).clamp(min=EPS)
        cosine = (attended * query).sum(dim=-1) / norms  # [N, W]
        columns.append(WORD_TEMPERATURE * cosine.max(dim=1).values)
    return torch.stack(columns, dim=1)


def model_similarity(model: GloriaModel, pixels: torch.Tensor, tokens: torch.Tensor, kind: Kind) -> torch.Tensor:
    """``[N, T]`` similarities of ``[N, C, H, W]`` pixels and ``[T, L]`` token ids of the model's tokenizer."""
    if kind not in ("global", "local", "both"):
        raise ValueError(f"unknown similarity kind {kind!r} (use 'global', 'local' or 'both')")
    image_global, image_local = model.img_encoder(pixels)
    words, sentences, counts = model.text_encoder(tokens)
    global_ = F.normalize(image_global, dim=-1) @ F.normalize(sentences, dim=-1).T
    if kind == "global":
        return global_
    local = local_similarity_of_features(image_local, words, counts)
    return local if kind == "local" else (local + global_) / 2


def similarity(loaded: LoadedModel, pixels: torch.Tensor, tokens: torch.Tensor, kind: Kind = "both") -> torch.Tensor:
    """``[n_images, n_texts]`` float32 GLoRIA similarities of preprocessed ``pixels`` and ``tokens`` (from
    ``loaded.preprocess`` and ``loaded.tokenizer``): 'global' cosine, 'local' or 'both' (their average)."""
    with torch.inference_mode():
        result = model_similarity(
            loaded.model,  # type: ignore[arg-type]
            pixels.to(loaded.device, loaded.dtype),
            tokens.to(loaded.device),
            kind,
        )
    return result.float().cpu()


def local_similarity(loaded: LoadedModel, pixels: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """``[n_images, n_texts]`` GLoRIA local similarities (see the module docstring)."""
    return similarity(loaded, pixels, tokens, "local")
