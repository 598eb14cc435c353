"""Schemas of openmedclip's file formats: the strict base model, one-line validation errors, JSON Schema export.

The formats are pydantic models: training recipes (`openmedclip.train.config.TrainConfig`), evaluation suites
(`openmedclip.eval.suite.SuiteFile`), sentence banks (`openmedclip.prompts.banks.BankFile`) and
``open_clip_config.json`` (`openmedclip.models.families.open_clip.config_file.OpenClipHubConfig`).
``python -m openmedclip.schemas FOLDER`` writes one JSON Schema per format into FOLDER.
"""

from __future__ import annotations

import difflib
import json
import reprlib
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from importlib import import_module
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from typing_extensions import is_typeddict

from openmedclip.atomic import write_text

SCHEMAS: dict[str, str] = {
    "train_recipe.schema.json": "openmedclip.train.config:TrainConfig",
    "eval_suite.schema.json": "openmedclip.eval.suite:SuiteFile",
    "sentence_bank.schema.json": "openmedclip.prompts.banks:BankFile",
    "open_clip_config.schema.json": "openmedclip.models.families.open_clip.config_file:OpenClipHubConfig",
}
"""Schema file name -> ``module:model`` of the format it describes (imported when needed: those modules import
this one)."""

_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
}
"""Pydantic type errors -> what was expected, for ``expected X (got Y)`` messages."""


class FileModel(BaseModel):
    """Base of the file-format models: unknown keys are errors; attribute docstrings describe the fields."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


def describe_error(error: ValidationError, model: type[BaseModel]) -> str:
    """The first problem in `error` (from validating `model`) as one line, ``<location>: <problem>``.

    Locations are dotted keys (``datasets.0.captions.bank``). Unknown keys come first (a misspelt key also makes
    a required one missing) and name the closest known key; missing keys at one place are listed together, and
    the errors of all members of a union at one place are merged.
    """
    errors = error.errors()
    shown = [_walk(model, e["loc"])[0] for e in errors]
    pairs = list(zip(errors, shown, strict=True))
    i = next((k for k, e in enumerate(errors) if e["type"] == "extra_forbidden"), 0)
    first, loc = errors[i], shown[i]
    if first["type"] == "extra_forbidden":
        known = _keys(_walk(model, first["loc"][:-1])[1])
        return _located(loc, _unknown_key(str(loc[-1]), known), len(errors) - 1)
    if first["type"] == "missing":
        keys = [_key(s[-1]) for e, s in pairs if e["type"] == "missing" and s[:-1] == loc[:-1]]
        return _located(loc[:-1], f"missing {', '.join(keys)}", len(errors) - len(keys))
    same = [e for e, s in pairs if s == loc]
    broken = next((e for e in same if e["type"] not in _EXPECTED), None)
    if broken is None:
        problem = f"expected {' or '.join(dict.fromkeys(_EXPECTED[e['type']] for e in same))}"
    else:  # the value has the right type (of one union member) but breaks a rule
        first, problem = broken, _message(broken)
    if isinstance(first["input"], (str, int, float, type(None))):
        problem += f" (got {reprlib.repr(first['input'])})"
    return _located(loc, problem, len(errors) - len(same))


def schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of each file format, by schema file name (see `SCHEMAS`)."""
    out = {}
    for filename, target in SCHEMAS.items():
        module, name = target.split(":")
        model: type[BaseModel] = getattr(import_module(module), name)
        out[filename] = {"$schema": "https://json-schema.org/draft/2020-12/schema", **model.model_json_schema()}
    return out


def schema_text(schema: Mapping[str, Any]) -> str:
    """A schema as written to its file: indented JSON with a final newline."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def write_schemas(folder: str | Path) -> list[Path]:
    """Write every format's JSON Schema into `folder` (created if needed); return the paths written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, schema in schemas().items():
        path = folder / filename
        write_text(path, schema_text(schema))
        written.append(path)
    return written


def _message(error: Mapping[str, Any]) -> str:
    """Pydantic's message for `error`, with length limits in words."""
    if error["type"] == "too_short":
        return _items("at least", error["ctx"]["min_length"])
    if error["type"] == "too_long":
        return _items("at most", error["ctx"]["max_length"])
    return str(error["msg"])


def _items(bound: str, n: int) -> str:
    return f"needs {bound} {n} item{'s' if n != 1 else ''}"


def _located(loc: Sequence[str | int], problem: str, others: int) -> str:
    where = ".".join(map(str, loc))
    more = f" (and {others} more problem{'s' if others > 1 else ''})" if others else ""
    return f"{where}: {problem}{more}" if where else f"{problem}{more}"


def _key(part: str | int) -> str:
    return f"item {part}" if isinstance(part, int) else f"'{part}'"


def _unknown_key(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return f"unknown key (did you mean '{close[0]}'?)"
    return f"unknown key (known: {', '.join(known)})" if known else "unknown key"


def _walk(root: Any, loc: Sequence[str | int]) -> tuple[list[str | int], Any]:
    """`loc` as the file shows it (without pydantic's union-member tags and ``[key]`` parts), and the type found
    there (None where it cannot be followed)."""
    shown: list[str | int] = []
    node = root
    for part in loc:
        node = _strip(node)
        if _is_union(node) or part == "[key]":
            node = None
            continue
        shown.append(part)
        node = _child(node, part)
    return shown, _strip(node)


def _strip(node: Any) -> Any:
    """`node` without `Annotated` metadata and without ``None`` as a union member."""
    if typing.get_origin(node) is typing.Annotated:
        return _strip(typing.get_args(node)[0])
    if _is_union(node):
        members = [arg for arg in typing.get_args(node) if arg is not type(None)]
        return _strip(members[0]) if len(members) == 1 else node
    return node


def _is_union(node: Any) -> bool:
    return typing.get_origin(node) in (typing.Union, types.UnionType)


def _child(node: Any, part: str | int) -> Any:
    """The type of item `part` of a value of type `node`, or None."""
    if isinstance(node, type) and issubclass(node, BaseModel):
        field = node.model_fields.get(str(part))
        return field.annotation if field else None
    if is_typeddict(node):
        return typing.get_type_hints(node).get(str(part))
    origin, args = typing.get_origin(node), typing.get_args(node)
    if origin is tuple and args and isinstance(part, int):
        return args[0] if args[-1] is Ellipsis else args[min(part, len(args) - 1)]
    if origin in (list, Sequence) and args:
        return args[0]
    if origin in (dict, Mapping) and len(args) == 2:
        return args[1]
    return None


def _keys(node: Any) -> list[str]:
    """The keys a value of type `node` may have (none when it is not a model or typed dict)."""
    if isinstance(node, type) and issubclass(node, BaseModel):
        return list(node.model_fields)
    if is_typeddict(node):
        return list(typing.get_type_hints(node))
    return []


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m openmedclip.schemas FOLDER``: write the JSON Schemas into FOLDER."""
    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m openmedclip.schemas FOLDER", file=sys.stderr)
        return 2
    for path in write_schemas(args[0]):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
