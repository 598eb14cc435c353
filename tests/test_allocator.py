"""`keep_freed_memory`: glibc reuses freed tensor memory instead of page-faulting it in again on every batch."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from openmedclip import hardware

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

FAULTS_PER_ALLOCATION = """
import json, resource
import torch
from openmedclip.hardware import keep_freed_memory
state = keep_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(12):
    torch.empty(40 << 20, dtype=torch.uint8).fill_(1)
before = faults()
for _ in range(10):
    torch.empty(40 << 20, dtype=torch.uint8).fill_(1)
print(json.dumps({"state": state, "faults": (faults() - before) / 10}))
"""


class FakeLibc:
    def __init__(self, answer: int = 1):
        self.calls: list[tuple[int, int]] = []
        self.answer = answer

    def mallopt(self, option: int, value: int) -> int:
        self.calls.append((option, value))
        return self.answer


@pytest.fixture
def fake_libc(monkeypatch):
    libc = FakeLibc()
    monkeypatch.setattr(hardware.ctypes, "CDLL", lambda name: libc)
    for name in (*hardware.ALLOCATOR_ENV, hardware.KEEP_FREED_ENV):
        monkeypatch.delenv(name, raising=False)
    hardware.keep_freed_memory.cache_clear()
    yield libc
    hardware.keep_freed_memory.cache_clear()


@pytest.mark.skipif(not GLIBC, reason="glibc's allocator only")
def test_turns_off_mmap_and_raises_the_trim_threshold_once(fake_libc):
    assert hardware.keep_freed_memory() == "glibc, freed memory kept for reuse"
    assert hardware.keep_freed_memory() == "glibc, freed memory kept for reuse"
    assert fake_libc.calls == [(-1, 512 << 20), (-4, 0)]


@pytest.mark.parametrize(
    ("variable", "value", "state"),
    [
        ("OPENMEDCLIP_KEEP_FREED_MEMORY", "0", "glibc defaults (OPENMEDCLIP_KEEP_FREED_MEMORY=0)"),
        ("MALLOC_MMAP_THRESHOLD_", "65536", "glibc tunables from the environment"),
        ("MALLOC_TRIM_THRESHOLD_", "0", "glibc tunables from the environment"),
    ],
)
def test_leaves_the_allocator_alone_when_the_user_chose(fake_libc, monkeypatch, variable, value, state):
    monkeypatch.setenv(variable, value)
    assert hardware.keep_freed_memory() == state
    assert fake_libc.calls == []


@pytest.mark.skipif(not GLIBC, reason="glibc's allocator only")
def test_a_refusing_mallopt_is_reported(fake_libc):
    fake_libc.answer = 0
    assert hardware.keep_freed_memory() == "glibc defaults (mallopt refused)"


def test_loading_a_model_on_the_cpu_applies_it(fake_libc, tiny_model_dir):
    from openmedclip.models import load_model

    assert "allocator: glibc defaults until a model is loaded" in hardware.describe()
    assert fake_libc.calls == []
    load_model(tiny_model_dir, device="cpu", precision="fp32")
    assert len(fake_libc.calls) == (2 if GLIBC else 0)
    assert f"allocator: {hardware.keep_freed_memory()}" in hardware.describe()


def _faults(env: dict[str, str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", FAULTS_PER_ALLOCATION], env=os.environ | env, capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="glibc's allocator only")
def test_a_freed_40_mib_tensor_is_reused_without_page_faults():
    kept = _faults({})
    default = _faults({hardware.KEEP_FREED_ENV: "0"})
    assert kept["state"] == "glibc, freed memory kept for reuse"
    assert default["state"].startswith("glibc defaults")
    # 40 MiB is above glibc's largest mmap threshold: by default every allocation is mapped and faulted in anew
    assert default["faults"] > 500
    assert kept["faults"] < default["faults"] / 20
