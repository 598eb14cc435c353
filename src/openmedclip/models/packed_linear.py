"""oneDNN-prepacked weights for the linear layers of a model that runs in bf16 on the CPU.

oneDNN reorders a linear layer's weight into its blocked matrix-unit layout on every call of ``F.linear``, and
adds the bias in a second pass over the output. :func:`pack_linear_layers` reorders each weight once, at load time,
and runs the layer through ``torch.ops.mkldnn._linear_pointwise`` (the product and its bias in one oneDNN call,
what ``torch.compile`` emits for frozen CPU models). In bf16 the built-in model's image tower and a BERT-base text
tower ran 1.07-1.08x faster, a ViT-B/16 image tower 1.0-1.1x (``docs/performance.md``); outputs match
``F.linear``'s to bf16 rounding.
The cost is a second copy of each weight (the packed one: 323 MiB more resident memory for ViT-B/16 + BERT-base);
``state_dict`` and the parameters stay as they were.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn


class PackedLinear(nn.Linear):
    """An ``nn.Linear`` whose inference forward uses a weight prepacked by oneDNN.

    It falls back to ``F.linear`` whenever the packed copy cannot stand for the weight: gradients wanted, input on
    another device or in another dtype, or the weight changed in place since packing (e.g. ``load_state_dict``);
    and under ``torch.compile``, which traces ``F.linear`` and packs by itself.
    """

    packed: torch.Tensor
    packed_version: int

    def pack(self) -> None:
        self.packed = torch.ops.mkldnn._reorder_linear_weight(self.weight.detach(), None)
        self.packed_version = self.weight._version

    def __getstate__(self) -> dict:
        """Copies and pickles leave the packed weight out (oneDNN's opaque tensors have no storage) and pack anew."""
        state = self.__dict__.copy()
        state.pop("packed", None)
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self.pack()

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        weight = self.weight
        if (
            torch.compiler.is_compiling()  # inductor packs weights itself; the checks below would break its graph
            or input.device.type != "cpu"
            or input.dtype != self.packed.dtype
            or weight.dtype != self.packed.dtype
            or weight._version != self.packed_version
            or (torch.is_grad_enabled() and (input.requires_grad or weight.requires_grad))
        ):
            return F.linear(input, weight, self.bias)
        return torch.ops.mkldnn._linear_pointwise(input, self.packed, self.bias, "none", [], "")


def can_pack(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether linear layers are packed: bf16 on the CPU, with a torch built with oneDNN's linear ops."""
    return (
        device.type == "cpu"
        and dtype == torch.bfloat16
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


def pack_linear_layers(model: nn.Module, device: torch.device, dtype: torch.dtype) -> int:
    """Turn every plain ``nn.Linear`` of ``model`` into a :class:`PackedLinear` where :func:`can_pack`; return how
    many. Subclasses of ``nn.Linear`` are left alone (``nn.MultiheadAttention`` reads its ``out_proj`` weight
    directly). A layer oneDNN refuses to pack stays as it is."""
    if not can_pack(device, dtype):
        return 0
    packed = 0
    for module in model.modules():
        if type(module) is nn.Linear and module.weight.dtype == dtype:
            module.__class__ = PackedLinear
            try:
                cast(PackedLinear, module).pack()
            except RuntimeError:
                module.__class__ = nn.Linear
                continue
            packed += 1
    return packed
