"""Encoder-only throughput: the image and text towers on fixed random batches, fp32 and bf16, against the matmul
peak measured on this machine.

Run: ``uv run python benchmarks/encoders.py [--models biomedclip-shaped openmedclip-base] [--batch-size 16]``
(``--tiny`` for a smoke run).

Each model is loaded with ``openmedclip.models.load_model(..., precision=p)`` and its towers are called directly
(``model.encode_image(pixels)``, ``model.encode_text(tokens)``) under ``torch.inference_mode``: no decoding, no
preprocessing, no tokenising. Pixels are a fixed random batch of the model's input size; tokens are a sentence
repeated until the full context length (no padding). FLOPs are counted once per model and input with
``torch.utils.flop_counter.FlopCounterMode`` (matrix products, convolutions, attention; 2 per multiply-add).
The peak is the best of several ``torch.mm`` of two ``--mm-size`` square matrices in the row's precision, with the
same threads, measured right after the row's tower (so a machine shared with other work loads both alike).
``biomedclip-shaped`` is the ViT-B/16 + BERT-base model of ``common.write_biomedclip_folder``.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from common import BIOMEDCLIP_SHAPED, best_of, cpu_line, markdown_table, model_source

FILLER = "a frontal chest radiograph showing a small left pleural effusion and mild cardiomegaly. "
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def matmul_peak(size: int, dtype: torch.dtype, runs: int) -> float:
    """GFLOP/s of the fastest of ``runs`` ``torch.mm`` of two ``size`` x ``size`` matrices (after one warm-up)."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(dtype)
    b = torch.randn(size, size, generator=generator).to(dtype)
    torch.mm(a, b)
    return 2 * size**3 / best_of(runs, lambda: torch.mm(a, b)) / 1e9


def count_flops(fn: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        fn()
    return int(counter.get_total_flops())


def tower_inputs(loaded, batch: int, text_batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random pixel batch of the model's input size and full-length token rows."""
    from openmedclip.io import MedicalImage

    rng = np.random.default_rng(0)
    picture = MedicalImage(rng.uniform(0, 255, (256, 256)).astype(np.float32), "random", meta={"bit_depth": 8})
    shape = loaded.preprocess(picture).shape
    pixels = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(0))
    tokens = loaded.tokenizer([FILLER * (loaded.context_length // 8 + 1)] * text_batch)
    return pixels, tokens


def measure_model(name: str, source: str | Path, args: argparse.Namespace, peaks: dict[str, float]) -> list[list]:
    from openmedclip.models import load_model

    rows: list[list] = []
    flops: dict[str, int] = {}
    for precision in args.precisions:
        loaded = load_model(source, device="cpu", precision=precision)
        model = loaded.model
        pixels, tokens = tower_inputs(loaded, args.batch_size, args.text_batch)
        pixels = pixels.to(loaded.dtype)
        towers = {
            "image": (len(pixels), lambda model=model, pixels=pixels: model.encode_image(pixels)),
            "text": (len(tokens), lambda model=model, tokens=tokens: model.encode_text(tokens)),
        }
        for tower, (items, forward) in towers.items():
            if tower not in flops:
                flops[tower] = count_flops(forward)
            with torch.inference_mode():
                forward()
                seconds = best_of(args.runs, forward)
            peak = matmul_peak(args.mm_size, DTYPES[precision], args.mm_runs)
            peaks[precision] = max(peaks.get(precision, 0.0), peak)
            achieved = flops[tower] / seconds / 1e9
            shape = f"{tuple(pixels.shape[1:])}" if tower == "image" else f"{tokens.shape[1]} tokens"
            rows.append([
                name, tower, precision, f"{items} x {shape}", f"{items / seconds:.2f}",
                f"{flops[tower] / items / 1e9:.2f}", f"{achieved:.0f}", f"{peak:.0f}", f"{100 * achieved / peak:.0f} %",
            ])
        del loaded, model, towers
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=[BIOMEDCLIP_SHAPED, "openmedclip-base"],
                        help=f"'{BIOMEDCLIP_SHAPED}' or anything load_model accepts (default: both of these)")
    parser.add_argument("--precisions", nargs="+", choices=list(DTYPES), default=list(DTYPES))
    parser.add_argument("--batch-size", type=int, default=16, help="images per forward pass (default 16)")
    parser.add_argument("--text-batch", type=int, default=16, help="texts per forward pass (default 16)")
    parser.add_argument("--runs", type=int, default=3, help="timed passes per tower, best kept (default 3)")
    parser.add_argument("--mm-size", type=int, default=4096, help="matrix side of the matmul peak (default 4096)")
    parser.add_argument("--mm-runs", type=int, default=3, help="timed matmuls per row (default 3)")
    parser.add_argument("--tiny", action="store_true", help="smoke run: tiny model, small batches and matmuls")
    args = parser.parse_args()
    if args.tiny:
        args.batch_size, args.text_batch, args.runs, args.mm_size, args.mm_runs = 4, 4, 1, 1024, 2

    peaks: dict[str, float] = {}
    rows = []
    with tempfile.TemporaryDirectory(prefix="openmedclip-bench-") as scratch:
        for model in args.models:
            name, source = model_source(model, Path(scratch), tiny=args.tiny, label="ViT-B/16 + BERT-base")
            rows += measure_model(name, source, args, peaks)

    print(cpu_line())
    print()
    print(markdown_table(
        ["precision", f"torch.mm {args.mm_size}² GFLOP/s (best of all rows)"],
        [[precision, f"{peak:.0f}"] for precision, peak in peaks.items()],
    ))
    print()
    print(markdown_table(
        ["model", "tower", "precision", "batch", "items/s", "GFLOP/item", "GFLOP/s", "matmul peak GFLOP/s",
         "% of peak"], rows
    ))


if __name__ == "__main__":
    main()
