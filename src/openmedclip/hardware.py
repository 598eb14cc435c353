"""What the machine has: CPU bf16 units (AVX-512 BF16, AMX), the cores this process may use, torch threads; how
glibc's allocator keeps the memory of large tensors (:func:`keep_freed_memory`).

Read once and cached. Flags come from ``/proc/cpuinfo`` on Linux, else from torch's own CPU probes where this torch
has them; without either, and without ``/sys`` topology, every answer falls back to the safe one (no bf16 units,
the CPUs the process may run on).
"""

from __future__ import annotations

import ctypes
import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

BF16_FLAGS = ("avx512_bf16", "amx_bf16")
"""``/proc/cpuinfo`` flags of CPU units that run bf16 matrix products natively (AVX-512 BF16, AMX-BF16)."""

ALLOCATOR_ENV = ("MALLOC_MMAP_MAX_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")
"""glibc's own tunables: where one is set, the allocator is the user's choice and stays as it is."""
KEEP_FREED_ENV = "OPENMEDCLIP_KEEP_FREED_MEMORY"
"""Set to ``0`` to leave glibc's allocator at its defaults."""
TRIM_THRESHOLD = 512 << 20
"""Free memory at the top of the heap that glibc keeps for reuse before giving it back to the system."""
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4

CPUINFO = Path("/proc/cpuinfo")
CPU_SYSFS = Path("/sys/devices/system/cpu")


@dataclass(frozen=True)
class CpuInfo:
    """The CPU's name, its feature flags (those of :data:`BF16_FLAGS` and ``amx_tile`` at least, where known) and
    torch's vector capability."""

    model: str
    flags: frozenset[str]
    torch_capability: str
    """``torch.backends.cpu.get_cpu_capability()``: 'AVX512', 'AVX2', 'DEFAULT', ..."""

    @property
    def avx512_bf16(self) -> bool:
        return "avx512_bf16" in self.flags

    @property
    def amx(self) -> bool:
        return {"amx_bf16", "amx_tile"} <= self.flags

    @property
    def fast_bf16(self) -> bool:
        """True when bf16 matrix products run on dedicated units (AVX-512 BF16 or AMX)."""
        return self.avx512_bf16 or self.amx


def parse_cpuinfo(text: str) -> tuple[str, frozenset[str]]:
    """``(model name, flags)`` of the first processor in ``/proc/cpuinfo`` text (x86 ``flags``, ARM ``Features``)."""
    model, flags = "", ""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if not sep:
            continue
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = value
        if model and flags:
            break
    return model, frozenset(flags.split())


@lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """The CPU this process runs on (cached)."""
    import torch

    try:
        model, flags = parse_cpuinfo(CPUINFO.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        model, flags = "", frozenset()
    if not flags:
        flags = _torch_probed_flags()
    return CpuInfo(model or platform.processor() or platform.machine(), flags, torch.backends.cpu.get_cpu_capability())


def _torch_probed_flags() -> frozenset[str]:
    """The bf16 flags torch's CPU probes report (x86 builds of torch; none where the probes are absent)."""
    import torch

    probes = {
        "avx512_bf16": ("avx512_bf16",),
        "amx_tile": ("amx_bf16", "amx_tile"),
    }
    found: set[str] = set()
    for probe, flags in probes.items():
        check = getattr(torch.cpu, f"_is_{probe}_supported", None)
        if check is not None and check():
            found.update(flags)
    return frozenset(found)


def available_cpus() -> set[int]:
    """The logical CPUs this process may run on (its affinity; every CPU where affinity is unknown)."""
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


@lru_cache(maxsize=1)
def physical_cores() -> int:
    """Physical cores among :func:`available_cpus` (SMT siblings counted once), at least 1."""
    cpus = available_cpus()
    cores = set()
    for cpu in cpus:
        topology = CPU_SYSFS / f"cpu{cpu}" / "topology"
        try:
            package = (topology / "physical_package_id").read_text().strip()
            core = (topology / "core_id").read_text().strip()
        except OSError:
            return max(1, len(cpus))
        cores.add((package, core))
    return max(1, len(cores))


def intra_op_threads(loader_workers: int) -> int:
    """Torch threads for the model while ``loader_workers`` processes decode: physical cores minus those, >= 1."""
    return max(1, physical_cores() - max(0, loader_workers))


MAX_LOADER_WORKERS = 4


def loader_workers(decode_seconds: float, forward_seconds: float, *, cores: int | None = None) -> int:
    """How many loader processes to decode in beside the model, from one item's measured costs.

    ``decode_seconds``: reading and preprocessing one item; ``forward_seconds``: encoding it with torch on every core.
    Without workers an item costs ``decode + forward``; with ``w`` workers (torch on the ``cores - w`` others, its
    time growing as ``cores / (cores - w)``) it costs ``max(decode / w, forward * cores / (cores - w))``. Returns
    the ``w`` (0 to :data:`MAX_LOADER_WORKERS`, leaving torch at least one core) with the least cost, fewer on ties.
    A large model on 2 cores decodes in the main process (the model wants both cores); a small model on large
    files gets a worker.
    """
    cores = physical_cores() if cores is None else cores
    costs = {0: decode_seconds + forward_seconds}
    for workers in range(1, min(MAX_LOADER_WORKERS, cores - 1) + 1):
        costs[workers] = max(decode_seconds / workers, forward_seconds * cores / (cores - workers))
    return min(costs, key=lambda workers: (costs[workers], workers))


@contextmanager
def threads_beside_loaders(loader_workers: int) -> Iterator[int]:
    """Run the block with torch's intra-op threads at :func:`intra_op_threads` (yielded), then restore them."""
    import torch

    before = torch.get_num_threads()
    threads = intra_op_threads(loader_workers)
    if threads != before:
        torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


@lru_cache(maxsize=1)
def keep_freed_memory() -> str:
    """Have glibc's allocator reuse freed tensor memory instead of returning it to the system; say what was done.

    By default glibc serves every block above a threshold (at most 32 MiB) with a fresh ``mmap`` and unmaps it on
    ``free``, so each large activation of a forward pass (a ViT-B/16 MLP's at batch 32 is 39 MiB) is zeroed and
    page-faulted in again, a page at a time, on every batch. With ``mmap`` off and a 512 MiB trim threshold
    (:data:`TRIM_THRESHOLD`), freed blocks stay in the heap and the next batch reuses them: in bf16 the ViT-B/16
    image tower ran 1.2x faster, its BERT-base text tower 1.4x (docs/performance.md). The cost is that up to
    512 MiB freed at the top of the heap stays with the process. Process-wide and applied once: on Linux with
    glibc only, and not where one of glibc's ``MALLOC_*`` tunables (:data:`ALLOCATOR_ENV`) or
    ``OPENMEDCLIP_KEEP_FREED_MEMORY=0`` is set.
    """
    if os.environ.get(KEEP_FREED_ENV, "").strip() == "0":
        return f"glibc defaults ({KEEP_FREED_ENV}=0)"
    if any(name in os.environ for name in ALLOCATOR_ENV):
        return "glibc tunables from the environment"
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return "system defaults (not glibc)"
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return "system defaults (no mallopt)"
    if mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) != 1 or mallopt(_M_MMAP_MAX, 0) != 1:
        return "glibc defaults (mallopt refused)"
    return "glibc, freed memory kept for reuse"


def allocator_state() -> str:
    """What :func:`keep_freed_memory` did, without doing it: it runs when a model is loaded onto the CPU."""
    if keep_freed_memory.cache_info().currsize == 0:
        return "glibc defaults until a model is loaded onto the CPU"
    return keep_freed_memory()


def describe() -> str:
    """One line for reports: CPU name, cores available, bf16 units, torch capability and threads."""
    import torch

    info = cpu_info()
    units = [name for name, present in (("AVX-512 BF16", info.avx512_bf16), ("AMX-BF16", info.amx)) if present]
    return (
        f"{info.model}; {physical_cores()} physical core(s) available ({len(available_cpus())} logical); "
        f"bf16 units: {', '.join(units) or 'none'}; torch {torch.__version__} capability {info.torch_capability}, "
        f"{torch.get_num_threads()} thread(s); allocator: {allocator_state()}"
    )
