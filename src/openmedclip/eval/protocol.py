"""Protocol summaries: the means a suite's ``summary`` declares over its datasets' primary metrics, in percent.

The runner writes the declaration into each model's ``summary.json`` as ``protocol``: the suite's ``summary``
(``groups``, ``means``) and every zero-shot dataset of the suite with its primary metric and group, whichever
datasets the run selected. The report takes each dataset's primary metric from its zero-shot result, times 100,
and averages those percentages plainly: per group, over the datasets, and over the group means. Datasets of the
suite without a result, or whose metric is undefined, are left out of the means and listed beside them, so that a
partial run is never read as the full mean.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from openmedclip.eval.suite import Suite

ZEROSHOT_RESULT = "zeroshot_classification"
"""The result files' task name of the zero-shot task, whose primary metrics the summary averages."""


@dataclass(frozen=True)
class DatasetScore:
    """One dataset of a protocol: its group, primary metric and value in percent (None: no value)."""

    dataset: str
    group: str | None
    metric: str
    percent: float | None
    status: str
    """``ok``, ``missing`` (no result in the folder) or ``undefined`` (the result has no value for the metric)."""


@dataclass(frozen=True)
class ProtocolMean:
    """A plain mean of percentages: its label, value (None when nothing was there to average) and coverage."""

    label: str
    percent: float | None
    n_datasets: int
    of_datasets: int
    n_groups: int | None = None
    """For a mean over group means: the groups it averaged, of ``of_groups``."""
    of_groups: int | None = None


@dataclass(frozen=True)
class ProtocolSummary:
    """The protocol summary of one (suite, model)."""

    suite: str
    model: str
    groups: str | None
    scores: list[DatasetScore]
    group_means: list[ProtocolMean]
    means: list[ProtocolMean]
    limits: list[int]
    """The ``--limit`` of the results averaged (empty when every result used whole test sets)."""

    def unscored(self, status: str) -> list[str]:
        """The datasets with ``status`` (``missing`` or ``undefined``)."""
        return [s.dataset for s in self.scores if s.status == status]


def protocol_declaration(suite: Suite) -> dict[str, Any] | None:
    """``summary.json``'s ``protocol`` for a suite with a ``summary`` (else None): ``groups``, ``means`` and
    ``datasets``, each zero-shot dataset's ``{"metric", "group"}`` in suite order."""
    if suite.summary is None:
        return None
    grouped = suite.summary["groups"] is not None
    datasets = {
        name: {"metric": entry.metric, "group": entry.modality if grouped else None}
        for name, entry in suite.datasets.items()
        if "zeroshot" in entry.tasks
    }
    return {**suite.summary, "datasets": datasets}


def protocol_summaries(
    results: Sequence[dict[str, Any]], summaries: Sequence[dict[str, Any]]
) -> list[ProtocolSummary]:
    """One summary per model run whose ``summary.json`` declares a protocol, sorted by suite and model."""
    out = []
    for run in summaries:
        declared = run.get("protocol")
        if not declared:
            continue
        found = {
            r["dataset"]: r
            for r in results
            if r["task"] == ZEROSHOT_RESULT and r.get("suite") == run["suite"] and r["model"] == run["model"]
        }
        out.append(_summary(run["suite"], str(run.get("model_slug") or run["model"]), declared, found))
    return sorted(out, key=lambda s: (s.suite, s.model))


def _score(dataset: str, declared: dict[str, Any], result: dict[str, Any] | None) -> DatasetScore:
    metric, group = declared["metric"], declared.get("group")
    if result is None:
        return DatasetScore(dataset, group, metric, None, "missing")
    value = result["metrics"].get(metric)
    if value is None:
        return DatasetScore(dataset, group, metric, None, "undefined")
    return DatasetScore(dataset, group, metric, 100 * float(value), "ok")


def _mean(label: str, scores: Sequence[DatasetScore]) -> ProtocolMean:
    values = [s.percent for s in scores if s.percent is not None]
    return ProtocolMean(label, statistics.fmean(values) if values else None, len(values), len(scores))


def _summary(suite: str, model: str, declared: dict[str, Any], found: dict[str, dict[str, Any]]) -> ProtocolSummary:
    scores = [_score(name, entry, found.get(name)) for name, entry in declared["datasets"].items()]
    by_group: dict[str, list[DatasetScore]] = {}
    for score in scores:
        if score.group is not None:
            by_group.setdefault(score.group, []).append(score)
    group_means = [_mean(group, members) for group, members in by_group.items()]
    means = []
    for kind in declared["means"]:
        if kind == "datasets":
            means.append(_mean("over datasets", scores))
        else:
            present = [m.percent for m in group_means if m.percent is not None]
            means.append(
                ProtocolMean(
                    f"over {declared['groups']} means",
                    statistics.fmean(present) if present else None,
                    sum(m.n_datasets for m in group_means),
                    len(scores),
                    len(present),
                    len(group_means),
                )
            )
    limits = sorted({int(r["options"]["limit"]) for r in found.values() if (r.get("options") or {}).get("limit")})
    return ProtocolSummary(suite, model, declared.get("groups"), scores, group_means, means, limits)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _coverage(mean: ProtocolMean) -> str:
    text = f"{mean.n_datasets} of {mean.of_datasets}"
    if mean.of_groups is not None:
        text += f" ({mean.n_groups} of {mean.of_groups} groups)"
    return text


def protocol_markdown(summaries: Sequence[ProtocolSummary]) -> list[str]:
    """The report's "Protocol summary" section (no lines when no run declares a protocol)."""
    if not summaries:
        return []
    lines = ["", "## Protocol summary", "",
             "Each dataset's primary metric in percent, and the suite's means: plain means of those percentages over "
             "the datasets with a value."]
    for summary in summaries:
        grouped = summary.groups is not None
        lines += ["", f"### {summary.suite} · {summary.model}", ""]
        lines.append(f"| dataset |{f' {summary.groups} |' if grouped else ''} metric | % |")
        lines.append("|---" * (4 if grouped else 3) + "|")
        for s in summary.scores:
            value = _percent(s.percent) if s.status == "ok" else s.status
            lines.append(f"| {s.dataset} |{f' {s.group} |' if grouped else ''} {s.metric} | {value} |")
        lines += ["", "| mean | datasets | % |", "|---|---|---|"]
        means = summary.group_means + summary.means
        lines += [f"| {m.label} | {_coverage(m)} | {_percent(m.percent)} |" for m in means]
        lines += _caveats(summary)
    return lines


def _caveats(summary: ProtocolSummary) -> list[str]:
    """Why the means may not be the protocol's full means: missing datasets, undefined values, ``--limit``."""
    lines = []
    missing, undefined = summary.unscored("missing"), summary.unscored("undefined")
    total = len(summary.scores)
    if missing:
        lines.append(f"**Partial run**: {len(missing)} of {total} datasets have no result here and are not in the "
                     f"means: {', '.join(missing)}.")
    if undefined:
        lines.append(f"Undefined primary metric (not in the means): {', '.join(undefined)}.")
    if summary.limits:
        shown = ", ".join(map(str, summary.limits))
        lines.append(f"Run with --limit {shown}: the values are on a subset of each test set.")
    return [part for line in lines for part in ("", line)]
