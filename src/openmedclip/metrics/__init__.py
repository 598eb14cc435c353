"""Metrics with bootstrap confidence intervals, checked against scikit-learn; used by every task.

- :func:`multiclass_metrics` -- single-label classification (zero-shot, linear probe).
- :func:`multilabel_metrics` -- multi-label findings with CheXzero-style validation thresholds.
- Plot/report helpers: :func:`roc_curve_points`, :func:`confusion_matrix`,
  :func:`expected_calibration_error`, :func:`select_thresholds`.

Every result is a dataclass with ``to_dict()`` (JSON-ready; NaN becomes ``None``). Undefined
metrics (e.g. AUROC with a class missing) are NaN with a reason in ``notes``, never an exception;
malformed inputs raise :class:`openmedclip.errors.InvalidInputError`.
"""

from openmedclip.metrics.bootstrap import bootstrap_ci
from openmedclip.metrics.calibration import expected_calibration_error
from openmedclip.metrics.multiclass import (
    MulticlassResult,
    confusion_matrix,
    multiclass_metrics,
)
from openmedclip.metrics.multilabel import (
    LabelResult,
    MultilabelResult,
    multilabel_metrics,
)
from openmedclip.metrics.ranking import RocCurve, roc_curve_points
from openmedclip.metrics.results import Estimate
from openmedclip.metrics.thresholds import f1_mcc, select_thresholds

__all__ = [
    "Estimate",
    "LabelResult",
    "MulticlassResult",
    "MultilabelResult",
    "RocCurve",
    "bootstrap_ci",
    "confusion_matrix",
    "expected_calibration_error",
    "f1_mcc",
    "multiclass_metrics",
    "multilabel_metrics",
    "roc_curve_points",
    "select_thresholds",
]
