"""Evaluation: metrics with bootstrap confidence intervals (see :mod:`openmedclip.eval.metrics`)."""

from openmedclip.eval.bootstrap import bootstrap_ci
from openmedclip.eval.metrics import multiclass_metrics, multilabel_metrics

__all__ = ["bootstrap_ci", "multiclass_metrics", "multilabel_metrics"]
