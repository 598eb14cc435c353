"""Metrics with bootstrap confidence intervals, checked against scikit-learn; used by every task.

- :func:`multiclass_metrics` -- single-label classification (zero-shot, linear probe).
- :func:`multilabel_metrics` -- multi-label findings with CheXzero-style validation thresholds.
- Plot/report helpers: :func:`roc_curve_points`, :func:`confusion_matrix`,
  :func:`expected_calibration_error`, :func:`select_thresholds`.

Every result is a dataclass with ``to_dict()`` (JSON-ready; NaN becomes ``None``). Undefined
metrics (e.g. AUROC with a class missing) are NaN with a reason in ``notes``, never an exception;
malformed inputs raise :class:`openmedclip.errors.InvalidInputError`. Every metric function takes
``groups`` (one key per item: its case, patient or study) to resample whole groups for its intervals.
Names are imported on first use.
"""

from __future__ import annotations

from openmedclip.lazy import lazy_exports

_EXPORTS = {
    "bootstrap_ci": "openmedclip.metrics.bootstrap",
    "Groups": "openmedclip.metrics.bootstrap",
    "item_groups": "openmedclip.metrics.bootstrap",
    "expected_calibration_error": "openmedclip.metrics.calibration",
    "MulticlassResult": "openmedclip.metrics.multiclass",
    "confusion_matrix": "openmedclip.metrics.multiclass",
    "multiclass_metrics": "openmedclip.metrics.multiclass",
    "LabelResult": "openmedclip.metrics.multilabel",
    "MultilabelResult": "openmedclip.metrics.multilabel",
    "multilabel_metrics": "openmedclip.metrics.multilabel",
    "RocCurve": "openmedclip.metrics.ranking",
    "roc_curve_points": "openmedclip.metrics.ranking",
    "Estimate": "openmedclip.metrics.results",
    "f1_mcc": "openmedclip.metrics.thresholds",
    "select_thresholds": "openmedclip.metrics.thresholds",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
