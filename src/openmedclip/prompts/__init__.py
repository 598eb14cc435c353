"""Prompts: templates and per-modality sentence banks."""

from .banks import (
    SentenceBank,
    bank_for_labels,
    find_class,
    list_banks,
    load_bank,
    validate_bank,
)
from .templates import (
    DEFAULT_TEMPLATE_SET,
    TEMPLATE_SETS,
    fill_templates,
    resolve_templates,
)

__all__ = [
    "DEFAULT_TEMPLATE_SET",
    "TEMPLATE_SETS",
    "SentenceBank",
    "bank_for_labels",
    "fill_templates",
    "find_class",
    "list_banks",
    "load_bank",
    "resolve_templates",
    "validate_bank",
]
