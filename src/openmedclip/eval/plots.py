"""PNG plots from result JSONs: ROC curves (zero-shot), confusion matrices, k-shot curves (mean ± sd vs k); and
similarity heat maps over an image (:func:`save_heatmap`).

Figures are drawn with matplotlib's object API on the Agg canvas (no display, no global backend change)::

    plots/<model>/<dataset>_<task>_roc.png
    plots/<model>/<dataset>_<task>_confusion.png
    plots/kshot/<dataset>.png                   one line per model
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure

from openmedclip.atomic import write_atomic
from openmedclip.progress import progress_bar
from openmedclip.tasks.registry import by_benchmark_name

if TYPE_CHECKING:
    from openmedclip.tasks.heatmap import SimilarityMap


def _short_task(benchmark_name: str) -> str:
    """A result's task as named in suites (``zeroshot``), for titles and file names."""
    spec = by_benchmark_name().get(benchmark_name)
    return spec.name if spec is not None else _safe(benchmark_name)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def _save(fig: Figure, path: Path) -> Path:
    write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=120, bbox_inches="tight"))
    return path


def _label(result: dict[str, Any]) -> str:
    return str(result.get("model_slug") or result["model"])


def roc_figure(result: dict[str, Any]) -> Figure:
    """One-vs-rest ROC curve per class (the positive class only for a binary task)."""
    fig = Figure(figsize=(4.5, 4.2))
    ax = fig.add_subplot()
    for name, curve in result["plots"]["roc"].items():
        ax.plot(curve["fpr"], curve["tpr"], label=f"{name} (AUROC {curve['auroc']:.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01))
    ax.set_title(f"{result['dataset']} · {_label(result)}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    return fig


def confusion_figure(result: dict[str, Any]) -> Figure:
    """Row-normalised confusion matrix (true class rows) with the counts written in the cells."""
    counts = np.asarray(result["plots"]["confusion_matrix"], dtype=float)
    names = result["plots"]["class_names"]
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = 2.5 + 0.45 * len(names)
    fig = Figure(figsize=(size, size))
    ax = fig.add_subplot()
    image = ax.imshow(shares, vmin=0, vmax=1, cmap="Blues")
    for (i, j), count in np.ndenumerate(counts):
        colour = "white" if shares[i, j] > 0.5 else "black"
        ax.text(j, i, f"{int(count)}", ha="center", va="center", fontsize=7, color=colour)
    ticks = range(len(names))
    ax.set_xticks(ticks, names, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(ticks, names, fontsize=7)
    ax.set(xlabel="predicted", ylabel="true")
    task = _short_task(result["task"])
    ax.set_title(f"{result['dataset']} · {task} · {_label(result)}", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return fig


def kshot_figure(dataset: str, results: Sequence[dict[str, Any]]) -> Figure:
    """Probe accuracy (mean ± sd over seeds) against shots per class, one line per model."""
    fig = Figure(figsize=(5, 3.6))
    ax = fig.add_subplot()
    shots: list[str] = []
    for result in results:
        points = result["plots"]["k_curve"]["points"]
        shots = list(points)
        mean = np.array([p["mean"] for p in points.values()], dtype=float)
        sd = np.nan_to_num(np.array([p["sd"] for p in points.values()], dtype=float))
        x = np.arange(len(shots))
        ax.plot(x, mean, marker="o", label=_label(result))
        ax.fill_between(x, mean - sd, mean + sd, alpha=0.2)
    ax.set_xticks(range(len(shots)), shots)
    ax.set(xlabel="shots per class", ylabel="test accuracy", ylim=(0, 1))
    ax.set_title(f"{dataset} · linear probe", fontsize=9)
    ax.legend(fontsize=7)
    return fig


def write_plots(results: Sequence[dict[str, Any]], folder: Path, *, progress: bool = False) -> list[Path]:
    """Every plot kind each result's task declares (see the task registry) that the result has data for;
    returns the PNG paths."""
    specs = by_benchmark_name()
    jobs: list[tuple[Path, Callable[..., Figure], tuple[Any, ...]]] = []
    probes: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        kinds = specs[r["task"]].plots if r["task"] in specs else ()
        stem = folder / _safe(_label(r)) / f"{_safe(r['dataset'])}_{_short_task(r['task'])}"
        plots = r.get("plots") or {}
        if "roc" in kinds and plots.get("roc"):
            jobs.append((Path(f"{stem}_roc.png"), roc_figure, (r,)))
        if "confusion" in kinds and plots.get("confusion_matrix"):
            jobs.append((Path(f"{stem}_confusion.png"), confusion_figure, (r,)))
        if "kshot" in kinds and plots.get("k_curve"):
            probes.setdefault(r["dataset"], []).append(r)
    for dataset, group in probes.items():
        jobs.append((folder / "kshot" / f"{_safe(dataset)}.png", kshot_figure, (dataset, group)))
    written = []
    with progress_bar("Plotting", total=len(jobs), enabled=progress) as advance:
        for path, draw, args in jobs:
            written.append(_save(draw(*args), path))
            advance(1)
    return written


def heatmap_figure(similarity: SimilarityMap, *, alpha: float = 0.45) -> Figure:
    """The image as the model saw it (8-bit, windowed), the similarity map over it and a colour bar."""
    from openmedclip.io import to_model_picture
    from openmedclip.io.convert import IntensityScalingWarning

    with warnings.catch_warnings():  # the model's preprocess has said so already
        warnings.simplefilter("ignore", IntensityScalingWarning)
        picture = np.asarray(to_model_picture(similarity.image))
    rows, columns = similarity.values.shape
    fig = Figure(figsize=(5.2, 5.2 * rows / max(columns, 1) + 0.4))
    ax = fig.add_subplot()
    ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None)
    shown = ax.imshow(np.ma.masked_invalid(similarity.values), cmap="jet", alpha=alpha)
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.03, label="cosine similarity")
    peak_row, peak_column = similarity.peak()
    ax.plot([peak_column], [peak_row], marker="+", color="white", markersize=12)
    ax.set_title(similarity.text, fontsize=9)
    ax.set_axis_off()
    return fig


def save_heatmap(similarity: SimilarityMap, path: Path, *, alpha: float = 0.45) -> Path:
    """Write :func:`heatmap_figure` as a PNG (atomically); return the path."""
    return _save(heatmap_figure(similarity, alpha=alpha), path)
