"""Image-encoding throughput of a ViT-B/16 image tower (random weights): fp32 vs bf16 weights on this machine.

Run: ``uv run python benchmarks/encode_precision.py [--images 64] [--batch-size 32] [--model ViT-B-16]``
Prints images/s for the bare forward pass (pre-made pixel tensors) and for the full engine (PIL images through
``encode_images``: preprocess in loader workers + forward), with bf16/fp32 ratios measured in the same process.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.table import Table

from openmedclip.embed import encode_images
from openmedclip.models import load_model


def _best_of(runs: int, fn) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ViT-B-16")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)) for _ in range(args.images)]
    rows = []
    for precision in ("fp32", "bf16"):
        loaded = load_model(args.model, device="cpu", precision=precision)
        pixels = torch.stack([loaded.preprocess(image) for image in images]).to(loaded.dtype)

        def forward(loaded=loaded, pixels=pixels) -> None:
            with torch.inference_mode():
                for start in range(0, len(pixels), args.batch_size):
                    loaded.model.encode_image(pixels[start : start + args.batch_size])

        forward_s = _best_of(args.runs, forward)
        engine_s = _best_of(args.runs, lambda loaded=loaded: encode_images(loaded, images, batch_size=args.batch_size))
        rows.append((precision, args.images / forward_s, args.images / engine_s))

    table = Table(title=f"{args.model} image encoding, {torch.get_num_threads()} threads, {args.images} images")
    for column in ("precision", "forward img/s", "engine img/s", "forward vs fp32", "engine vs fp32"):
        table.add_column(column, justify="right")
    for precision, forward_rate, engine_rate in rows:
        table.add_row(
            precision,
            f"{forward_rate:.1f}",
            f"{engine_rate:.1f}",
            f"{forward_rate / rows[0][1]:.2f}x",
            f"{engine_rate / rows[0][2]:.2f}x",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
