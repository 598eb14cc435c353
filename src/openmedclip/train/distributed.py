"""Several processes (torchrun): process-group set-up from the environment, the DDP wrapper, small collectives."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from openmedclip.errors import InvalidInputError


@dataclass(frozen=True)
class Context:
    """Where this process runs: its rank among ``world_size`` processes and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool = False
    """True when `init_distributed` created the process group (and `shutdown` should end it)."""

    @property
    def is_main(self) -> bool:
        """Rank 0 writes logs and checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str | None = None) -> Context:
    """Join the process group that torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT).

    Without WORLD_SIZE > 1 this is a single process and nothing is initialised. The backend is NCCL on CUDA,
    else Gloo. `device` defaults to ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        target = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    else:
        target = torch.device(device)
        if target.type == "cuda" and target.index is None:
            target = torch.device("cuda", local_rank)
    if target.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidInputError(f"device {device!r} asked for, but CUDA is not available")
        torch.cuda.set_device(target)
    owns_group = world_size > 1 and not dist.is_initialized()
    if owns_group:
        backend = "nccl" if target.type == "cuda" else "gloo"
        device_id = target if backend == "nccl" else None
        dist.init_process_group(backend, timeout=timedelta(minutes=30), device_id=device_id)
    return Context(rank, world_size, local_rank, target, owns_group)


def shutdown(ctx: Context) -> None:
    """Leave the process group (after a last barrier) if `init_distributed` created it."""
    if ctx.owns_group and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier(ctx: Context) -> None:
    """Wait for every process."""
    if ctx.distributed:
        dist.barrier()


def mean_over_ranks(ctx: Context, value: torch.Tensor) -> float:
    """The mean of a scalar over all processes."""
    value = value.detach().float().reshape(1).clone()
    if ctx.distributed:
        dist.all_reduce(value)
        value /= ctx.world_size
    return float(value.item())


def gather_ints(ctx: Context, values: Sequence[int]) -> list[list[int]]:
    """Every process's `values` (as many on each), in rank order."""
    if not ctx.distributed:
        return [list(values)]
    mine = torch.tensor(list(values), dtype=torch.int64, device=ctx.device)
    parts = [torch.empty_like(mine) for _ in range(ctx.world_size)]
    dist.all_gather(parts, mine)
    return [part.tolist() for part in parts]


def gather_objects(ctx: Context, value: object) -> list:
    """Every process's `value`, in rank order (picklable objects)."""
    if not ctx.distributed:
        return [value]
    values: list = [None] * ctx.world_size
    dist.all_gather_object(values, value)
    return values


def wrap(module: nn.Module, ctx: Context) -> nn.Module:
    """`module` in DistributedDataParallel when there are several processes, else itself."""
    if not ctx.distributed:
        return module
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids)
