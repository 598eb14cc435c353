"""`TrainConfig`: every option of a training run, read from a YAML recipe plus ``key=value`` overrides."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from openmedclip.errors import InvalidInputError

PRECISIONS = ("fp32", "bf16", "fp16")
LOSS_NAMES = ("infonce", "siglip")
CAPTION_KEYS = {"bank", "normal_class", "from_fields", "max_qa"}


@dataclass
class TrainConfig:
    """A training run. Batch sizes are per process; one optimizer step sees
    ``batch_size * grad_accum * world_size`` pairs."""

    model: str
    """Anything `openmedclip.models.load_model` accepts: registry name, hub-format folder, open_clip architecture."""
    datasets: list[dict]
    """`openmedclip.data.open_source` specs; an optional ``weight`` sets each source's share of an epoch.
    Relative paths are taken from the working directory."""
    checkpoint: str | None = None
    """Weights for an architecture given as `model` (``load_model(model, checkpoint=...)``)."""
    epoch_size: int | None = None
    """Pairs per epoch (default: the sum of the sources' sizes)."""
    val_datasets: list[dict] = field(default_factory=list)
    """Image–text sources for retrieval validation (R@1/5/10 both ways), one result per source."""
    captions: dict = field(default_factory=dict)
    """How samples without captions get one: ``{bank: <name or yaml>, normal_class: ...}`` captions their labels
    with bank sentences; ``{from_fields: true, max_qa: 2}`` builds one from modality, organ and question–answer
    metadata (VQA-RAD). A dataset spec may carry its own ``captions`` mapping, which replaces this one for it."""
    epochs: int = 1
    max_steps: int | None = None
    """Stop after this many optimizer steps in all (the schedule still spans `epochs`)."""
    batch_size: int = 32
    grad_accum: int = 1
    """Micro-batches per optimizer step; the loss sees all of them at once (see `openmedclip.train.step`)."""
    lr: float = 1e-5
    weight_decay: float = 0.2
    warmup_steps: int = 0
    precision: str = "fp32"
    """fp32, bf16 (autocast, CPU or GPU) or fp16 (autocast + GradScaler, GPU only); weights stay fp32."""
    grad_checkpointing: bool = False
    lock_image: bool | int = False
    """True freezes the image tower; an int N leaves its last N layer groups trainable (open_clip's groups,
    from the end: the projection; the last block with the final norm; each earlier block; the embeddings)."""
    lock_text: bool | int = False
    """True freezes the text tower; an int N leaves its last N layer groups trainable (as for `lock_image`)."""
    loss: str = "infonce"
    gather_features: bool = True
    """With several processes, use all processes' pairs as negatives (same result as one big batch)."""
    augment: bool = False
    """Random crops (80–100 % of the area) before the model's preprocessing, seeded per sample and epoch."""
    seed: int = 0
    device: str | None = None
    """``cpu``, ``cuda``, ``cuda:1``...; default: the process's GPU when there is one, else the CPU."""
    num_workers: int = 0
    val_every: int = 1
    """Validate every this many epochs (0: never)."""
    out_dir: str = "runs/train"
    log_file: str = "log.jsonl"
    """JSON-lines log, relative to `out_dir`."""
    keep_checkpoints: int = 2
    resume: bool = False
    """Continue from ``out_dir``'s latest checkpoint (start afresh when there is none)."""
    progress: bool = True

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            setattr(self, f.name, _coerce(getattr(self, f.name), hints[f.name], f.name))
        self._check()

    def _check(self) -> None:
        if not self.datasets:
            raise InvalidInputError("recipe: 'datasets' needs at least one data source")
        for spec in [*self.datasets, *self.val_datasets]:
            if not isinstance(spec, dict):
                raise InvalidInputError(f"recipe: a data source must be a mapping, got {spec!r}")
        for name in ("epochs", "batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise InvalidInputError(f"recipe: '{name}' must be at least 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "num_workers", "val_every", "keep_checkpoints"):
            if getattr(self, name) < 0:
                raise InvalidInputError(f"recipe: '{name}' must be >= 0, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise InvalidInputError(f"recipe: 'max_steps' must be at least 1, got {self.max_steps}")
        if self.lr <= 0:
            raise InvalidInputError(f"recipe: 'lr' must be positive, got {self.lr}")
        if self.precision not in PRECISIONS:
            raise InvalidInputError(f"recipe: 'precision' must be one of {PRECISIONS}, got {self.precision!r}")
        if self.loss not in LOSS_NAMES:
            raise InvalidInputError(f"recipe: 'loss' must be one of {LOSS_NAMES}, got {self.loss!r}")
        for where, captions in [("captions", self.captions)] + [
            (f"datasets[{i}].captions", spec.get("captions", {})) for i, spec in enumerate(self.datasets)
        ]:
            unknown = set(captions) - CAPTION_KEYS
            if unknown:
                known = sorted(CAPTION_KEYS)
                raise InvalidInputError(f"recipe: unknown '{where}' option(s) {sorted(unknown)}; known: {known}")
        for name in ("lock_image", "lock_text"):
            value = getattr(self, name)
            if not isinstance(value, bool) and value < 0:
                raise InvalidInputError(f"recipe: '{name}' must be true/false or a number of unlocked layers >= 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_recipe(path: str | Path | None, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """A `TrainConfig` from a YAML recipe (or none) with `overrides` applied on top.

    Override keys may be dotted (``datasets.0.path``, ``captions.bank``); string values are read as YAML
    (``"3"`` -> 3, ``"true"`` -> True, ``"[a, b]"`` -> a list), so command-line ``--key value`` pairs work as is.
    """
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise InvalidInputError(f"{path}: recipe not found")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise InvalidInputError(f"{path}: not valid YAML ({err})") from None
        if not isinstance(data, dict):
            raise InvalidInputError(f"{path}: a recipe must be a mapping of options")
    for key, value in (overrides or {}).items():
        _set_dotted(data, key.replace("-", "_"), yaml.safe_load(value) if isinstance(value, str) else value)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidInputError(f"recipe: unknown option(s) {unknown}; known: {sorted(known)}")
    missing = sorted(name for name in ("model", "datasets") if name not in data)
    if missing:
        raise InvalidInputError(f"recipe: missing required option(s) {missing}")
    return TrainConfig(**data)


def _set_dotted(data: Any, key: str, value: Any) -> None:
    """Set ``data[a][b]...`` for key ``a.b...``; integer parts index lists, missing mappings are created."""
    *parents, last = key.split(".")
    node = data
    for part in parents:
        node = _child(node, part, key)
    if isinstance(node, list):
        node[_list_index(node, last, key)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise InvalidInputError(f"override {key!r}: {'.'.join(parents)} is not a mapping or list")


def _child(node: Any, part: str, key: str) -> Any:
    if isinstance(node, list):
        return node[_list_index(node, part, key)]
    if not isinstance(node, dict):
        raise InvalidInputError(f"override {key!r}: cannot go into {part!r}")
    return node.setdefault(part, {})


def _list_index(items: list, part: str, key: str) -> int:
    if not part.isdigit() or int(part) >= len(items):
        raise InvalidInputError(f"override {key!r}: {part!r} is not an index of a list of {len(items)}")
    return int(part)


def _coerce(value: Any, hint: Any, name: str) -> Any:
    """`value` as type `hint` (ints to floats, numeric strings to numbers), or `InvalidInputError`."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _coerce(value, option, name)
            except InvalidInputError:
                continue
    elif hint is type(None):
        if value is None:
            return None
    elif hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            try:
                return float(value)
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, (str, Path)):
            return str(value)
    elif origin is list or hint is list:
        if isinstance(value, list):
            return value
    elif origin is dict or hint is dict:
        if isinstance(value, dict):
            return value
    raise InvalidInputError(f"recipe: '{name}' must be {_describe(hint)}, got {value!r}")


def _describe(hint: Any) -> str:
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string", type(None): "null"}
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe(option) for option in typing.get_args(hint))
    if typing.get_origin(hint) is list or hint is list:
        return "a list"
    if typing.get_origin(hint) is dict or hint is dict:
        return "a mapping"
    return names.get(hint, str(hint))
