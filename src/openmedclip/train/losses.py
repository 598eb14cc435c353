"""Contrastive losses for image–text training: InfoNCE (CLIP) and SigLIP, optionally over all DDP ranks.

Both score this rank's rows against the columns of *all* ranks ("local loss"): features are gathered with
gradients flowing back to the rank that produced them, so that averaging the ranks' gradients (what DDP does)
gives exactly the gradient of one process holding the whole global batch. The value returned is this rank's
share; the mean over ranks is the global-batch loss. Ranks may hold different numbers of rows (a batch that lost
unreadable items); each rank's loss is then the mean over its own rows.

Label-aware targets (MedCLIP's semantic matching, with classes as the semantics), which keep pairs of one class
from being each other's negatives, come from the captions: with ``captions: {shared: true}`` every pair of a class
in a step gets the same bank sentence (`openmedclip.train.pairs.CaptionChooser`). InfoNCE then needs nothing more:
equal captions give equal columns, hence equal logits, so the one-hot loss equals the soft-target loss that spreads
each row's target over all pairs with its caption; it pulls same-class images towards their caption and never
pushes them apart. (With a different sentence per sample, as without ``shared``, it does push them apart.)
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from openmedclip.errors import InvalidInputError

MAX_LOGIT_SCALE = 100.0
"""Upper bound of the temperature multiplier ``exp(logit_scale)``, as in CLIP."""

SIGLIP_INIT_BIAS = -10.0
"""SigLIP's initial bias (Zhai et al., 2023)."""



class _GatherRows(torch.autograd.Function):
    """All ranks' rows in rank order (ranks may hold different numbers of rows); the backward sums every rank's
    gradient for this rank's rows."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, counts: list[int]) -> torch.Tensor:
        rank, most = dist.get_rank(), max(counts)
        padded = torch.cat([x, x.new_zeros((most - x.shape[0], *x.shape[1:]))]) if x.shape[0] < most else x
        parts = [torch.empty_like(padded) for _ in counts]
        dist.all_gather(parts, padded.contiguous())
        ctx.start, ctx.rows = sum(counts[:rank]), x.shape[0]
        return torch.cat([part[:n] for part, n in zip(parts, counts, strict=True)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[ctx.start : ctx.start + ctx.rows], None


def gather_rows(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Rows of all ranks (``x`` itself with one process) and this rank's first row in them."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x, 0
    count = torch.tensor([x.shape[0]], device=x.device)
    counts = [torch.empty_like(count) for _ in range(dist.get_world_size())]
    dist.all_gather(counts, count)
    rows = [int(n.item()) for n in counts]
    return _GatherRows.apply(x, rows), sum(rows[: dist.get_rank()])


def temperature(logit_scale: torch.Tensor) -> torch.Tensor:
    """The multiplier ``exp(logit_scale)``, clamped to at most `MAX_LOGIT_SCALE`."""
    return logit_scale.float().exp().clamp(max=MAX_LOGIT_SCALE)


class _PairLoss(nn.Module):
    """A loss over matching rows of image and text features; ``gather`` uses every rank's rows as negatives."""

    def __init__(self, gather: bool = True):
        super().__init__()
        self.gather = gather


class InfoNCELoss(_PairLoss):
    """Symmetric cross-entropy over cosine similarities (CLIP): image→text and text→image, averaged.

    Features are ``[N, D]`` and L2-normalised; row ``i`` of both is a matching pair. ``logit_bias`` is ignored
    (a constant shift does not change a softmax). With ``gather=True`` the negatives are all ranks' rows.
    """

    def forward(
        self,
        image: torch.Tensor,
        text: torch.Tensor,
        logit_scale: torch.Tensor,
        logit_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        image, text = image.float(), text.float()
        all_image, offset = gather_rows(image) if self.gather else (image, 0)
        all_text, _ = gather_rows(text) if self.gather else (text, 0)
        scale = temperature(logit_scale)
        targets = torch.arange(image.shape[0], device=image.device) + offset
        per_image = F.cross_entropy(scale * image @ all_text.T, targets)
        per_text = F.cross_entropy(scale * text @ all_image.T, targets)
        return (per_image + per_text) / 2


class SigLIPLoss(_PairLoss):
    """Pairwise sigmoid loss (SigLIP): every image–text pair is a binary match / no-match decision.

    ``-sum_ij log sigmoid(z_ij * (t * x_i . y_j + b)) / N`` with ``z_ij = 1`` for matching pairs, else ``-1``;
    ``t = exp(logit_scale)`` (clamped), ``b = logit_bias``. With ``gather=True`` the texts of all ranks are used.
    """

    def forward(
        self,
        image: torch.Tensor,
        text: torch.Tensor,
        logit_scale: torch.Tensor,
        logit_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if logit_bias is None:
            raise InvalidInputError("the SigLIP loss needs a model with a logit_bias parameter")
        image, text = image.float(), text.float()
        all_text, offset = gather_rows(text) if self.gather else (text, 0)
        logits = temperature(logit_scale) * image @ all_text.T + logit_bias.float()
        signs = -torch.ones_like(logits)
        rows = torch.arange(image.shape[0], device=image.device)
        signs[rows, rows + offset] = 1.0
        return -F.logsigmoid(signs * logits).sum() / image.shape[0]


LOSSES: dict[str, type[nn.Module]] = {"infonce": InfoNCELoss, "siglip": SigLIPLoss}


def build_loss(name: str, gather: bool = True) -> nn.Module:
    """The loss called `name` (``infonce`` or ``siglip``)."""
    if name not in LOSSES:
        raise InvalidInputError(f"unknown loss {name!r}; known: {list(LOSSES)}")
    return LOSSES[name](gather=gather)
