"""Run a suite: models × datasets × tasks -> one JSON per (model, dataset, task) under the output folder.

Layout of the output folder::

    <out>/<model>/<dataset>/<task>.json   CLIP_benchmark-shaped result (task: zeroshot_classification, ...)
    <out>/<model>/summary.json            what ran, what was skipped (missing data) and what failed
    <out>/.cache/                         feature cache (see openmedclip.embed.cache), unless another is given

Datasets whose files are missing under the data root are skipped, not failed. Sources are opened once and
shared by every model; each model's image features come from the cache when nothing they depend on changed.

A zero-shot result records the suite entry's ``primary_metric`` (for two classes its metrics include the
positive-class ``positive_precision``, ``positive_recall`` and ``positive_f1``); a suite with a ``summary`` also
writes its protocol (:mod:`openmedclip.eval.protocol`) into ``summary.json``.

Every result counts, per split it used (``test``, and ``train`` for the probe), the items evaluated and the items
skipped because their image was missing or could not be read (``items``), and names the skipped ones
(``skipped_items``, at most ``LISTED_ITEMS`` per split).

Every result says its resampling unit (``item``, or the suite entry's ``groups`` unit and the number of groups)
and its contamination check (test items whose pixels are in the model's training manifest, see
:mod:`openmedclip.eval.contamination`); with ``exclude_seen`` the metrics are on the unseen items only.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from openmedclip import __version__
from openmedclip.atomic import write_json
from openmedclip.data import DataSource, open_source
from openmedclip.embed import EncodedImages, encode_images, encode_texts
from openmedclip.embed.cache import (
    FeatureCache,
    data_fingerprint,
    digest,
    model_fingerprint,
)
from openmedclip.errors import InvalidInputError, OpenMedClipError
from openmedclip.eval.contamination import (
    Contamination,
    TrainingItems,
    check_contamination,
    model_training_items,
    split_hashes,
)
from openmedclip.eval.protocol import protocol_declaration
from openmedclip.eval.suite import PATH_KEYS, DatasetEntry, Suite, missing_paths, resolve_spec
from openmedclip.metrics.defaults import CI_LEVEL, N_BOOTSTRAP
from openmedclip.models import LoadedModel, load_model
from openmedclip.precision import precision_name
from openmedclip.tasks.registry import TaskInputs, TaskRecord, get_task, task_names

DATA_ENV = "OPENMEDCLIP_DATA"
"""Environment variable naming the data root when ``--data-root`` is not given."""
RESULTS_FOLDER = Path("results")
"""Where ``openmedclip eval`` writes without ``--out``: ``results/<suite name>`` (see :func:`default_out`)."""
LISTED_ITEMS = 100
"""At most this many skipped items of a split are named in a result JSON (``items`` counts them all)."""


@dataclass
class EvalOptions:
    """How to run a suite; the defaults match the ``openmedclip eval`` command."""

    tasks: Sequence[str] = field(default_factory=task_names)
    datasets: Sequence[str] = ()
    n_bootstrap: int = N_BOOTSTRAP
    k_shots: Sequence[int | None] = (1, 2, 4, 8, 16, None)
    seeds: Sequence[int] = (0, 1, 2)
    limit: int | None = None
    """At most this many items per split, evenly spaced over the split (quick runs)."""
    batch_size: int = 32
    device: str | None = None
    precision: str = "auto"
    """'auto' (per device, see :func:`openmedclip.precision.resolve_precision`), 'fp32', 'bf16' or 'fp16'."""
    cache_dir: Path | None = None
    """Feature cache folder; default ``<out>/.cache``."""
    use_cache: bool = True
    progress: bool = False
    grouped: bool = True
    """Resample the groups a suite entry names (its ``groups``); False: single items everywhere."""
    exclude_seen: bool = False
    """Leave test items seen in training (by the model's training manifest) out of the metrics."""


@dataclass
class RunSummary:
    """Files written, datasets or tasks skipped for missing data, tasks that failed, and items left out."""

    written: list[Path] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    skipped_items: list[dict[str, str]] = field(default_factory=list)
    """Items whose image was missing or unreadable, each once however many datasets, tasks and models met it:
    ``dataset``, ``split``, ``key``, ``reason``."""
    _noted: set[tuple[str, str, str]] = field(default_factory=set, init=False, repr=False)

    def note_skipped_items(self, dataset: str, split_name: str, split: _Split, encoded: EncodedImages) -> None:
        """Add the items of ``split`` that ``encoded`` lacks for a missing or unreadable image, unless an item of
        the same source path and split was added already (datasets sharing images, other tasks and models)."""
        source = (str(split.spec.get("path", split.source.name)), str(split.spec.get("split", "")))
        for key, reason in _left_out(split, encoded):
            if (*source, key) not in self._noted:
                self._noted.add((*source, key))
                self.skipped_items.append({"dataset": dataset, "split": split_name, "key": key, "reason": reason})


@dataclass
class _Split:
    source: DataSource
    spec: dict[str, Any]
    rows: list[int]
    targets: np.ndarray
    """Class indices ``[N]`` or 0/1 matrix ``[N, C]`` over the suite's class names, for every source row."""
    unit: str = "item"
    """What the intervals resample: ``item`` or a grouping unit (``case``, ...)."""
    groups: np.ndarray | None = None
    """Group id of every source row when ``unit`` is not ``item``."""
    hashes: list[str | None] | None = None
    """Pixel hashes of ``rows`` (computed on first use)."""


@dataclass
class _Prepared:
    entry: DatasetEntry
    tasks: list[str]
    test: _Split
    train: _Split | None
    class_names: list[str]
    open_s: float
    deduplicated: dict[str, Any] | None = None
    """For a de-duplicated view: what it was compared with, and how many test items it dropped."""


def resolve_data_root(given: Path | None) -> Path:
    """``given`` (``--data-root``), else ``$OPENMEDCLIP_DATA``; it must be an existing folder."""
    if given is not None:
        chosen, named = given, f"--data-root {given}"
    elif os.environ.get(DATA_ENV):
        chosen = Path(os.environ[DATA_ENV])
        named = f"${DATA_ENV}={chosen}"
    else:
        raise InvalidInputError(f"no data root: pass --data-root DIR or set ${DATA_ENV}")
    if not chosen.exists():
        raise InvalidInputError(f"{named}: no such folder")
    if not chosen.is_dir():
        raise InvalidInputError(f"{named}: not a folder")
    return chosen


def default_out(suite: Suite) -> Path:
    """The results folder without ``--out``: ``results/<suite name>`` (relative to the working folder)."""
    return RESULTS_FOLDER / _safe_name(suite.name)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def model_slug(name: str) -> str:
    """A folder name for a model: registry/architecture names as they are, paths by folder name + short hash."""
    path = Path(name).expanduser()
    if path.exists():
        return f"{_safe_name(path.name)}-{digest(str(path.resolve()))[:6]}"
    return _safe_name(name)


def select_rows(n: int, limit: int | None) -> list[int]:
    """All rows, or ``limit`` rows evenly spaced over ``[0, n)`` (deterministic)."""
    if limit is None or limit >= n:
        return list(range(n))
    return np.unique(np.linspace(0, n - 1, limit).round().astype(int)).tolist()


def _targets(source: DataSource, mapping: dict[str, str], where: str) -> np.ndarray:
    """Source labels re-indexed to the order of ``mapping`` (class indices, or a 0/1 matrix for multi-label)."""
    if source.task == "image-text":
        return np.zeros(0)
    unknown = [label for label in source.label_names if label not in mapping]
    if unknown:
        raise InvalidInputError(f"{where}: label(s) {unknown} are not among the classes {list(mapping)}")
    order = list(mapping)
    columns = [order.index(label) for label in source.label_names]
    if source.task == "multiclass":
        return np.asarray(columns, dtype=np.int64)[source.targets]
    matrix = np.zeros((len(source), len(order)), dtype=np.float32)
    matrix[:, columns] = source.labels
    return matrix


def _split(
    source: DataSource,
    spec: dict[str, Any],
    mapping: dict[str, str],
    limit: int | None,
    where: str,
    unit: str | None = None,
) -> _Split:
    split = _Split(source, spec, select_rows(len(source), limit), _targets(source, mapping, where))
    if unit is not None:
        try:
            split.groups = np.asarray(source.group_ids(unit), dtype=object)
        except InvalidInputError as err:
            raise InvalidInputError(f"{where}: groups: {err}") from None
        split.unit = unit
    return split


def _check_tasks(tasks: list[str], split: _Split, where: str) -> None:
    """Every task's declared data needs are met by the test split's source."""
    source = split.source
    for task in tasks:
        needs = get_task(task).needs
        if "labels" in needs and source.task == "image-text":
            raise InvalidInputError(f"{where}: {task} needs class labels; {source.name} has none")
        if "multiclass" in needs and source.task != "multiclass":
            raise InvalidInputError(f"{where}: {task} needs a multiclass source; {source.name} is {source.task}")
        if "captions" in needs and not any(source.captions(i) for i in split.rows):
            raise InvalidInputError(f"{where}: {task} needs captions; {source.name} has none")


def prepare(
    entry: DatasetEntry, data_root: Path, options: EvalOptions, summary: RunSummary, origin: str
) -> _Prepared | None:
    """Open a dataset's sources; None when none of its tasks is wanted or its data is missing (noted as skipped)."""
    tasks = [t for t in entry.tasks if t in options.tasks]
    if not tasks:
        return None
    where = f"{origin}: dataset '{entry.name}'"
    spec = resolve_spec(entry.source, data_root)
    missing = missing_paths(spec)
    if missing:
        summary.skipped.append({"dataset": entry.name, "reason": f"not found: {', '.join(missing)}"})
        return None
    start = time.perf_counter()
    source = open_source(spec)
    mapping = entry.classes or {label: label for label in source.label_names}
    test = _split(source, spec, mapping, options.limit, where, entry.groups if options.grouped else None)
    train = None
    train_spec = entry.train_source()
    if any("train_split" in get_task(t).needs for t in tasks) and train_spec is not None:
        train_spec = resolve_spec(train_spec, data_root)
        missing = missing_paths(train_spec)
        if missing:
            reason = f"not found: {', '.join(missing)}"
            for task in [t for t in tasks if "train_split" in get_task(t).needs]:
                summary.skipped.append({"dataset": entry.name, "task": task, "reason": reason})
                tasks.remove(task)
        else:
            train = _split(open_source(train_spec), train_spec, mapping, options.limit, f"{where} train")
    _check_tasks(tasks, test, where)
    return _Prepared(entry, tasks, test, train, list(mapping.values()), time.perf_counter() - start)


def deduplicated(prep: _Prepared, data_root: Path, options: EvalOptions, summary: RunSummary) -> _Prepared | None:
    """The dataset ``<name>-dedup``: ``prep`` with its test split cut to the items without a copy in the entry's
    ``deduplicate`` sources (:func:`openmedclip.audit.deduplicate`); None when the entry asks for none."""
    entry = prep.entry
    if entry.deduplicate is None:
        return None
    from openmedclip.audit import deduplicate

    name = f"{entry.name}-dedup"
    specs = [resolve_spec(spec, data_root) for spec in entry.deduplicate_against()]
    missing = [path for spec in specs for path in missing_paths(spec)]
    if missing:
        summary.skipped.append({"dataset": name, "reason": f"not found: {', '.join(missing)}"})
        return None
    start = time.perf_counter()
    kinds = tuple(entry.deduplicate["kinds"])
    view = deduplicate(prep.test.source, [open_source(spec) for spec in specs], kinds=kinds)
    mapping = entry.classes or {label: label for label in view.label_names}
    where = f"dataset '{name}'"
    test = _split(view, prep.test.spec, mapping, options.limit, where, prep.test.unit if prep.test.unit != "item"
                  else None)
    dropped = {"against": [_relative(spec, data_root) for spec in specs], "kinds": list(kinds),
               "dropped": len(view.dropped), "of": len(prep.test.source)}
    return replace(prep, entry=replace(entry, name=name), test=test, open_s=prep.open_s + time.perf_counter() - start,
                   deduplicated=dropped)


def _relative(spec: dict[str, Any], data_root: Path) -> dict[str, Any]:
    """A resolved spec with its paths shown relative to the data root again, for the result JSON."""
    shown = dict(spec)
    for key in PATH_KEYS:
        if key in shown and Path(str(shown[key])).is_relative_to(data_root):
            shown[key] = str(Path(str(shown[key])).relative_to(data_root))
    return shown


def _encode(loaded: LoadedModel, split: _Split, options: EvalOptions) -> EncodedImages:
    """Features of the split's rows; ``indices`` are positions in ``split.rows``, ``items`` source keys."""
    return encode_images(
        loaded, split.source, rows=split.rows, batch_size=options.batch_size, progress=options.progress
    )


class _ModelRun:
    """One model over the prepared datasets, with its cache fingerprint and its training items (if recorded)."""

    def __init__(self, name: str, loaded: LoadedModel, cache: FeatureCache, options: EvalOptions):
        self.name, self.loaded, self.cache, self.options = name, loaded, cache, options
        self.fingerprint = model_fingerprint(loaded)
        self.status = "miss" if cache.folder is not None else "off"
        self.training: TrainingItems | None = model_training_items(loaded.spec.folder)

    def contamination(self, split: _Split, encoded: EncodedImages) -> Contamination:
        """Which encoded test items the model was trained on (unchecked without a training manifest)."""
        if self.training is not None and split.hashes is None:
            split.hashes = split_hashes(split.source, split.rows, split.spec, self.cache.folder)
        keys = [split.source.keys[row] for row in split.rows]
        return check_contamination(
            self.training, split.hashes or [], keys, encoded.indices, exclude=self.options.exclude_seen
        )

    def images(self, split: _Split, used: dict[str, tuple[str, float]], name: str) -> EncodedImages:
        """Features of a split (cached); notes the cache status and seconds under ``used[name]``."""
        start = time.perf_counter()
        key = digest([self.fingerprint, data_fingerprint(split.source, split.rows, split.spec), "images"])
        encoded, hit = self.cache.images(key, lambda: _encode(self.loaded, split, self.options))
        used[name] = ("hit" if hit else self.status, time.perf_counter() - start)
        return encoded

    def texts(self, texts: list[str], used: dict[str, tuple[str, float]]) -> torch.Tensor:
        """Features of captions (cached); notes the cache status and seconds under ``used['texts']``."""
        start = time.perf_counter()
        key = digest([self.fingerprint, "texts", texts])
        features, hit = self.cache.texts(key, partial(encode_texts, self.loaded, texts, progress=self.options.progress))
        used["texts"] = ("hit" if hit else self.status, time.perf_counter() - start)
        return features


def _captions(split: _Split, encoded: EncodedImages) -> tuple[list[str], list[int]]:
    texts, owner = [], []
    for position, index in enumerate(encoded.indices):
        for caption in split.source.captions(split.rows[index]):
            texts.append(caption)
            owner.append(position)
    return texts, owner


def _encoded_targets(split: _Split, encoded: EncodedImages) -> np.ndarray:
    """The targets of the rows that were encoded, in feature order (empty for image–text data)."""
    if not len(split.targets):
        return split.targets
    return split.targets[np.asarray(split.rows)[encoded.indices]]


def _unseen(encoded: EncodedImages, check: Contamination) -> EncodedImages:
    """The encoded items without those seen in training, when they are to be left out."""
    if not check.excluded or not check.seen:
        return encoded
    seen = set(check.seen)
    keep = [k for k in range(len(encoded.indices)) if k not in seen]
    return EncodedImages(
        encoded.features[keep], [encoded.indices[k] for k in keep], [encoded.items[k] for k in keep], encoded.errors
    )


def _encoded_groups(split: _Split, encoded: EncodedImages) -> np.ndarray | None:
    """The group ids of the rows that were encoded, in feature order (None for items)."""
    if split.groups is None:
        return None
    return split.groups[np.asarray(split.rows, dtype=np.int64)[encoded.indices]]


def _resampling(split: _Split, encoded: EncodedImages) -> dict[str, Any]:
    """The result JSON's ``resampling``: the unit and how many of them the intervals draw from."""
    groups = _encoded_groups(split, encoded)
    return {"unit": split.unit, "n_units": len(encoded.indices) if groups is None else len(set(groups.tolist()))}


Splits = dict[str, tuple[_Split, EncodedImages]]
"""The splits a task used, by name (``test``, ``train``), with what was encoded of each."""


def _run_task(
    task: str, prep: _Prepared, run: _ModelRun, encoded: EncodedImages, used: dict[str, tuple[str, float]],
    splits: Splits,
) -> TaskRecord:
    """The task's record; a training split it encodes is added to ``splits``."""
    options = run.options

    def train() -> tuple[torch.Tensor, np.ndarray]:
        assert prep.train is not None, "a task needing a training split runs only when it is there"
        features = run.images(prep.train, used, "train_images")
        splits["train"] = (prep.train, features)
        return features.features, _encoded_targets(prep.train, features)

    inputs = TaskInputs(
        loaded=run.loaded,
        features=encoded.features,
        targets=_encoded_targets(prep.test, encoded),
        class_names=prep.class_names,
        prompts=prep.entry.prompts,
        multilabel=prep.test.source.task == "multilabel",
        captions=partial(_captions, prep.test, encoded),
        text_features=partial(run.texts, used=used),
        train=train,
        n_bootstrap=options.n_bootstrap,
        k_shots=options.k_shots,
        seeds=options.seeds,
        groups=_encoded_groups(prep.test, encoded),
    )
    return get_task(task).build_record(inputs)


def _with_primary_metric(record: TaskRecord, entry: DatasetEntry) -> TaskRecord:
    """A zero-shot record with the entry's ``primary_metric``; a primary metric the record lacks raises."""
    if entry.metric is not None and entry.metric not in record.metrics:
        raise InvalidInputError(
            f"dataset '{entry.name}': primary metric '{entry.metric}' is not among its zero-shot metrics "
            f"({', '.join(record.metrics)})"
        )
    return replace(record, extra={**record.extra, "primary_metric": entry.metric})


def _left_out(split: _Split, encoded: EncodedImages) -> list[tuple[str, str]]:
    """``(key, problem)`` of the split's items without features: missing when the source was opened (its
    ``skipped``), or unreadable when encoded."""
    return [*split.source.skipped, *((error.item, error.message) for error in encoded.errors)]


def _item_counts(splits: Splits) -> dict[str, Any]:
    """The result JSON's ``items`` (per split: ``evaluated``, ``skipped``) and ``skipped_items`` (``split``,
    ``key``, ``reason``; at most `LISTED_ITEMS` per split)."""
    counts, listed = {}, []
    for name, (split, encoded) in splits.items():
        left_out = _left_out(split, encoded)
        counts[name] = {"evaluated": len(encoded.indices), "skipped": len(left_out)}
        listed += [{"split": name, "key": key, "reason": reason} for key, reason in left_out[:LISTED_ITEMS]]
    return {"items": counts, "skipped_items": listed}


def _payload(
    suite: Suite, prep: _Prepared, run: _ModelRun, record: TaskRecord, extra: dict[str, Any]
) -> dict[str, Any]:
    spec = run.loaded.spec
    return {
        "dataset": prep.entry.name,
        "model": run.name,
        "pretrained": spec.source,
        "task": record.task,
        "metrics": record.metrics,
        "language": "en",
        "ci": record.ci,
        "ci_level": CI_LEVEL,
        "n_bootstrap": run.options.n_bootstrap,
        "suite": suite.name,
        "modality": prep.entry.modality,
        "n_items": record.n_items,
        "model_slug": model_slug(run.name),
        "model_spec": {"name": spec.name, "architecture": spec.architecture, "format": spec.format},
        "precision": precision_name(run.loaded.dtype),
        "device": str(run.loaded.device),
        "options": {
            "limit": run.options.limit,
            "k_shots": ["all" if k is None else k for k in run.options.k_shots],
            "seeds": list(run.options.seeds),
            "grouped": run.options.grouped,
            "exclude_seen": run.options.exclude_seen,
        },
        "openmedclip_version": __version__,
        **extra,
        **record.extra,
        "details": record.details,
        "plots": record.plots,
    }


def _evaluate_dataset(suite: Suite, prep: _Prepared, run: _ModelRun, out: Path, summary: RunSummary) -> None:
    test_used: dict[str, tuple[str, float]] = {}
    all_encoded = run.images(prep.test, test_used, "test_images")
    summary.note_skipped_items(prep.entry.name, "test", prep.test, all_encoded)
    check = run.contamination(prep.test, all_encoded)
    encoded = _unseen(all_encoded, check)
    if not encoded.indices:
        error = f"dataset '{prep.entry.name}': " + (
            f"all {len(all_encoded.indices)} readable test items were seen in training (none left to evaluate)"
            if all_encoded.indices
            else f"none of its {len(prep.test.rows)} images could be read"
        )
        for task in prep.tasks:
            summary.failed.append({"model": run.name, "dataset": prep.entry.name, "task": task, "error": error})
        return
    for task in prep.tasks:
        used = dict(test_used)
        splits: Splits = {"test": (prep.test, encoded)}
        start = time.perf_counter()
        try:
            record = _run_task(task, prep, run, encoded, used, splits)
            if task == "zeroshot":
                record = _with_primary_metric(record, prep.entry)
        except OpenMedClipError as err:
            summary.failed.append({"model": run.name, "dataset": prep.entry.name, "task": task, "error": str(err)})
            continue
        finally:
            if "train" in splits:
                summary.note_skipped_items(prep.entry.name, "train", *splits["train"])
        task_encode_s = sum(seconds for name, (_, seconds) in used.items() if name not in test_used)
        timings = {
            "open_s": prep.open_s,
            "encode_s": sum(seconds for _, seconds in used.values()),
            "task_s": time.perf_counter() - start - task_encode_s,
        }
        extra = {
            "timings": {name: round(seconds, 3) for name, seconds in timings.items()},
            "cache": {name: status for name, (status, _) in used.items()},
            **_item_counts(splits),
            "resampling": _resampling(prep.test, encoded),
            "contamination": check.to_dict(),
        }
        if prep.deduplicated is not None:
            extra["deduplicated"] = prep.deduplicated
        path = out / model_slug(run.name) / prep.entry.name / f"{record.task}.json"
        write_json(path, _payload(suite, prep, run, record, extra))
        summary.written.append(path)


def run_suite(
    suite: Suite,
    models: Sequence[str],
    out: Path,
    data_root: Path,
    options: EvalOptions | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> RunSummary:
    """Evaluate every model on the suite's datasets; see the module docstring for what is written."""
    options = options or EvalOptions()
    unknown = [t for t in options.tasks if t not in task_names()]
    if unknown:
        raise InvalidInputError(f"unknown task(s) {unknown} (known: {list(task_names())})")
    if not models:
        raise InvalidInputError("no model given: pass --model at least once")
    summary = RunSummary()
    prepared = []
    for entry in suite.select(list(options.datasets)):
        try:
            prep = prepare(entry, data_root, options, summary, suite.origin)
        except OpenMedClipError as err:
            summary.failed.append({"model": "*", "dataset": entry.name, "task": "*", "error": str(err)})
            continue
        if prep is not None:
            prepared.append(prep)
            try:
                view = deduplicated(prep, data_root, options, summary)
            except OpenMedClipError as err:
                summary.failed.append({"model": "*", "dataset": f"{entry.name}-dedup", "task": "*", "error": str(err)})
                continue
            if view is not None:
                prepared.append(view)
    for item in summary.skipped:
        log(f"skipped {item['dataset']}{' ' + item['task'] if 'task' in item else ''}: {item['reason']}")
    cache = FeatureCache((options.cache_dir or out / ".cache") if options.use_cache else None)
    for name in models:
        if prepared:
            run = _ModelRun(name, load_model(name, device=options.device, precision=options.precision), cache, options)
            log(f"{model_slug(name)}: {precision_name(run.loaded.dtype)} on {run.loaded.device}")
        for prep in prepared:
            log(f"{model_slug(name)} · {prep.entry.name}: {', '.join(prep.tasks)} on {len(prep.test.rows)} items")
            _evaluate_dataset(suite, prep, run, out, summary)
        _write_summary(suite, name, out, data_root, summary, options)
    return summary


def _write_summary(
    suite: Suite, name: str, out: Path, data_root: Path, summary: RunSummary, options: EvalOptions
) -> None:
    slug = model_slug(name)
    written = [str(p.relative_to(out)) for p in summary.written if p.parts[len(out.parts)] == slug]
    failed = [f for f in summary.failed if f["model"] in (name, "*")]
    payload: dict[str, Any] = {
        "suite": suite.name,
        "model": name,
        "model_slug": slug,
        "data_root": str(data_root),
        "results": written,
        "skipped": summary.skipped,
        "failed": failed,
    }
    protocol = protocol_declaration(suite)
    if protocol is not None and "zeroshot" in options.tasks:
        payload["protocol"] = protocol
    write_json(out / slug / "summary.json", payload)
