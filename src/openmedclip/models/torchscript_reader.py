"""Reading the weights of a TorchScript archive (OpenAI's original CLIP ``.pt`` files) without running its code.

A TorchScript archive is a zip: ``data.pkl`` pickles the module tree (objects of ``__torch__.*`` classes holding
tensors whose bytes are the ``data/<key>`` records), and ``code/`` holds the classes' TorchScript source, which
declares each class's ``__parameters__`` and ``__buffers__``. ``torch.jit.load`` would compile and run that code.
Here the pickle is read by a restricted unpickler that knows only tensor rebuilding, storages, ``OrderedDict`` and
TorchScript's list builders; every ``__torch__.*`` object becomes an inert record of its attributes; anything else
is refused naming the global. The class declarations are read from ``code/`` as text (never executed), so the state
dict holds exactly the parameters and buffers, with the keys ``module.state_dict()`` would give.
"""

from __future__ import annotations

import io
import pickle
import re
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

_CLASS = re.compile(r"^class (\w+)\(Module\):\n  __parameters__ = \[([^\]]*)\]\n  __buffers__ = \[([^\]]*)\]", re.M)
STORAGE_DTYPES = {
    f"{name}Storage": dtype
    for name, dtype in (
        ("Float", torch.float32), ("Half", torch.float16), ("BFloat16", torch.bfloat16), ("Double", torch.float64),
        ("Long", torch.int64), ("Int", torch.int32), ("Short", torch.int16), ("Char", torch.int8),
        ("Byte", torch.uint8), ("Bool", torch.bool),
    )
}
"""The element type of each of torch's legacy storage classes, by the name pickles give them."""
_LIST_BUILDERS = ("build_intlist", "build_doublelist", "build_boollist", "build_tensorlist")


class TorchScriptReadError(ValueError):
    """The archive is not a TorchScript archive this reader understands, or asks for a global it refuses."""


class _Record:
    """An inert stand-in for one pickled ``__torch__`` object: its class name and its attributes."""

    script_class = ""

    def __setstate__(self, state: Any) -> None:
        self.state = state if isinstance(state, dict) else {}


def _storage_dtype(name: str) -> torch.dtype:
    return STORAGE_DTYPES[name]


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str):
        super().__init__(io.BytesIO(data))
        self.archive = archive
        self.prefix = prefix
        self.records: dict[str, type[_Record]] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("__torch__."):
            qualified = f"{module}.{name}"
            if qualified not in self.records:
                self.records[qualified] = type(name, (_Record,), {"script_class": qualified})
            return self.records[qualified]
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return torch._utils._rebuild_tensor_v2
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if module == "torch.jit._pickle" and name in _LIST_BUILDERS:
            return list
        if module == "torch" and name in STORAGE_DTYPES:
            return name
        raise TorchScriptReadError(f"refused to unpickle the global {module}.{name} (not a tensor or module record)")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and pid[1] in STORAGE_DTYPES):
            raise TorchScriptReadError(f"unexpected persistent record {pid!r}")
        _, storage_name, key, _location, numel = pid
        dtype = _storage_dtype(storage_name)
        raw = bytearray(self.archive.read(f"{self.prefix}data/{key}"))
        untyped = torch.UntypedStorage.from_buffer(raw, dtype=torch.uint8) if raw else torch.UntypedStorage(0)
        typed = torch.storage.TypedStorage(wrap_storage=untyped, dtype=dtype, _internal=True)
        if typed._size() != numel:
            raise TorchScriptReadError(f"record data/{key} holds {typed._size()} values, expected {numel}")
        return typed


def _declarations(archive: zipfile.ZipFile, prefix: str) -> dict[str, set[str]]:
    """``__torch__.<module>.<Class>`` -> names of its parameters and buffers, read from the archive's code."""
    declared: dict[str, set[str]] = {}
    for name in archive.namelist():
        if not (name.startswith(f"{prefix}code/") and name.endswith(".py")):
            continue
        module = name[len(f"{prefix}code/") : -len(".py")].replace("/", ".")
        for match in _CLASS.finditer(archive.read(name).decode("utf-8", errors="replace")):
            names = re.findall(r'"([^"]+)"', match.group(2) + match.group(3))
            declared[f"{module}.{match.group(1)}"] = set(names)
    return declared


def _flatten(record: _Record, declared: dict[str, set[str]], prefix: str, out: dict[str, torch.Tensor]) -> None:
    tensors = declared.get(record.script_class)
    if tensors is None:
        raise TorchScriptReadError(f"no class declaration for {record.script_class} in the archive's code")
    for name, value in record.state.items():
        if isinstance(value, _Record):
            _flatten(value, declared, f"{prefix}{name}.", out)
        elif name in tensors and isinstance(value, torch.Tensor):
            out[prefix + name] = value.detach()


def is_torchscript(path: Path) -> bool:
    """Whether ``path`` is a TorchScript archive (a zip with ``code/`` and ``constants.pkl``)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in name or name.endswith("constants.pkl") for name in archive.namelist())


def read_torchscript_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The parameters and buffers of the TorchScript module in ``path``, as ``module.state_dict()`` names them;
    scalar entries (OpenAI's ``input_resolution``, ``context_length``, ``vocab_size``) included."""
    with zipfile.ZipFile(path) as archive:
        pickles = [name for name in archive.namelist() if name.endswith("/data.pkl") and name.count("/") == 1]
        if len(pickles) != 1:
            raise TorchScriptReadError("no data.pkl at the top of the archive")
        prefix = pickles[0][: -len("data.pkl")]
        root = _Unpickler(archive.read(pickles[0]), archive, prefix).load()
        if not isinstance(root, _Record):
            raise TorchScriptReadError(f"data.pkl holds a {type(root).__name__}, not a TorchScript module")
        state: dict[str, torch.Tensor] = {}
        _flatten(root, _declarations(archive, prefix), "", state)
    return state
