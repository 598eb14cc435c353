"""Exception types. Each names the item (file, model, column) and the problem in one line."""

from __future__ import annotations

from pathlib import Path


class OpenMedClipError(Exception):
    """Base class for every error openmedclip raises on purpose (user mistakes, bad input)."""


class ImageReadError(OpenMedClipError):
    """An image file is missing, empty, truncated, corrupt, unsupported or holds unusable pixels."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ModelLoadError(OpenMedClipError):
    """A model name is unknown, its files are missing, or a checkpoint does not match its architecture."""

    def __init__(self, model: str | Path, problem: str):
        self.model = str(model)
        self.problem = problem
        super().__init__(f"model '{self.model}': {problem}")


class InvalidInputError(OpenMedClipError):
    """Arguments or data have the wrong shape, type or content (empty label lists, missing columns, ...)."""
