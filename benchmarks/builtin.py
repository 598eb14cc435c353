"""The built-in model ``openmedclip-base``: start-up of one-image zero-shot, and the 624 PneumoniaMNIST test images.

Run: ``uv run python benchmarks/builtin.py [--data ../shared/data] [--repeat 5] [--rounds 3]`` (``--tiny``: 48
images, 2 repeats, a smoke run).

*Start-up*: wall-clock seconds of fresh processes, interleaved (one round runs each once, after one warm-up round),
median and minimum, and the median relative to ``python -c "import torch"`` (the floor of anything using torch).
The one-image rows classify a real chest X-ray PNG as normal / pneumonia: through the command line with its
defaults, and through the API with each ``runtime`` of ``load_model`` ('auto': the plain-torch modules; 'library':
open_clip, timm and transformers). The folder rows run the command line on the PneumoniaMNIST test images written as
PNG files, start-up included.

*Throughput*: one process; ``zero_shot(model, files, labels)`` on the same PNG files with each configuration,
every configuration once per round, interleaved, after a warm-up call on 8 files; images/s from the best round
(text features come from the cache after the warm-up, so the rounds time images). Agreement is the top-1 agreement
with 'fp32, library' (the configuration before these defaults existed) on files whose margin there exceeds 0.01.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from common import DEFAULT_DATA, cpu_line, markdown_table, timed

MODEL = "openmedclip-base"
LABELS = "normal,pneumonia"
FLOOR = "python -c 'import torch'"


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("openmedclip")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "openmedclip.cli.app"]


def _api(image: Path, runtime: str) -> list[str]:
    code = (
        "from openmedclip.models import load_model; from openmedclip.tasks.zeroshot import zero_shot; "
        f"m = load_model({MODEL!r}, runtime={runtime!r}); "
        f"print(zero_shot(m, [{str(image)!r}], {LABELS.split(',')!r}).probabilities)"
    )
    return [sys.executable, "-c", code]


def write_pneumonia_pngs(data: Path, folder: Path, count: int | None) -> list[Path]:
    """The PneumoniaMNIST test images as PNG files in ``folder`` (the first ``count``, or all 624)."""
    from PIL import Image

    with np.load(data / "medmnist" / "pneumoniamnist.npz") as arrays:
        pictures = arrays["test_images"][:count]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, picture in enumerate(pictures):
        path = folder / f"pneumonia_test_{index:04d}.png"
        Image.fromarray(picture).save(path)
        paths.append(path)
    return paths


def startup(image: Path, folder: Path, count: int, repeat: int, env: dict[str, str]) -> list[list[str]]:
    commands = {
        FLOOR: [sys.executable, "-c", "import torch"],
        "openmedclip zeroshot (1 chest X-ray PNG)": [*_cli(), "zeroshot", str(image), "--labels", LABELS],
        "API, runtime='auto' (1 image)": _api(image, "auto"),
        "API, runtime='library' (1 image)": _api(image, "library"),
        f"openmedclip zeroshot --csv ({count} PneumoniaMNIST PNGs)": [
            *_cli(), "zeroshot", str(folder), "--labels", LABELS, "--csv"],
        f"openmedclip zeroshot --csv --precision fp32 ({count} PNGs)": [
            *_cli(), "zeroshot", str(folder), "--labels", LABELS, "--csv", "--precision", "fp32"],
    }
    seconds: dict[str, list[float]] = {name: [] for name in commands}
    for round_index in range(repeat + 1):
        for name, argv in commands.items():
            start = time.perf_counter()
            done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
            if done.returncode != 0:
                raise SystemExit(f"{name} failed ({done.returncode}):\n{done.stderr[-2000:]}")
            if round_index:
                seconds[name].append(time.perf_counter() - start)
    floor = statistics.median(seconds[FLOOR])
    return [
        [name, f"{statistics.median(values):.2f}", f"{min(values):.2f}", f"{statistics.median(values) / floor:.2f}"]
        for name, values in seconds.items()
    ]


def throughput(files: list[Path], rounds: int) -> list[list[str]]:
    from openmedclip.models import load_model
    from openmedclip.precision import precision_name
    from openmedclip.tasks.zeroshot import zero_shot

    configs = {
        "defaults (precision 'auto', runtime 'auto')": {},
        "fp32, runtime 'auto'": {"precision": "fp32"},
        "precision 'auto', library": {"runtime": "library"},
        "fp32, library": {"precision": "fp32", "runtime": "library"},
    }
    labels = LABELS.split(",")
    models = {name: load_model(MODEL, **options) for name, options in configs.items()}  # type: ignore[arg-type]
    paths = [str(path) for path in files]
    calls: dict[str, Callable[[], object]] = {
        name: (lambda model=model: zero_shot(model, paths, labels)) for name, model in models.items()
    }
    for model in models.values():
        zero_shot(model, paths[:8], labels)
    best: dict[str, float] = {name: float("inf") for name in calls}
    results: dict[str, np.ndarray] = {}
    for _ in range(rounds):
        for name, call in calls.items():
            seconds, result = timed(call)
            best[name] = min(best[name], seconds)
            results[name] = result.probabilities  # type: ignore[attr-defined]
    reference = results["fp32, library"]
    top2 = np.sort(reference, axis=1)[:, -2:]
    confident = (top2[:, 1] - top2[:, 0]) > 0.01
    rows = []
    for name, probabilities in results.items():
        same = (probabilities.argmax(1) == reference.argmax(1))[confident]
        rows.append([
            name, precision_name(models[name].dtype), f"{len(files) / best[name]:.1f}",
            f"{best['fp32, library'] / best[name]:.2f}×",
            f"{same.mean():.1%} of {confident.sum()}", f"{np.abs(probabilities - reference).max():.4f}",
        ])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeat", type=int, default=5, help="start-up runs of each command")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds")
    parser.add_argument("--tiny", action="store_true", help="smoke run: 48 images, 2 repeats, 1 round")
    args = parser.parse_args()
    count, repeat, rounds = (48, 2, 1) if args.tiny else (None, args.repeat, args.rounds)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryDirectory(prefix="openmedclip-builtin-bench-") as scratch:
        env["OPENMEDCLIP_CACHE"] = os.environ["OPENMEDCLIP_CACHE"] = str(Path(scratch) / "cache")
        files = write_pneumonia_pngs(args.data, Path(scratch) / "pneumoniamnist", count)
        image = sorted((args.data / "txv_test_cxr").glob("*.png"))[0]
        print(cpu_line())
        print(f"\nStart-up, fresh processes, {repeat} interleaved runs each (seconds)\n")
        rows = startup(image, files[0].parent, len(files), repeat, env)
        print(markdown_table(["command", "median s", "min s", "/ import torch"], rows))
        print(f"\nzero_shot on {len(files)} PneumoniaMNIST test PNGs, one process, best of {rounds} round(s)\n")
        rows = throughput(files, rounds)
        headers = ["configuration", "precision", "images/s", "× fp32 library", "top-1 agreement", "max |Δp|"]
        print(markdown_table(headers, rows))


if __name__ == "__main__":
    main()
