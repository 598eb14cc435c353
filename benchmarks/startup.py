"""Start-up time of the command line: wall-clock time of short commands, each run in a fresh process.

    uv run python benchmarks/startup.py [--repeat 7]

Every command runs ``--repeat`` times, interleaved (one round runs each command once), so slow drifts of the
machine affect all of them alike. The table gives the median and the minimum in seconds and the median relative
to ``python -c "import torch"`` (the floor of any command that needs torch).

Python normally caches compiled bytecode; some environments turn that off (``PYTHONDONTWRITEBYTECODE=1``), which
makes every start compile each imported module again. By default the commands run with a bytecode cache in a
temporary folder (``PYTHONPYCACHEPREFIX``, so nothing is written next to the sources), as on a usual install;
``--no-bytecode-cache`` keeps the environment as it is.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PYTHON = sys.executable


def _cli() -> list[str]:
    script = Path(PYTHON).with_name("openmedclip")
    if script.is_file():
        return [str(script)]
    found = shutil.which("openmedclip")
    return [found] if found else [PYTHON, "-c", "from openmedclip.cli.app import main; main()"]


REFERENCE = "python -c 'import torch'"


def commands() -> dict[str, list[str]]:
    cli = _cli()
    return {
        "openmedclip --help": [*cli, "--help"],
        "openmedclip zeroshot --help": [*cli, "zeroshot", "--help"],
        "openmedclip train --help": [*cli, "train", "--help"],
        "python -m openmedclip.train --help": [PYTHON, "-m", "openmedclip.train", "--help"],
        "openmedclip models": [*cli, "models"],
        "python -c 'list_models()'": [PYTHON, "-c", "from openmedclip.models import list_models; list_models()"],
        "python -c 'import openmedclip'": [PYTHON, "-c", "import openmedclip"],
        REFERENCE: [PYTHON, "-c", "import torch"],
    }


def time_once(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
    return time.perf_counter() - start, done.returncode


def measure(todo: dict[str, list[str]], repeat: int, env: dict[str, str]) -> dict[str, tuple[list[float], set[int]]]:
    """Seconds and exit codes of each command: one warm-up round, then ``repeat`` interleaved rounds."""
    runs: dict[str, tuple[list[float], set[int]]] = {name: ([], set()) for name in todo}
    for argv in todo.values():  # warm-up: bytecode cache, page cache
        time_once(argv, env)
    for _ in range(repeat):
        for name, argv in todo.items():
            seconds, code = time_once(argv, env)
            runs[name][0].append(seconds)
            runs[name][1].add(code)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs of each command (default 7)")
    parser.add_argument(
        "--no-bytecode-cache", dest="cache", action="store_false", help="keep PYTHONDONTWRITEBYTECODE as it is"
    )
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    todo = commands()
    with tempfile.TemporaryDirectory(prefix="openmedclip-startup-pyc-") as pycache:
        if args.cache:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = pycache
        runs = measure(todo, args.repeat, env)
    reference = statistics.median(runs[REFERENCE][0])
    width = max(len(name) for name in todo)
    cache = "no bytecode cache" if "PYTHONDONTWRITEBYTECODE" in env else "bytecode cache on"
    print(f"{os.cpu_count()} CPU(s), {args.repeat} run(s) each, python {sys.version.split()[0]}, {cache}")
    print(f"{'command':<{width}}  {'median s':>8}  {'min s':>6}  {'/ torch':>7}  exit")
    for name, (seconds, codes) in runs.items():
        median = statistics.median(seconds)
        exits = ",".join(str(code) for code in sorted(codes))
        print(f"{name:<{width}}  {median:8.3f}  {min(seconds):6.3f}  {median / reference:7.2f}  {exits}")


if __name__ == "__main__":
    main()
