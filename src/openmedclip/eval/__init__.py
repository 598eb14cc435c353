"""Evaluation harness above the tasks: suites (YAML), the runner, result records, reports and plots.

Metrics live in :mod:`openmedclip.metrics`; the tasks in :mod:`openmedclip.tasks`.
"""
