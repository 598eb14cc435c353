"""Exception types. Each names the item (file, model, column) and the problem in one line."""

from __future__ import annotations

from pathlib import Path


class OpenMedClipError(Exception):
    """Base class for every error openmedclip raises on purpose (user mistakes, bad input).

    ``cli_message`` is the wording for the command line where it differs (options and commands instead of
    Python calls)."""

    cli_text: str | None = None

    def cli_message(self) -> str:
        return self.cli_text or str(self)


class ImageReadError(OpenMedClipError):
    """An image file is missing, empty, truncated, corrupt, unsupported or holds unusable pixels."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def _without_prefix(problem: str, name: str) -> str:
    """``problem`` without a leading repetition of ``name`` (the message names it once already)."""
    for prefix in (f"{name}: ", f"{name} "):
        if problem.startswith(prefix) and len(problem) > len(prefix):
            return problem[len(prefix):]
    return problem


class WindowNotApplicableError(ImageReadError):
    """A display window was asked for an image whose values it cannot refer to (a CT preset on a radiograph)."""


class ModelLoadError(OpenMedClipError):
    """A model name is unknown, its files are missing, or a checkpoint does not match its architecture."""

    def __init__(self, model: str | Path, problem: str, cli_problem: str | None = None):
        self.model = str(model)
        problem = _without_prefix(problem, self.model)
        cli_problem = _without_prefix(cli_problem, self.model) if cli_problem is not None else None
        self.problem = problem
        super().__init__(f"model '{self.model}': {problem}")
        if cli_problem is not None:
            self.cli_text = f"model '{self.model}': {cli_problem}"


class InvalidInputError(OpenMedClipError):
    """Arguments or data have the wrong shape, type or content (empty label lists, missing columns, ...)."""


class OpenMedClipWarning(UserWarning):
    """Base class for openmedclip's warnings; the command line prints each as one ``warning:`` line."""


class RandomWeightsWarning(OpenMedClipWarning):
    """A model was built without trained weights for some of its parameters: its outputs mean nothing yet."""
