"""Few-shot linear probes on frozen features, without leaks between training, validation and test data.

For every shot count ``k`` and seed:

1. **Subset.** Each class's training rows are put in a seeded random order; the first ``k`` form the k-shot subset
   (``k=None``: all rows). One order per seed serves every ``k``, so subsets are nested (the 2-shot rows are part
   of the 4-shot rows). A class with fewer than ``k`` rows contributes all it has, and the result notes it.
2. **Choose C on the subset only.** Per class, ``round(val_fraction * n)`` of its subset rows (at least 1, at most
   ``n - 1``) are held out; a probe is fitted on the rest for every C of ``c_grid`` and scored on the held-out rows:
   highest balanced accuracy wins, ties go to the lower log-loss, then to the smaller C. When no row can be held out
   (``k=1``: holding out a class's only example would drop the class from training) there is nothing to validate
   on, and ``default_c`` (1.0, scikit-learn's default) is used. With one example per class and strong
   regularisation the probe is close to a nearest-class-prototype classifier, whose predictions hardly depend on C.
3. **Refit and test.** The probe is refitted on the whole k-shot subset with the chosen C and scored on the test
   features with :func:`openmedclip.metrics.multiclass_metrics`.

Test rows are used only in step 3 and rows outside the k-shot subset never at all (CLIP_benchmark issue #125:
validation data leaked into few-shot training). The probe is scikit-learn's ``LogisticRegression`` (lbfgs,
multinomial for more than two classes, L2 penalty, unpenalised intercept). Features are used as given, not
standardised: they are L2-normalised already, and per-dimension statistics from a few shots per class would be noisy
(and standardising with statistics of the full training set would itself leak rows from outside the subset).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from ..errors import InvalidInputError
from ..metrics import MulticlassResult, multiclass_metrics
from ..metrics.defaults import N_BOOTSTRAP
from ..metrics.multiclass import HEADLINE
from ..metrics.results import json_float
from .records import multiclass_fields
from .registry import TaskInputs, TaskRecord, TaskSpec, register_task

DEFAULT_C_GRID = tuple(float(c) for c in np.logspace(-3, 3, 7))
"""C values searched on the validation rows: 1e-3 ... 1e3."""


def _k_label(k: int | None) -> str:
    return "all" if k is None else str(k)


@dataclass(frozen=True)
class ProbeRun:
    """One probe: a k-shot subset drawn with one seed, the chosen C, and its test metrics."""

    k: int | None
    seed: int
    indices: np.ndarray
    """Rows of the training features in the k-shot subset (sorted); nothing else was fitted or validated on."""
    class_counts: list[int]
    """Subset rows per class."""
    n_val: int
    """Subset rows held out to choose C (0 when ``default_c`` was used)."""
    c: float
    c_selected_by: str
    """``"validation"`` or ``"default"``."""
    metrics: MulticlassResult
    probabilities: np.ndarray
    """``[N_test, C]`` test-set class probabilities of the refitted probe."""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": _k_label(self.k),
            "seed": self.seed,
            "n_train": len(self.indices),
            "class_counts": list(self.class_counts),
            "n_val": self.n_val,
            "c": self.c,
            "c_selected_by": self.c_selected_by,
            "metrics": self.metrics.to_dict(),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class ProbeResult:
    """Every run of a few-shot probe sweep, with mean and sd over seeds per shot count."""

    class_names: list[str]
    k_shots: list[int | None]
    seeds: list[int]
    c_grid: list[float]
    val_fraction: float
    default_c: float
    runs: list[ProbeRun]
    notes: list[str] = field(default_factory=list)

    def runs_for(self, k: int | None) -> list[ProbeRun]:
        """The runs (one per seed) with ``k`` shots per class."""
        return [run for run in self.runs if run.k == k]

    def summary(self, k: int | None) -> dict[str, tuple[float, float]]:
        """Headline metric -> (mean, sample sd) over seeds; sd is NaN with a single seed."""
        out = {}
        for name in HEADLINE:
            values = np.array([getattr(run.metrics, name).value for run in self.runs_for(k)])
            sd = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
            out[name] = (float(np.mean(values)), sd)
        return out

    def curve(self, metric: str = "accuracy") -> dict[int | None, tuple[float, float]]:
        """k (``None`` = all) -> (mean, sd) of one headline metric, in the order of ``k_shots``, for plots."""
        if metric not in HEADLINE:
            raise InvalidInputError(f"metric: expected one of {list(HEADLINE)}, got {metric!r}")
        return {k: self.summary(k)[metric] for k in self.k_shots}

    def to_dict(self) -> dict[str, Any]:
        shots = {}
        for k in self.k_shots:
            summary = self.summary(k)
            shots[_k_label(k)] = {
                "mean": {name: json_float(mean) for name, (mean, _) in summary.items()},
                "sd": {name: json_float(sd) for name, (_, sd) in summary.items()},
                "runs": [run.to_dict() for run in self.runs_for(k)],
            }
        return {
            "task": "linear_probe",
            "class_names": list(self.class_names),
            "seeds": list(self.seeds),
            "c_grid": list(self.c_grid),
            "val_fraction": self.val_fraction,
            "default_c": self.default_c,
            "shots": shots,
            "notes": list(self.notes),
        }


def _features(name: str, x: Any) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise InvalidInputError(f"{name}: not numeric ({error})") from None
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidInputError(f"{name}: expected a non-empty [N, D] array, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise InvalidInputError(f"{name}: contains NaN or infinite values")
    return arr


def _targets(name: str, y: Any, n_rows: int) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1 or len(arr) != n_rows:
        raise InvalidInputError(f"{name}: expected {n_rows} class indices (one per feature row), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0:
        raise InvalidInputError(f"{name}: expected non-negative integer class indices")
    return arr.astype(np.int64)


def _check_options(
    k_shots: Sequence[int | None], seeds: Sequence[int], c_grid: Sequence[float], val_fraction: float, max_iter: int
) -> None:
    if not k_shots or any(k is not None and (not isinstance(k, (int, np.integer)) or k < 1) for k in k_shots):
        raise InvalidInputError(f"k_shots: expected positive integers or None (all rows), got {list(k_shots)}")
    if len(set(k_shots)) != len(k_shots):
        raise InvalidInputError(f"k_shots: values must be unique, got {list(k_shots)}")
    if not seeds or len(set(seeds)) != len(seeds) or not all(isinstance(s, (int, np.integer)) for s in seeds):
        raise InvalidInputError(f"seeds: expected unique integers, got {list(seeds)}")
    if len(c_grid) == 0 or not all(np.isfinite(c) and c > 0 for c in c_grid):
        raise InvalidInputError(f"c_grid: expected positive finite values, got {list(c_grid)}")
    if not 0 < val_fraction < 1:
        raise InvalidInputError(f"val_fraction: expected a value in (0, 1), got {val_fraction!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise InvalidInputError(f"max_iter: expected a positive integer, got {max_iter!r}")


def _fit(
    x: np.ndarray, y: np.ndarray, c: float, max_iter: int, probe: LogisticRegression | None = None
) -> tuple[LogisticRegression, bool]:
    """A probe fitted on ``(x, y)`` and whether lbfgs converged within ``max_iter`` iterations.

    Given a ``probe`` made with ``warm_start=True``, it is refitted with the new C starting from its current
    weights (the loss is convex: same optimum, far fewer iterations along an increasing C grid)."""
    probe = probe if probe is not None else LogisticRegression(max_iter=max_iter)
    probe.set_params(C=c)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe.fit(x, y)
    return probe, int(np.max(probe.n_iter_)) < max_iter


def _split(orders: list[np.ndarray], k: int | None, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, validation rows) of the k-shot subset; each class holds out the last of its chosen rows."""
    fit, val = [], []
    for order in orders:
        chosen = order if k is None else order[:k]
        n_val = min(max(int(val_fraction * len(chosen) + 0.5), 1), len(chosen) - 1)
        fit.append(chosen[: len(chosen) - n_val])
        val.append(chosen[len(chosen) - n_val :])
    return np.concatenate(fit), np.concatenate(val)


def _validation_key(y: np.ndarray, probs: np.ndarray) -> tuple[float, float]:
    """(-balanced accuracy over the classes present, log-loss): lower is better."""
    pred = probs.argmax(axis=1)
    balanced = np.mean([np.mean(pred[y == c] == c) for c in np.unique(y)])
    log_loss = -np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-15, None)))
    return -float(balanced), float(log_loss)


def _choose_c(
    x: np.ndarray,
    y: np.ndarray,
    fit_rows: np.ndarray,
    val_rows: np.ndarray,
    c_grid: Sequence[float],
    default_c: float,
    max_iter: int,
) -> tuple[float, list[str]]:
    """The C of ``c_grid`` scoring best on ``val_rows`` when fitted on ``fit_rows`` (``default_c`` without
    validation rows), and notes on fits that did not converge."""
    if not len(val_rows):
        return default_c, []
    keys = []
    not_converged = 0
    warm = LogisticRegression(max_iter=max_iter, warm_start=True)
    for c in sorted(c_grid):
        probe, converged = _fit(x[fit_rows], y[fit_rows], c, max_iter, warm)
        not_converged += not converged
        keys.append((*_validation_key(y[val_rows], probe.predict_proba(x[val_rows])), c))
    notes = (
        [f"{not_converged} of {len(c_grid)} validation fits stopped at max_iter={max_iter}"] if not_converged else []
    )
    return min(keys)[2], notes


def linear_probe(
    train_features: Any,
    train_targets: Any,
    test_features: Any,
    test_targets: Any,
    *,
    class_names: Sequence[str] | None = None,
    k_shots: Sequence[int | None] = (1, 2, 4, 8, 16, None),
    seeds: Sequence[int] = (0, 1, 2),
    val_fraction: float = 0.2,
    c_grid: Sequence[float] = DEFAULT_C_GRID,
    default_c: float = 1.0,
    max_iter: int = 1000,
    n_bootstrap: int = N_BOOTSTRAP,
    test_groups: Any = None,
) -> ProbeResult:
    """Few-shot logistic-regression probes on frozen features; see the module docstring for the procedure.

    ``*_features`` are ``[N, D]`` arrays or tensors (L2-normalised image features), ``*_targets`` integer class
    indices ``[N]``. Every class must have training rows. ``k_shots`` lists shots per class (``None`` = all
    rows); each (k, seed) gives one :class:`ProbeRun`, whose test metrics carry ``n_bootstrap`` bootstrap
    intervals drawn with the run's seed, over whole groups when ``test_groups`` names each test row's group.
    """
    x = _features("train_features", train_features)
    x_test = _features("test_features", test_features)
    if x_test.shape[1] != x.shape[1]:
        raise InvalidInputError(f"test_features: {x_test.shape[1]} dimensions, train_features have {x.shape[1]}")
    y = _targets("train_targets", train_targets, len(x))
    y_test = _targets("test_targets", test_targets, len(x_test))
    _check_options(k_shots, seeds, [*c_grid, default_c], val_fraction, max_iter)
    n_classes = len(class_names) if class_names is not None else int(max(y.max(), y_test.max())) + 1
    if max(y.max(), y_test.max()) >= n_classes:
        raise InvalidInputError(f"targets: class indices must lie in [0, {n_classes - 1}] for {n_classes} class names")
    counts = np.bincount(y, minlength=n_classes)
    names = list(class_names) if class_names is not None else [str(c) for c in range(n_classes)]
    if n_classes < 2 or (counts == 0).any():
        missing = [names[c] for c in np.flatnonzero(counts == 0)]
        raise InvalidInputError(
            f"train_targets: need rows of at least 2 classes and of every class; none for {missing}"
        )

    notes = []
    for k in k_shots:
        short = [names[c] for c in np.flatnonzero(counts < k)] if k is not None else []
        if short:
            notes.append(f"k={k}: {short} have fewer than {k} training rows; all of their rows are used")
    rows_of = [np.flatnonzero(y == c) for c in range(n_classes)]
    orders = {}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        orders[seed] = [rng.permutation(rows) for rows in rows_of]
    runs = []
    for k in k_shots:
        for seed in seeds:
            fit_rows, val_rows = _split(orders[seed], k, val_fraction)
            subset = np.sort(np.concatenate([fit_rows, val_rows]))
            c, run_notes = _choose_c(x, y, fit_rows, val_rows, c_grid, default_c, max_iter)
            probe, converged = _fit(x[subset], y[subset], c, max_iter)
            if not converged:
                run_notes.append(f"the refit stopped at max_iter={max_iter} before converging")
            probs = probe.predict_proba(x_test)
            runs.append(
                ProbeRun(
                    k=k,
                    seed=int(seed),
                    indices=subset,
                    class_counts=np.bincount(y[subset], minlength=n_classes).tolist(),
                    n_val=len(val_rows),
                    c=float(c),
                    c_selected_by="validation" if len(val_rows) else "default",
                    metrics=multiclass_metrics(
                        y_test, probs, names, n_bootstrap=n_bootstrap, seed=int(seed), groups=test_groups
                    ),
                    probabilities=probs.astype(np.float32),
                    notes=run_notes,
                )
            )
    return ProbeResult(
        class_names=names,
        k_shots=list(k_shots),
        seeds=[int(s) for s in seeds],
        c_grid=[float(c) for c in c_grid],
        val_fraction=float(val_fraction),
        default_c=float(default_c),
        runs=runs,
        notes=notes,
    )


def probe_record(inputs: TaskInputs) -> TaskRecord:
    """Few-shot linear probes; the headline metrics are those of the probe on all training rows (or the largest k)
    with the first seed, the per-k mean and sd over seeds are in ``plots['k_curve']`` and ``details``."""
    train_features, train_targets = inputs.train()
    test_features, test_targets, class_names = inputs.features, inputs.targets, inputs.class_names
    k_shots, seeds, n_bootstrap = inputs.k_shots, inputs.seeds, inputs.n_bootstrap
    result = linear_probe(
        train_features.numpy(),
        train_targets,
        test_features.numpy(),
        test_targets,
        class_names=class_names,
        k_shots=k_shots,
        seeds=seeds,
        n_bootstrap=n_bootstrap,
        test_groups=inputs.groups,
    )
    top_k = None if None in k_shots else max(k for k in k_shots if k is not None)
    headline = result.runs_for(top_k)[0]
    metrics, ci = multiclass_fields(headline.metrics, prefix="lp_")
    curve = {
        ("all" if k is None else str(k)): {"mean": json_float(mean), "sd": json_float(sd)}
        for k, (mean, sd) in result.curve("accuracy").items()
    }
    plots = {
        "class_names": class_names,
        "confusion_matrix": headline.metrics.confusion_matrix.astype(int).tolist(),
        "k_curve": {"metric": "accuracy", "points": curve, "n_train": len(train_targets)},
    }
    extra = {"headline_run": {"k": "all" if top_k is None else top_k, "seed": headline.seed}}
    return TaskRecord(PROBE.benchmark_name, len(test_targets), metrics, ci, result.to_dict(), plots, extra)


PROBE = register_task(
    TaskSpec(
        name="probe",
        benchmark_name="linear_probe",
        title="Linear probe (all training rows, first seed)",
        needs=frozenset({"labels", "multiclass", "train_split"}),
        build_record=probe_record,
        headline=("lp_acc1",),
        plots=("confusion", "kshot"),
    )
)
