"""The lazy public API: every exported name resolves to its module's object; ``import openmedclip`` stays light."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import openmedclip

NAMES = sorted(set(openmedclip.__all__) - {"__version__"})


def test_all_lists_the_export_table():
    assert set(NAMES) == set(openmedclip._EXPORTS)
    assert {"multiclass_metrics", "multilabel_metrics"} <= set(NAMES)
    assert set(NAMES) <= set(dir(openmedclip))


@pytest.mark.parametrize("name", NAMES)
def test_each_name_imports_from_its_module(name):
    module = importlib.import_module(openmedclip._EXPORTS[name])
    namespace: dict = {}
    exec(f"from openmedclip import {name}", namespace)
    assert namespace[name] is getattr(module, name)
    assert getattr(openmedclip, name) is getattr(module, name)


def test_version():
    assert isinstance(openmedclip.__version__, str) and openmedclip.__version__


def test_unknown_attribute_raises_attribute_error_naming_it():
    with pytest.raises(AttributeError, match="no_such_thing"):
        openmedclip.no_such_thing  # noqa: B018
    with pytest.raises(ImportError, match="no_such_thing"):
        exec("from openmedclip import no_such_thing", {})


def test_import_openmedclip_does_not_import_heavy_libraries():
    heavy = ("torch", "open_clip", "transformers", "sklearn", "matplotlib", "numpy", "rich")
    probe = f"import sys, openmedclip; print([m for m in {heavy!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
