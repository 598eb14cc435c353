"""The task registry: what each evaluation task is called, what data it needs, how its record is built, which
metrics headline it and which plots it has. The eval runner, reports and plots read everything from here.

Adding a task is one module (its API function and its record builder) and one :func:`register_task` call in it;
list the module in :data:`BUILTIN_TASK_MODULES` (or import it before running a suite).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import import_module
from typing import TYPE_CHECKING, Any

import numpy as np

from openmedclip.errors import InvalidInputError

if TYPE_CHECKING:
    import torch

    from openmedclip.models.loaded import LoadedModel

BUILTIN_TASK_MODULES = ("openmedclip.tasks.zeroshot", "openmedclip.tasks.probe", "openmedclip.tasks.retrieval")

NEEDS = frozenset({"labels", "multiclass", "train_split", "captions"})
"""Data needs a task may declare: class labels, single-label classes, a training split, captions."""


@dataclass
class TaskRecord:
    """What one task produced, ready for the result JSON."""

    task: str
    """The CLIP_benchmark task name (``zeroshot_classification``, ...)."""
    n_items: int
    metrics: dict[str, float | None]
    ci: dict[str, list[float | None]]
    details: dict[str, Any]
    plots: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    """Task-specific top-level fields of the result JSON."""


@dataclass
class TaskInputs:
    """Everything a record builder may use, for one (model, dataset): test features and targets, class names and
    prompts, and on demand the training split's features or caption features (cached by the runner)."""

    loaded: LoadedModel
    features: torch.Tensor
    """``[N, D]`` L2-normalised test image features."""
    targets: np.ndarray
    """Class indices ``[N]`` or a 0/1 matrix ``[N, C]`` over ``class_names`` (empty for image–text data)."""
    class_names: list[str]
    prompts: Mapping[str, Any]
    multilabel: bool
    captions: Callable[[], tuple[list[str], list[int]]]
    """Captions of the encoded images and the feature row each belongs to."""
    text_features: Callable[[list[str]], torch.Tensor]
    train: Callable[[], tuple[torch.Tensor, np.ndarray]]
    """Training-split features and targets."""
    n_bootstrap: int
    k_shots: Sequence[int | None]
    seeds: Sequence[int]
    groups: np.ndarray | None = None
    """``[N]`` group key (case, patient, study) of each test feature row: intervals resample whole groups; None:
    single items."""


@dataclass(frozen=True)
class TaskSpec:
    """One evaluation task."""

    name: str
    """Its name in suites and on the command line (``zeroshot``)."""
    benchmark_name: str
    """Its CLIP_benchmark name, used in result files (``zeroshot_classification``)."""
    title: str
    """Report section title."""
    needs: frozenset[str]
    """Subset of :data:`NEEDS`."""
    build_record: Callable[[TaskInputs], TaskRecord]
    headline: tuple[str, ...]
    """Metrics shown in the report tables (a table per metric that some result has)."""
    plots: tuple[str, ...] = ()
    """Plot kinds drawn from its records: ``roc``, ``confusion``, ``kshot``."""


_TASKS: dict[str, TaskSpec] = {}


def register_task(spec: TaskSpec) -> TaskSpec:
    """Add a task, or replace the one of the same name."""
    unknown = spec.needs - NEEDS
    if unknown:
        raise ValueError(f"task {spec.name!r}: unknown data needs {sorted(unknown)} (known: {sorted(NEEDS)})")
    _TASKS[spec.name] = spec
    return spec


@functools.cache
def _load_builtin() -> None:
    for module in BUILTIN_TASK_MODULES:
        import_module(module)


def tasks() -> dict[str, TaskSpec]:
    """Every registered task by name: built-in ones first, in :data:`BUILTIN_TASK_MODULES` order."""
    _load_builtin()

    def position(spec: TaskSpec) -> int:
        module = spec.build_record.__module__
        return BUILTIN_TASK_MODULES.index(module) if module in BUILTIN_TASK_MODULES else len(BUILTIN_TASK_MODULES)

    return {spec.name: spec for spec in sorted(_TASKS.values(), key=position)}


def task_names() -> tuple[str, ...]:
    """The names suites and ``--tasks`` accept."""
    return tuple(tasks())


def get_task(name: str) -> TaskSpec:
    """The task ``name``; ``InvalidInputError`` listing the known ones otherwise."""
    known = tasks()
    if name not in known:
        raise InvalidInputError(f"unknown task {name!r} (known: {list(known)})")
    return known[name]


def by_benchmark_name() -> dict[str, TaskSpec]:
    """Tasks keyed by the CLIP_benchmark name found in result files."""
    return {spec.benchmark_name: spec for spec in tasks().values()}
