"""Reading the tensors of a PyTorch-Lightning ``.ckpt`` without running any code from it.

A Lightning checkpoint is a ``torch.save`` zip whose pickle holds, beside ``state_dict``, the training state
(epoch, optimizer and scaler states, callback states keyed by the callback *classes*) and ``hyper_parameters``,
which GLoRIA's trainer filled with its OmegaConf ``DictConfig``. ``torch.load(weights_only=True)`` refuses those
objects, and unpickling them for real would import and run omegaconf / pytorch_lightning code. This reader is a
restricted unpickler: it rebuilds tensors from the archive's storages, accepts plain containers and numpy scalars,
turns exactly the classes in :data:`PLACEHOLDER_CLASSES` into inert records that never run their code, and refuses
every other global by name.
"""

from __future__ import annotations

import codecs
import io
import pickle
import zipfile
from collections import OrderedDict, defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy._core.multiarray import scalar

from openmedclip.errors import ModelLoadError
from openmedclip.models.torchscript_reader import STORAGE_DTYPES

PLACEHOLDER_CLASSES = frozenset({
    "omegaconf.dictconfig.DictConfig", "omegaconf.listconfig.ListConfig",
    "omegaconf.base.ContainerMetadata", "omegaconf.base.Metadata", "omegaconf.base.Node",
    "omegaconf.base.Container", "omegaconf.base.SCMode", "omegaconf.basecontainer.BaseContainer",
    "omegaconf.nodes.AnyNode", "omegaconf.nodes.StringNode", "omegaconf.nodes.IntegerNode",
    "omegaconf.nodes.FloatNode", "omegaconf.nodes.BooleanNode", "omegaconf.nodes.EnumNode",
    "omegaconf.nodes.BytesNode", "omegaconf.nodes.PathNode", "omegaconf.nodes.ValueNode",
    "omegaconf.nodes.InterpolationResultNode", "omegaconf._utils.ValueKind",
    "pytorch_lightning.utilities.parsing.AttributeDict",
    "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
    "pytorch_lightning.callbacks.early_stopping.EarlyStopping",
    "pytorch_lightning.callbacks.lr_monitor.LearningRateMonitor",
    "typing.Any",
})
"""Configuration and bookkeeping classes Lightning checkpoints name, read as inert records."""

_PLAIN = {
    ("collections", "OrderedDict"): OrderedDict,
    ("collections", "defaultdict"): defaultdict,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "scalar"): scalar,  # numpy-1 pickles
    ("numpy._core.multiarray", "scalar"): scalar,
    ("_codecs", "encode"): codecs.encode,  # bytes inside protocol-2 numpy scalars
    **{
        (module, name.__name__): name
        for module in ("builtins", "__builtin__")
        for name in (dict, list, tuple, set, frozenset, str, bytes, int, float, complex, bool, object, slice)
    },
}
"""Globals that build only values: containers, tensors from storages, numpy scalars and dtypes."""



class Placeholder:
    """An inert stand-in for an object of a known configuration class: its class name, arguments and state."""

    class_name = ""

    def __init__(self, *args: Any, **kwargs: Any):
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state


class PlaceholderDict(dict[Any, Any]):
    """An inert stand-in for a dict subclass (Lightning's ``AttributeDict``)."""

    class_name = ""

    def __setstate__(self, state: Any) -> None:
        self.state = state


class CheckpointRefused(ValueError):
    """The pickle names a global this reader does not accept."""


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str):
        super().__init__(io.BytesIO(data))
        self.archive = archive
        self.prefix = prefix
        self.placeholders: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        qualified = f"{module}.{name}"
        if qualified in PLACEHOLDER_CLASSES:
            if qualified not in self.placeholders:
                base = PlaceholderDict if name == "AttributeDict" else Placeholder
                self.placeholders[qualified] = type(name, (base,), {"class_name": qualified})
            return self.placeholders[qualified]
        if (module, name) in _PLAIN:
            return _PLAIN[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return name
        raise CheckpointRefused(f"refused to unpickle the global {qualified} (not a tensor, a plain value or a "
                                "known configuration class)")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and pid[1] in STORAGE_DTYPES):
            raise CheckpointRefused(f"unexpected persistent record {pid!r}")
        _, storage_name, key, _location, numel = pid
        raw = bytearray(self.archive.read(f"{self.prefix}data/{key}"))
        untyped = torch.UntypedStorage.from_buffer(raw, dtype=torch.uint8) if raw else torch.UntypedStorage(0)
        typed = torch.storage.TypedStorage(wrap_storage=untyped, dtype=STORAGE_DTYPES[storage_name], _internal=True)
        if typed._size() != numel:
            raise CheckpointRefused(f"record data/{key} holds {typed._size()} values, expected {numel}")
        return typed


def read_checkpoint(path: Path) -> Any:
    """The unpickled content of the ``torch.save`` zip at ``path``, configuration objects as placeholders."""
    with zipfile.ZipFile(path) as archive:
        pickles = [name for name in archive.namelist() if name.endswith("/data.pkl") and name.count("/") == 1]
        if len(pickles) != 1:
            raise CheckpointRefused("no data.pkl at the top of the archive")
        prefix = pickles[0][: -len("data.pkl")]
        return _Unpickler(archive.read(pickles[0]), archive, prefix).load()


def read_lightning_state_dict(path: Path, model: str) -> dict[str, torch.Tensor]:
    """The tensors under ``state_dict`` of the Lightning checkpoint (or plain ``torch.save`` state dict) at
    ``path``; ``ModelLoadError`` naming the problem, or the refused global, otherwise."""
    if not zipfile.is_zipfile(path):
        raise ModelLoadError(model, f"{path}: not a zip-format PyTorch checkpoint (torch.save since PyTorch 1.6)")
    try:
        content = read_checkpoint(path)
    except CheckpointRefused as error:
        raise ModelLoadError(model, f"{path}: {error}") from None
    except (pickle.UnpicklingError, zipfile.BadZipFile, KeyError, EOFError, RuntimeError, TypeError) as error:
        raise ModelLoadError(model, f"{path}: not a readable PyTorch checkpoint ({error})") from None
    state = content.get("state_dict", content) if isinstance(content, Mapping) else content
    if not isinstance(state, Mapping) or not state:
        raise ModelLoadError(model, f"{path}: expected a dict of tensors under 'state_dict'")
    not_tensors = [str(key) for key, value in state.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        listed = ", ".join(not_tensors[:10])
        raise ModelLoadError(model, f"{path}: {len(not_tensors)} entries are not tensors: {listed}")
    return {str(key): value for key, value in state.items()}
