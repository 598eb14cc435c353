"""Help screens and listings answer before any heavy library is imported (a behaviour test, not a timing test)."""

from __future__ import annotations

import json

from cli_support import HEAVY, python

from openmedclip.cli.app import command_names

PROBE = """
import contextlib, io, json, sys
from openmedclip.cli.app import run
steps = []
for args in json.loads(sys.argv[1]):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = run(args)
    steps.append({"args": args, "code": code, "heavy": [m for m in HEAVY if m in sys.modules]})
print(json.dumps(steps))
"""


def _steps(*arg_lists: list[str]) -> list[dict]:
    done = python("-c", f"HEAVY = {HEAVY!r}\n{PROBE}", json.dumps(arg_lists))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_help_and_models_do_not_import_heavy_libraries():
    arg_lists = [["--help"], *([name, "--help"] for name in command_names()), [], ["models"]]
    for step in _steps(*arg_lists):
        assert step["heavy"] == [], f"openmedclip {' '.join(step['args'])} imported {step['heavy']}"
        assert step["code"] == (2 if step["args"] == [] else 0), step


def test_usage_errors_do_not_import_heavy_libraries():
    arg_lists = [["zeroshot", "x.png"], ["inspect", "x.png", "--window", "40,abc"], ["train", "stray"], ["nope"]]
    for step in _steps(*arg_lists):
        assert step["code"] == 2 and step["heavy"] == [], step


def test_python_m_openmedclip_train_help_does_not_import_torch():
    probe = (
        "import runpy, sys\n"
        "sys.argv = ['openmedclip.train', '--help']\n"
        "try:\n    runpy.run_module('openmedclip.train', run_name='__main__', alter_sys=True)\n"
        "except SystemExit as done:\n    code = done.code\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules], code)"
    )
    done = python("-c", probe)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[] 0"
