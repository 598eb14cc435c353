"""Evaluation suites: YAML files naming datasets, their source, classes, prompts and tasks.

A suite file looks like::

    name: local
    description: what the suite covers
    templates:                                    # optional named template lists for this suite
      histology: ["a histopathology image of {}.", "a pathology slide with {}."]
    datasets:
      pneumoniamnist:
        modality: paediatric chest X-ray          # optional, for reports
        layout: medmnist/pneumoniamnist.npz       # optional, what the data root must hold
        source: {type: medmnist, path: medmnist/pneumoniamnist.npz, split: test}
        train: {split: train}                     # linear probe: overrides merged onto `source`
        classes: [normal, pneumonia]              # optional: order / prompt names (list or {label: name})
        prompts: {bank: pediatric_chest_xray}     # or {templates: histology | ct | [...]} or {sentences: {...}}
        tasks: [zeroshot, probe]

A ``templates`` name is looked up in the suite's ``templates``, then in the built-in template sets.
``path`` (and ``root`` for tables) are relative to the data root the user gives; absolute paths are kept.
Built-in suites live in ``openmedclip/configs/suites``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from openmedclip.data.factory import SOURCES, canonical_type
from openmedclip.errors import InvalidInputError
from openmedclip.prompts import resolve_templates

TASKS = ("zeroshot", "probe", "retrieval")
"""Task names a suite may list."""

PATH_KEYS = ("path", "root")
"""Source options that name files or folders under the data root."""

_SUITE_KEYS = {"name", "description", "templates", "datasets"}
_DATASET_KEYS = {"source", "train", "tasks", "classes", "prompts", "modality", "layout", "description"}
_PROMPT_KEYS = {"bank", "templates", "sentences", "pairs"}


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset of a suite: the source spec (paths still relative), tasks, classes and prompts."""

    name: str
    source: dict[str, Any]
    tasks: tuple[str, ...]
    train: dict[str, Any] | None = None
    classes: dict[str, str] | None = None
    """Source label -> class name used in prompts and results, in result order; None keeps the source's."""
    prompts: dict[str, Any] = field(default_factory=dict)
    modality: str = ""
    layout: str = ""

    def train_source(self) -> dict[str, Any] | None:
        """The spec of the training split: `train` merged over `source` (a `type` in `train` replaces it)."""
        if self.train is None:
            return None
        return dict(self.train) if "type" in self.train else {**self.source, **self.train}


@dataclass(frozen=True)
class Suite:
    """A named list of datasets, read from ``origin`` (a file path or a built-in name)."""

    name: str
    origin: str
    datasets: dict[str, DatasetEntry]
    description: str = ""

    def select(self, names: list[str] | None) -> list[DatasetEntry]:
        """The named datasets (all when ``names`` is empty), in suite order; unknown names raise."""
        if not names:
            return list(self.datasets.values())
        unknown = [n for n in names if n not in self.datasets]
        if unknown:
            raise InvalidInputError(f"{self.origin}: unknown dataset(s) {unknown}; suite has {list(self.datasets)}")
        return [self.datasets[n] for n in names]


def list_suites() -> list[str]:
    """Names of the built-in suites."""
    return sorted(p.name[: -len(".yaml")] for p in _suite_dir().iterdir() if p.name.endswith(".yaml"))


def load_suite(name_or_path: str | Path) -> Suite:
    """A built-in suite by name (see `list_suites`) or a suite YAML file by path."""
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or text.endswith((".yaml", ".yml")) or Path(text).name != text:
        path = Path(name_or_path)
        if not path.is_file():
            raise InvalidInputError(f"{path}: suite file not found")
        return parse_suite(path.read_text(encoding="utf-8"), origin=str(path))
    resource = _suite_dir().joinpath(f"{text}.yaml")
    if not resource.is_file():
        raise InvalidInputError(f"unknown suite {text!r} (built-in: {', '.join(list_suites())}; or give a .yaml path)")
    return parse_suite(resource.read_text(encoding="utf-8"), origin=f"built-in suite '{text}'")


def parse_suite(text: str, *, origin: str = "<string>") -> Suite:
    """Build a suite from YAML text; every problem raises `InvalidInputError` naming ``origin``."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"{origin}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"{origin}: a suite must be a mapping with 'name' and 'datasets'")
    _check_keys(data, _SUITE_KEYS, origin)
    if not data.get("name"):
        raise InvalidInputError(f"{origin}: missing 'name'")
    datasets = data.get("datasets")
    if not isinstance(datasets, dict) or not datasets:
        raise InvalidInputError(f"{origin}: 'datasets' must be a non-empty mapping of dataset name to entry")
    templates = _named_templates(data.get("templates"), origin)
    entries = {
        str(name): _entry(str(name), entry, f"{origin}: dataset '{name}'", templates)
        for name, entry in datasets.items()
    }
    return Suite(str(data["name"]), origin, entries, str(data.get("description") or ""))


def resolve_spec(spec: Mapping[str, Any], data_root: Path) -> dict[str, Any]:
    """The spec with its relative `path`/`root` joined to ``data_root``."""
    out = dict(spec)
    for key in PATH_KEYS:
        if key in out and not Path(str(out[key])).is_absolute():
            out[key] = str(data_root / str(out[key]))
    return out


def missing_paths(spec: Mapping[str, Any]) -> list[str]:
    """The resolved paths of a spec that do not exist (brace patterns of shards are not checked)."""
    return [str(spec[k]) for k in PATH_KEYS if k in spec and "{" not in str(spec[k]) and not Path(spec[k]).exists()]


def _entry(name: str, entry: object, where: str, templates: dict[str, list[str]]) -> DatasetEntry:
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        raise InvalidInputError(f"{where}: dataset names may hold only letters, digits, '.', '_' and '-'")
    if not isinstance(entry, dict):
        raise InvalidInputError(f"{where}: expected a mapping with 'source' and 'tasks'")
    _check_keys(entry, _DATASET_KEYS, where)
    source = _source(entry.get("source"), f"{where} source", require_path=True)
    tasks = entry.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise InvalidInputError(f"{where}: 'tasks' must be a non-empty list (any of {list(TASKS)})")
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise InvalidInputError(f"{where}: unknown task(s) {unknown} (known: {list(TASKS)})")
    train = entry.get("train")
    if "probe" in tasks and train is None:
        raise InvalidInputError(f"{where}: task 'probe' needs a 'train' split (e.g. train: {{split: train}})")
    if train is not None:
        train = _source(train, f"{where} train", require_path=False)
    return DatasetEntry(
        name=name,
        source=source,
        tasks=tuple(dict.fromkeys(tasks)),
        train=train,
        classes=_classes(entry.get("classes"), where),
        prompts=_prompts(entry.get("prompts"), where, templates),
        modality=str(entry.get("modality") or ""),
        layout=str(entry.get("layout") or ""),
    )


def _source(spec: object, where: str, *, require_path: bool) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise InvalidInputError(f"{where}: expected a mapping such as {{type: medmnist, path: x.npz}}")
    if require_path and ("type" not in spec or "path" not in spec):
        raise InvalidInputError(f"{where}: needs 'type' and 'path' (relative to the data root)")
    if "type" in spec and canonical_type(str(spec["type"])) not in SOURCES:
        raise InvalidInputError(f"{where}: unknown source type {spec['type']!r} (known: {list(SOURCES)})")
    return dict(spec)


def _classes(classes: object, where: str) -> dict[str, str] | None:
    if classes is None:
        return None
    if isinstance(classes, list) and all(isinstance(c, (str, int)) for c in classes):
        mapping = {str(c): str(c) for c in classes}
    elif isinstance(classes, dict) and all(isinstance(v, (str, int)) for v in classes.values()):
        mapping = {str(k): str(v) for k, v in classes.items()}
    else:
        raise InvalidInputError(f"{where}: 'classes' must be a list of names or a mapping of label to name")
    if not mapping or len(set(mapping.values())) != len(mapping) or len(mapping) != len(classes):
        raise InvalidInputError(f"{where}: 'classes' must be non-empty and unique")
    return mapping


def _named_templates(templates: object, origin: str) -> dict[str, list[str]]:
    if templates is None:
        return {}
    if not isinstance(templates, dict) or not all(
        isinstance(v, list) and v and all(isinstance(t, str) for t in v) for v in templates.values()
    ):
        raise InvalidInputError(f"{origin}: 'templates' must map a name to a non-empty list of templates")
    return {str(k): list(v) for k, v in templates.items()}


def _prompts(prompts: object, where: str, templates: dict[str, list[str]]) -> dict[str, Any]:
    if prompts is None:
        return {}
    if not isinstance(prompts, dict):
        raise InvalidInputError(f"{where}: 'prompts' must be a mapping (bank, templates, sentences or pairs)")
    _check_keys(prompts, _PROMPT_KEYS, f"{where} prompts")
    if "bank" in prompts and "sentences" in prompts:
        raise InvalidInputError(f"{where}: give prompts as a 'bank' or as 'sentences', not both")
    sentences = prompts.get("sentences")
    if sentences is not None and not (
        isinstance(sentences, dict) and all(isinstance(v, list) and v for v in sentences.values())
    ):
        raise InvalidInputError(f"{where}: 'sentences' must map each class to a non-empty list of sentences")
    chosen = prompts.get("templates")
    if isinstance(chosen, str) and chosen in templates:
        return {**prompts, "templates": templates[chosen]}
    if chosen is not None:
        try:
            resolve_templates(chosen)
        except InvalidInputError as err:
            raise InvalidInputError(f"{where}: {err}") from None
    return dict(prompts)


def _check_keys(mapping: dict, allowed: set[str], where: str) -> None:
    unknown = set(map(str, mapping)) - allowed
    if unknown:
        raise InvalidInputError(f"{where}: unknown key(s) {sorted(unknown)} (allowed: {sorted(allowed)})")


def _suite_dir():
    return resources.files("openmedclip").joinpath("configs", "suites")
