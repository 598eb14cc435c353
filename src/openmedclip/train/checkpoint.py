"""Training checkpoints: model weights in the open_clip hub format plus optimizer and loop state, atomically.

Layout under ``<out_dir>/checkpoints``::

    step-00000120/   open_clip_config.json, open_clip_model.safetensors (``load_model`` reads this folder),
                     optimizer.pt (optimizer state dict), state.pt (epoch, step, scheduler, scaler, RNG states),
                     training_manifest.json.gz (the training images' pixel hashes, see openmedclip.train.manifest)
    latest           the name of the newest complete checkpoint folder

A checkpoint is written into a temporary folder and renamed into place, and ``latest`` is replaced only
after that, so a crash at any moment leaves the previous checkpoint complete and pointed to.
The ``.pt`` files hold only tensors, numbers, strings and containers: they load with ``weights_only=True``, and a
file that is not what this module wrote is an `InvalidInputError` naming it (nothing else is ever unpickled).
"""

from __future__ import annotations

import os
import pickle
import random
import shutil
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from openmedclip.atomic import fsync_dir, fsync_tree, write_text
from openmedclip.errors import InvalidInputError
from openmedclip.models import LoadedModel, save_model
from openmedclip.models.checkpoint import read_state_dict
from openmedclip.models.families.open_clip.hub_folder import find_weights
from openmedclip.models.saved_folder import is_saved_folder, load_saved_weights, read_folder
from openmedclip.models.strict import load_strict
from openmedclip.train.manifest import TrainingManifest

LATEST = "latest"
OPTIMIZER_FILE = "optimizer.pt"
STATE_FILE = "state.pt"
TMP_PREFIX = ".tmp-"
STATE_KEYS = ("epoch", "step_in_epoch", "step", "steps_per_epoch", "global_batch", "scheduler", "scaler", "rng")
"""What every ``state.pt`` holds."""
OPTIMIZER_KEYS = ("state", "param_groups")


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def save_checkpoint(
    root: Path,
    step: int,
    loaded: LoadedModel,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    keep: int = 0,
    manifest: TrainingManifest | None = None,
) -> Path:
    """Write checkpoint ``step`` under `root` (with the training `manifest`, if given), point ``latest`` to it and
    keep the newest `keep` (0: all)."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / checkpoint_name(step)
    tmp = root / f"{TMP_PREFIX}{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(loaded, tmp)
    torch.save(optimizer.state_dict(), tmp / OPTIMIZER_FILE)
    torch.save(state, tmp / STATE_FILE)
    if manifest is not None:
        manifest.write(tmp)
    fsync_tree(tmp)
    if final.exists():  # a folder cannot be renamed over: move the old one aside (pruned below)
        old = root / f"{TMP_PREFIX}{final.name}-old-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    fsync_dir(root)
    write_text(root / LATEST, final.name)
    _prune(root, keep, final.name)
    return final


def latest_checkpoint(root: Path) -> Path | None:
    """The folder ``latest`` names under `root`, or None when there is no checkpoint yet."""
    pointer = root / LATEST
    if not pointer.is_file():
        return None
    folder = root / pointer.read_bytes().decode("utf-8", "replace").strip()
    if not (folder / STATE_FILE).is_file():
        raise InvalidInputError(f"{pointer} names {folder.name}, which is not a complete checkpoint")
    return folder


def load_weights(loaded: LoadedModel, folder: Path) -> None:
    """Copy a checkpoint's weights into the model (every key must match, as its family checks)."""
    if is_saved_folder(folder):
        load_saved_weights(loaded.family, loaded.model, read_folder(folder)[1], name=str(folder))
        return
    weights = find_weights(folder, str(folder))
    state = loaded.family.convert_state_dict(read_state_dict(weights, str(folder)), loaded.model)
    load_strict(loaded.model, state, name=str(folder), source=weights, tolerated=loaded.family.tolerated_keys)


def load_state(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(optimizer state dict, loop state)`` of a checkpoint, read with ``weights_only=True``; `InvalidInputError`
    ``"<file>: not a training state saved by openmedclip (...)"`` when a file is not one."""
    optimizer = _read_mapping(folder / OPTIMIZER_FILE, "an optimizer state", OPTIMIZER_KEYS)
    state = _read_mapping(folder / STATE_FILE, "a training state", STATE_KEYS)
    return optimizer, state


def _read_mapping(path: Path, what: str, keys: Sequence[str]) -> dict[str, Any]:
    """A ``.pt`` file of tensors and plain data holding a mapping with `keys`."""
    value, problem = _torch_load(path)
    if problem is None and not isinstance(value, dict):
        problem = f"it holds a {type(value).__name__}, not a mapping"
    if problem is None and (missing := [key for key in keys if key not in value]):
        problem = f"it has no {', '.join(missing)}"
    if problem is not None:
        raise InvalidInputError(f"{path}: not {what} saved by openmedclip ({problem})")
    return value


def _torch_load(path: Path) -> tuple[Any, str | None]:
    """``(content, None)``, or ``(None, why it cannot be read)``; only tensors and plain data are unpickled."""
    if not path.is_file():
        return None, "the file is missing"
    if not zipfile.is_zipfile(path):
        return None, "not a file torch.save wrote: no zip archive"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. torch's notes on pickle protocols: the problem is reported below
            return torch.load(path, map_location="cpu", weights_only=True), None
    except pickle.UnpicklingError:
        return None, "it holds objects other than tensors and plain data, which are not loaded"
    except Exception as err:  # a damaged archive fails in many ways, all of them meaning the same here
        first_line = next(iter(str(err).splitlines()), "")
        return None, f"unreadable: {type(err).__name__}: {first_line}"


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and CUDA) random states as tensors and plain numbers."""
    version, mt, gauss = random.getstate()
    numpy_state = np.random.get_state(legacy=True)
    assert isinstance(numpy_state, tuple)  # the legacy tuple: numpy's global generator is an MT19937
    kind, keys, pos, has_gauss, cached = numpy_state
    return {
        "python": {"version": version, "state": torch.tensor(mt, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"].tolist()), py["gauss"]))
    np_state = state["numpy"]
    np.random.set_state(
        (np_state["kind"], np_state["keys"].numpy().astype(np.uint32), np_state["pos"], np_state["has_gauss"],
         np_state["cached"])
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _prune(root: Path, keep: int, current: str) -> None:
    """Remove leftovers of interrupted writes and all but the newest `keep` checkpoints."""
    for path in root.glob(f"{TMP_PREFIX}*"):
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    if keep <= 0:
        return
    done = sorted(p for p in root.glob("step-*") if p.is_dir() and p.name != current)
    for old in done[: max(0, len(done) - (keep - 1))]:
        shutil.rmtree(old, ignore_errors=True)
