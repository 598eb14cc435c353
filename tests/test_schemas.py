"""The JSON Schemas in docs/schemas match the file-format models, the shipped files pass them, and a misspelt key
is rejected with its place for each file type."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from openmedclip.errors import InvalidInputError, ModelLoadError
from openmedclip.eval.suite import SuiteFile, load_suite
from openmedclip.models.families.open_clip.config_file import OpenClipHubConfig, read_hub_config
from openmedclip.prompts.banks import BankFile, load_bank
from openmedclip.schemas import SCHEMAS, main, schema_text, schemas, write_schemas
from openmedclip.train.config import TrainConfig, load_recipe

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "schemas"
PACKAGE = REPO / "src" / "openmedclip"
SHIPPED = {
    "train_recipe.schema.json": (TrainConfig, sorted((REPO / "configs" / "train").glob("*.yaml"))),
    "eval_suite.schema.json": (SuiteFile, sorted((PACKAGE / "configs" / "suites").glob("*.yaml"))),
    "sentence_bank.schema.json": (BankFile, sorted((PACKAGE / "prompts" / "banks").glob("*.yaml"))),
    "open_clip_config.schema.json": (
        OpenClipHubConfig,
        [PACKAGE / "builtin" / "openmedclip-base" / "open_clip_config.json",
         *sorted((REPO / "configs" / "models").glob("*.json"))],
    ),
}


@pytest.fixture(scope="module")
def current() -> dict[str, dict]:
    return schemas()


def test_docs_schemas_are_up_to_date(current):
    assert set(current) == set(SCHEMAS) == set(SHIPPED)
    assert {p.name for p in DOCS.glob("*.json")} == set(current)
    for name, schema in current.items():
        assert (DOCS / name).read_text(encoding="utf-8") == schema_text(schema), (
            f"docs/schemas/{name} is stale: run `uv run python -m openmedclip.schemas docs/schemas`"
        )


def test_write_schemas_and_the_command(tmp_path, current):
    written = write_schemas(tmp_path / "a")
    assert [p.name for p in written] == list(SCHEMAS)
    assert main([str(tmp_path / "b")]) == 0
    for name, schema in current.items():
        assert json.loads((tmp_path / "a" / name).read_text(encoding="utf-8")) == schema
        assert (tmp_path / "b" / name).read_text(encoding="utf-8") == (tmp_path / "a" / name).read_text("utf-8")
    assert main([]) == 2


@pytest.mark.parametrize("name", list(SHIPPED))
def test_each_schema_describes_its_model(current, name):
    model, _ = SHIPPED[name]
    schema = current[name]
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(model.model_fields)
    assert set(schema["required"]) == {n for n, f in model.model_fields.items() if f.is_required()}


@pytest.mark.parametrize(
    ("model", "path"),
    [(model, path) for model, paths in SHIPPED.values() for path in paths],
    ids=lambda value: value.name if isinstance(value, Path) else value.__name__,
)
def test_shipped_files_validate(model, path):
    text = path.read_text(encoding="utf-8")
    model.model_validate(json.loads(text) if path.suffix == ".json" else yaml.safe_load(text))


def test_a_misspelt_key_is_rejected_with_its_place(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: m\ndatasets: [{type: table, path: a.csv, captions: {bankk: fundus}}]\n")
    with pytest.raises(InvalidInputError) as error:
        load_recipe(recipe)
    assert str(error.value) == f"{recipe}: recipe: datasets.0.captions.bankk: unknown key (did you mean 'bank'?)"

    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\ndatasets:\n  a:\n    source: {type: medmnist, path: x.npz}\n    task: [zeroshot]\n")
    with pytest.raises(InvalidInputError) as error:
        load_suite(suite)
    assert str(error.value) == f"{suite}: datasets.a.task: unknown key (did you mean 'tasks'?) (and 1 more problem)"

    bank = tmp_path / "b.yaml"
    bank.write_text("classes:\n  normal:\n    sentences: [A normal image.]\n    alias: [healthy]\n")
    with pytest.raises(InvalidInputError) as error:
        load_bank(bank)
    assert str(error.value) == f"{bank}: classes.normal.alias: unknown key (did you mean 'aliases'?)"

    config = tmp_path / "open_clip_config.json"
    content = {"model_cfg": {"embed_dim": 8, "vision_cfg": {}, "text_cfg": {}}, "preprocess_cfg": {"men": [0.5]}}
    config.write_text(json.dumps(content))
    with pytest.raises(ModelLoadError) as error:
        read_hub_config(config, "mine")
    assert str(error.value) == f"model 'mine': {config}: preprocess_cfg.men: unknown key (did you mean 'mean'?)"
