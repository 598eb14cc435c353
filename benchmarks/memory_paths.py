"""What keeping freed memory (glibc) and prepacking linear weights (oneDNN) are worth: the towers in bf16 on the
CPU with each of the four combinations.

Run: ``uv run python benchmarks/memory_paths.py [--models biomedclip-shaped openmedclip-base] [--rounds 3]``
(``--tiny`` for a smoke run).

The allocator setting is process-wide (:func:`openmedclip.hardware.keep_freed_memory`), so every measurement runs
in a fresh process: ``OPENMEDCLIP_KEEP_FREED_MEMORY=0`` leaves glibc at its defaults, and "plain" turns the
:class:`~openmedclip.models.packed_linear.PackedLinear` layers ``load_model`` made back into ``nn.Linear``. The
processes of one round run one after another, the combinations interleaved; each combination keeps its best round.
A process times its towers on fixed random batches (best of ``--runs`` passes after a warm-up) and counts the
minor page faults of the timed passes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from common import BIOMEDCLIP_SHAPED, best_of, cpu_line, markdown_table, model_source
from encoders import tower_inputs

COMBINATIONS = {
    "glibc defaults, F.linear": {"keep": False, "packed": False},
    "freed memory kept, F.linear": {"keep": True, "packed": False},
    "glibc defaults, packed weights": {"keep": False, "packed": True},
    "freed memory kept, packed weights (the default)": {"keep": True, "packed": True},
}


def measure(source: str, batch: int, runs: int, packed: bool) -> dict[str, float]:
    """Items/s and minor page faults per pass of each tower, in this process."""
    import torch
    from torch import nn

    from openmedclip.hardware import keep_freed_memory
    from openmedclip.models import load_model
    from openmedclip.models.packed_linear import PackedLinear

    loaded = load_model(source, device="cpu", precision="bf16")
    if not packed:
        for module in loaded.model.modules():
            if isinstance(module, PackedLinear):
                module.__class__ = nn.Linear
    pixels, tokens = tower_inputs(loaded, batch, batch)
    pixels = pixels.to(loaded.dtype)
    result: dict[str, float | str] = {"allocator": keep_freed_memory()}
    with torch.inference_mode():
        for tower, forward in (
            ("image", lambda: loaded.model.encode_image(pixels)),
            ("text", lambda: loaded.model.encode_text(tokens)),
        ):
            forward()
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            seconds = best_of(runs, forward)
            result[f"{tower} faults"] = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / runs
            result[f"{tower} items/s"] = batch / seconds
    return result


def run_child(source: str, args: argparse.Namespace, combination: dict[str, bool]) -> dict:
    env = os.environ | {"OPENMEDCLIP_KEEP_FREED_MEMORY": "1" if combination["keep"] else "0"}
    command = [sys.executable, __file__, "--child", source, "--batch-size", str(args.batch_size),
               "--runs", str(args.runs)] + (["--packed"] if combination["packed"] else [])
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=[BIOMEDCLIP_SHAPED, "openmedclip-base"])
    parser.add_argument("--batch-size", type=int, default=32, help="items per forward pass (default 32)")
    parser.add_argument("--runs", type=int, default=5, help="timed passes per tower and process (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--tiny", action="store_true", help="smoke run: tiny model, small batches, one round")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--packed", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.batch_size, args.runs, args.packed)))
        return
    if args.tiny:
        args.batch_size, args.runs, args.rounds = 4, 1, 1

    rows = []
    with tempfile.TemporaryDirectory(prefix="openmedclip-bench-") as scratch:
        for model in args.models:
            name, source = model_source(model, Path(scratch), tiny=args.tiny, label="ViT-B/16 + BERT-base")
            best: dict[str, dict] = {}
            for round_ in range(args.rounds):
                for label, combination in COMBINATIONS.items():
                    result = run_child(str(source), args, combination)
                    print(f"{name}, round {round_ + 1}/{args.rounds}: {label}: "
                          f"image {result['image items/s']:.1f}/s, text {result['text items/s']:.1f}/s", flush=True)
                    kept = best.setdefault(label, result)
                    for tower in ("image", "text"):
                        if result[f"{tower} items/s"] > kept[f"{tower} items/s"]:
                            kept[f"{tower} items/s"] = result[f"{tower} items/s"]
                            kept[f"{tower} faults"] = result[f"{tower} faults"]
            reference = best["glibc defaults, F.linear"]
            for label, result in best.items():
                rows.append([name, label] + [
                    cell
                    for tower in ("image", "text")
                    for cell in (
                        f"{result[f'{tower} items/s']:.1f}",
                        f"{result[f'{tower} items/s'] / reference[f'{tower} items/s']:.2f}",
                        f"{result[f'{tower} faults']:.0f}",
                    )
                ])
    print()
    print(cpu_line().split("; allocator")[0])
    print(f"bf16, batch {args.batch_size}, best of {args.runs} passes per process, best of {args.rounds} "
          "interleaved rounds")
    print()
    print(markdown_table(
        ["model", "configuration", "image items/s", "image ×", "image page faults/pass", "text items/s", "text ×",
         "text page faults/pass"], rows,
    ))


if __name__ == "__main__":
    main()
