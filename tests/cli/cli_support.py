"""Helpers for the command-line tests: results of in-process runs, usage-error checks, fresh processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HEAVY = ("torch", "open_clip", "transformers", "sklearn", "matplotlib", "numpy")
"""Modules that no help screen and no listing may import."""


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def error_lines(self) -> list[str]:
        return self.err.strip().splitlines()


def assert_usage_error(result: Result, *fragments: str) -> None:
    """Exit code 2 and one line on stderr naming each fragment, no traceback."""
    assert result.code == 2, (result.code, result.out, result.err)
    assert len(result.error_lines) == 1, result.err
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in result.err, result.err


def python(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python ARGS`` in a fresh process (offline), text output captured."""
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=environment, timeout=timeout, check=False
    )


def write_pairs(folder: Path, n: int = 8) -> Path:
    """``n`` small PNGs with a caption and a modality label each; returns the JSONL table."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        modality = "CT" if i % 2 else "MR"
        Image.fromarray(rng.integers(0, 256, (36, 40, 3), dtype=np.uint8)).save(folder / f"img{i}.png")
        rows.append({"image": f"img{i}.png", "caption": f"{modality} image number {i}", "modality": modality})
    table = folder / "captions.jsonl"
    table.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return table
