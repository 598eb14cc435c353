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
        groups: case                              # optional: intervals resample whole cases (patients, studies)
        deduplicate: {kinds: [exact, near]}       # optional: also `<name>-dedup`, without test items that have
                                                  # a copy in `train` (or in `against: [...]` sources)
        metric: acc1                              # optional: the zero-shot primary metric (a `metrics` key)
    summary:                                      # optional: how the primary metrics aggregate (`report`)
      groups: modality                            # optional: a mean per modality
      means: [datasets, groups]                   # mean over datasets and/or over the group means

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
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
    with_config,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from openmedclip.data.factory import SOURCES, canonical_type
from openmedclip.errors import InvalidInputError
from openmedclip.metrics.defaults import ZEROSHOT_METRICS
from openmedclip.prompts import resolve_templates
from openmedclip.schemas import FileModel, describe_error
from openmedclip.yaml_text import safe_load

PATH_KEYS = ("path", "root")
"""Source options that name files or folders under the data root."""


def _known_source_type(spec: Mapping[str, Any]) -> Mapping[str, Any]:
    if "type" in spec and canonical_type(spec["type"]) not in SOURCES:
        raise PydanticCustomError("source_type", f"unknown source type {spec['type']!r} (known: {list(SOURCES)})")
    return spec


def _known_tasks(tasks: list[str]) -> list[str]:
    """`tasks` if each names a registered task (see :mod:`openmedclip.tasks.registry`)."""
    from openmedclip.tasks.registry import task_names

    unknown = [t for t in tasks if t not in task_names()]
    if unknown:
        raise PydanticCustomError("task", f"unknown task(s) {unknown} (known: {list(task_names())})")
    return tasks


def _zeroshot_metric(metric: str) -> str:
    """`metric` if a zero-shot result may hold it (see `ZEROSHOT_METRICS`)."""
    if metric not in ZEROSHOT_METRICS:
        raise PydanticCustomError(
            "metric", f"unknown metric {metric!r} (zero-shot metrics: {', '.join(ZEROSHOT_METRICS)})"
        )
    return metric


def _dataset_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        raise PydanticCustomError("dataset_name", "dataset names may hold only letters, digits, '.', '_' and '-'")
    return name


@with_config(ConfigDict(extra="allow", use_attribute_docstrings=True))
class SourceSpec(TypedDict):
    """A data source (`openmedclip.data.open_source` options); ``path`` and ``root`` are under the data root."""

    type: str
    """Source type (see `openmedclip.data.factory.SOURCES`)."""
    path: str


@with_config(ConfigDict(extra="allow", use_attribute_docstrings=True))
class SplitSpec(TypedDict, total=False):
    """The linear probe's training split: options merged over `source` (a ``type`` replaces `source`)."""

    type: str
    path: str


class SuitePrompts(FileModel):
    """How a dataset's classes become prompts: a sentence bank, templates, sentences per class, or prompt pairs."""

    model_config = ConfigDict(coerce_numbers_to_str=True)
    bank: str | None = None
    """Sentence bank: a built-in name or a YAML path."""
    templates: str | list[str] | None = None
    """A template list of the suite's ``templates``, a built-in set, one template or a list, each with a ``{}``."""
    sentences: dict[str, Annotated[list[str], Field(min_length=1)]] | None = None
    """Class name -> its prompt sentences."""
    pairs: dict[str, tuple[str | list[str], str | list[str]]] | None = None
    """Multi-label: class name -> (positive, negative) prompts, each a sentence or a list."""

    @model_validator(mode="after")
    def _bank_or_sentences(self) -> SuitePrompts:
        if {"bank", "sentences"} <= self.model_fields_set:
            raise PydanticCustomError("prompts", "give prompts as a 'bank' or as 'sentences', not both")
        return self


class SuiteDeduplicate(FileModel):
    """Also evaluate a de-duplicated view of the test split: without the items that have a copy in other sources
    (`openmedclip.audit`), reported as the dataset ``<name>-dedup`` beside the raw one."""

    against: list[Annotated[SplitSpec, AfterValidator(_known_source_type)]] | None = None
    """Sources whose copies leave the view: options merged over `source` (as `train` is), or whole specs with a
    ``type``. Default: the `train` split."""
    kinds: Annotated[tuple[Literal["exact", "near"], ...], Field(min_length=1)] = ("exact", "near")
    """Which copies count: exact (same decoded pixels), near (perceptual hash and thumbnail correlation)."""


class SuiteDataset(FileModel):
    """One dataset of a suite: its source, tasks, classes and prompts."""

    model_config = ConfigDict(coerce_numbers_to_str=True)
    source: Annotated[SourceSpec, AfterValidator(_known_source_type)]
    tasks: Annotated[list[str], Field(min_length=1), AfterValidator(_known_tasks)]
    """Tasks to run: zeroshot, probe (needs `train`), retrieval."""
    train: Annotated[SplitSpec, AfterValidator(_known_source_type)] | None = None
    classes: list[str] | dict[str, str] | None = None
    """Order and prompt names of the classes: a list of labels, or a mapping of label to name."""
    prompts: SuitePrompts | None = None
    modality: str | None = None
    """Shown in reports."""
    layout: str | None = None
    """What the data root must hold for this dataset."""
    description: str | None = None
    groups: Annotated[str, Field(min_length=1)] | None = None
    """Resampling unit of the intervals: a group id the source gives every test row (``case``, ``patient``,
    ``study``; see `DataSource.group_ids`); the bootstrap then draws whole groups. Default: single items."""
    deduplicate: SuiteDeduplicate | None = None
    metric: Annotated[str, AfterValidator(_zeroshot_metric)] | None = None
    """Primary metric of the zero-shot task: a key of its result's ``metrics`` (``acc1``, ``auroc``,
    ``mean_per_class_recall``, ``positive_f1``, ...), recorded as the result's ``primary_metric`` and averaged by
    the suite's ``summary``."""

    @field_validator("classes")
    @classmethod
    def _unique_classes(cls, classes: list[str] | dict[str, str] | None) -> list[str] | dict[str, str] | None:
        names = list(classes.values()) if isinstance(classes, dict) else classes
        if names is not None and (not names or len(set(names)) != len(names)):
            raise PydanticCustomError("classes", "'classes' must be non-empty and unique")
        return classes

    @model_validator(mode="after")
    def _probe_needs_train(self) -> SuiteDataset:
        if "probe" in self.tasks and self.train is None:
            raise PydanticCustomError("probe", "task 'probe' needs a 'train' split (e.g. train: {split: train})")
        if self.deduplicate is not None and self.deduplicate.against is None and self.train is None:
            raise PydanticCustomError("deduplicate", "'deduplicate' needs 'against' sources or a 'train' split")
        if self.metric is not None and "zeroshot" not in self.tasks:
            raise PydanticCustomError("metric", "'metric' names the zero-shot primary metric: add task 'zeroshot'")
        return self


class SuiteSummary(FileModel):
    """How the suite's headline numbers aggregate: plain means of the datasets' primary metrics (``metric``)."""

    groups: Literal["modality"] | None = None
    """Also a mean per value of this dataset field (every zero-shot dataset must have it)."""
    means: Annotated[tuple[Literal["datasets", "groups"], ...], Field(min_length=1)] = ("datasets",)
    """Overall means: over the datasets, and/or over the group means (needs ``groups``)."""

    @model_validator(mode="after")
    def _group_means_need_groups(self) -> SuiteSummary:
        if len(set(self.means)) != len(self.means):
            raise PydanticCustomError("means", "'means' lists each of datasets, groups at most once")
        if "groups" in self.means and self.groups is None:
            raise PydanticCustomError("means", "a mean over 'groups' needs 'groups' (e.g. groups: modality)")
        return self


class SuiteFile(FileModel):
    """An evaluation suite file: named datasets with their sources, tasks, classes and prompts."""

    model_config = ConfigDict(coerce_numbers_to_str=True)
    name: Annotated[str, Field(min_length=1)]
    description: str | None = None
    templates: dict[str, Annotated[list[str], Field(min_length=1)]] | None = None
    """Named template lists that the datasets' ``prompts.templates`` may name."""
    datasets: Annotated[dict[Annotated[str, AfterValidator(_dataset_name)], SuiteDataset], Field(min_length=1)]
    """Dataset name -> entry, in report order."""
    summary: SuiteSummary | None = None
    """The protocol summary of the report: means of the zero-shot datasets' primary metrics."""

    @model_validator(mode="after")
    def _summary_needs_metrics(self) -> SuiteFile:
        if self.summary is None:
            return self
        zeroshot = {name: entry for name, entry in self.datasets.items() if "zeroshot" in entry.tasks}
        if not zeroshot:
            raise PydanticCustomError("summary", "'summary' needs datasets with task 'zeroshot'")
        unscored = [name for name, entry in zeroshot.items() if entry.metric is None]
        if unscored:
            raise PydanticCustomError("summary", f"'summary' needs a 'metric' on every zeroshot dataset: {unscored}")
        ungrouped = [name for name, entry in zeroshot.items() if not entry.modality]
        if self.summary.groups == "modality" and ungrouped:
            raise PydanticCustomError("summary", f"'groups: modality' needs a 'modality' on every zeroshot dataset: "
                                      f"{ungrouped}")
        return self


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
    groups: str | None = None
    """The grouping unit the intervals resample (None: items)."""
    deduplicate: dict[str, Any] | None = None
    """``{"against": [spec, ...], "kinds": [...]}`` for a de-duplicated view beside the raw one, else None."""
    metric: str | None = None
    """The zero-shot primary metric (a key of the result's ``metrics``), None when the suite names none."""

    def train_source(self) -> dict[str, Any] | None:
        """The spec of the training split: `train` merged over `source` (a `type` in `train` replaces it)."""
        if self.train is None:
            return None
        return self._merged(self.train)

    def deduplicate_against(self) -> list[dict[str, Any]]:
        """The specs of the sources whose copies leave the de-duplicated view (none without ``deduplicate``)."""
        if self.deduplicate is None:
            return []
        against = self.deduplicate.get("against")
        if against is None:
            train = self.train_source()
            return [] if train is None else [train]
        return [self._merged(spec) for spec in against]

    def _merged(self, options: dict[str, Any]) -> dict[str, Any]:
        return dict(options) if "type" in options else {**self.source, **options}


@dataclass(frozen=True)
class Suite:
    """A named list of datasets, read from ``origin`` (a file path or a built-in name)."""

    name: str
    origin: str
    datasets: dict[str, DatasetEntry]
    description: str = ""
    summary: dict[str, Any] | None = None
    """``{"groups": "modality" | None, "means": ["datasets", "groups"]}``: how the report aggregates the datasets'
    primary metrics; None without a protocol summary."""

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
    """Build a suite from YAML text; every problem raises `InvalidInputError` naming ``origin`` and the place,
    e.g. ``s.yaml: datasets.chest.prompts.bankk: unknown key (did you mean 'bank'?)``."""
    try:
        data = safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"{origin}: not valid YAML ({exc})") from None
    try:
        suite = SuiteFile.model_validate(data)
    except ValidationError as err:
        raise InvalidInputError(f"{origin}: {describe_error(err, SuiteFile)}") from None
    templates = suite.templates or {}
    entries = {
        name: _entry(name, entry, f"{origin}: datasets.{name}", templates) for name, entry in suite.datasets.items()
    }
    summary = None if suite.summary is None else suite.summary.model_dump(mode="json")
    return Suite(suite.name, origin, entries, suite.description or "", summary)


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


def _entry(name: str, entry: SuiteDataset, where: str, templates: dict[str, list[str]]) -> DatasetEntry:
    classes = entry.classes
    return DatasetEntry(
        name=name,
        source=dict(entry.source),
        tasks=tuple(dict.fromkeys(entry.tasks)),
        train=None if entry.train is None else dict(entry.train),
        classes={c: c for c in classes} if isinstance(classes, list) else classes,
        prompts=_prompts(entry.prompts, where, templates),
        modality=entry.modality or "",
        layout=entry.layout or "",
        groups=entry.groups,
        deduplicate=None if entry.deduplicate is None else entry.deduplicate.model_dump(),
        metric=entry.metric,
    )


def _prompts(prompts: SuitePrompts | None, where: str, templates: dict[str, list[str]]) -> dict[str, Any]:
    """The prompt options as given, with a suite template name replaced by its list; templates are checked."""
    if prompts is None:
        return {}
    out = prompts.model_dump(exclude_unset=True)
    chosen = prompts.templates
    if isinstance(chosen, str) and chosen in templates:
        return {**out, "templates": templates[chosen]}
    if chosen is not None:
        try:
            resolve_templates(chosen)
        except InvalidInputError as err:
            raise InvalidInputError(f"{where}.prompts.templates: {err}") from None
    return out


def _suite_dir():
    return resources.files("openmedclip").joinpath("configs").joinpath("suites")
