"""Defaults on this CPU: the built-in model's images/s per precision, torch threads and memory format.

Run: ``uv run python benchmarks/defaults.py [--data-root ../shared/data] [--images 128] [--rounds 3]``
``engine``: ``encode_images`` on real MedPix JPEGs with 1 loader worker (decode + preprocess + forward);
``forward``: ``encode_image`` on the same images already preprocessed. Every configuration runs once per round,
interleaved; the table prints the best of the rounds and its ratio to fp32, NCHW, 1 thread.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from openmedclip import hardware
from openmedclip.embed import encode_images
from openmedclip.io import read_image
from openmedclip.models import load_model


def _files(root: Path, count: int) -> list[Path]:
    files = sorted((root / "medpix2_traindev" / "images").glob("*.jpg"))[:count]
    if len(files) < count:
        raise SystemExit(f"{root}: fewer than {count} MedPix JPEGs")
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--passes", type=int, default=4, help="forward passes over the images per timing")
    args = parser.parse_args()
    files = _files(args.data_root, args.images)
    models = {}
    for precision in ("fp32", "bf16"):
        for channels_last in (False, True):
            loaded = load_model("openmedclip-base", device="cpu", precision=precision)
            if channels_last:
                loaded.model.to(memory_format=torch.channels_last)
            models[(precision, channels_last)] = loaded
    pixels = torch.stack([models[("fp32", False)].preprocess(read_image(f)) for f in files])
    configs = [("engine", p, cl, t) for p in ("fp32", "bf16") for cl in (False, True) for t in (1, 2)]
    configs += [("forward", p, cl, t) for p in ("fp32", "bf16") for cl in (False, True) for t in (1, 2)]
    best: dict[tuple, float] = {}
    for _ in range(args.rounds):
        for kind, precision, channels_last, threads in configs:
            loaded = models[(precision, channels_last)]
            torch.set_num_threads(threads)
            start = time.perf_counter()
            if kind == "engine":
                encode_images(loaded, files, batch_size=args.batch_size, num_workers=1)
            else:
                batch = pixels.to(loaded.dtype)
                if channels_last:
                    batch = batch.contiguous(memory_format=torch.channels_last)
                with torch.inference_mode():
                    for _ in range(args.passes):
                        for i in range(0, len(batch), args.batch_size):
                            loaded.model.encode_image(batch[i : i + args.batch_size])
            rate = len(files) * (args.passes if kind == "forward" else 1) / (time.perf_counter() - start)
            key = (kind, precision, channels_last, threads)
            best[key] = max(best.get(key, 0.0), rate)
    table = Table(title=f"openmedclip-base, {len(files)} MedPix JPEGs, batch {args.batch_size}, best of {args.rounds}")
    for column in ("what", "precision", "layout", "threads", "images/s", "vs fp32 NCHW 1 thread"):
        table.add_column(column, justify="right")
    for key, rate in best.items():
        kind, precision, channels_last, threads = key
        base = best[(kind, "fp32", False, 1)]
        table.add_row("forward" if kind == "forward" else "engine", precision,
                      "channels-last" if channels_last else "NCHW", str(threads), f"{rate:.1f}", f"{rate / base:.2f}x")
    Console().print(table)
    Console().print(hardware.describe())


if __name__ == "__main__":
    main()
