"""Text batches cut to their longest text: the same features as at the full context, for every family that allows
it, and no cutting where it would change them."""

from __future__ import annotations

import json

import pytest
import torch

from openmedclip.embed import encode_texts
from openmedclip.embed.engine import normalise, trim_padding
from openmedclip.models import load_model
from openmedclip.models.families import load_builtin_families
from openmedclip.models.family import FAMILIES, ModelFamily, Resolved
from openmedclip.models.loaded import LoadedModel, ModelSpec
from tiny_models import recorded_text_batches

load_builtin_families()
EXAMPLES = [(family, example) for family in FAMILIES.values() for example in family.examples()]
PROMPTS = ["ct", "a chest x-ray", "left pleural effusion", "no acute findings in the chest", "a mass"]
TRIMMING = {"medclip", "biovil", "gloria"}
"""Families whose every example trims (open_clip's own text transformer does not; its HF towers do)."""


def _example(family: ModelFamily, resolved: Resolved) -> LoadedModel:
    torch.manual_seed(0)
    model = family.build(resolved, name=resolved.architecture).eval()
    preprocess, config = family.preprocess(resolved, model)
    tokenizer, context_length = family.tokenizer(resolved, name=resolved.architecture)
    spec = ModelSpec(resolved.architecture, family.name, resolved.architecture, "random", resolved.format, config)
    return LoadedModel(model, preprocess, tokenizer, context_length, spec, torch.device("cpu"), torch.float32)


def _hf_tower(folder, pooler: str) -> LoadedModel:
    """The tiny BiomedCLIP-shaped model (a BERT tower) with another pooler, saved and loaded."""
    import open_clip
    from safetensors.torch import save_file

    from tiny_models import write_tiny_biomedclip_folder

    write_tiny_biomedclip_folder(folder)
    config_file = folder / "open_clip_config.json"
    config = json.loads(config_file.read_text())
    config["model_cfg"]["text_cfg"]["hf_pooler_type"] = pooler
    config_file.write_text(json.dumps(config))
    model_cfg = config["model_cfg"]
    model_cfg["text_cfg"].update(hf_model_name=str(folder), hf_model_pretrained=False)
    torch.manual_seed(0)
    state = open_clip.model.CustomTextCLIP(**model_cfg).state_dict()
    save_file({key: value.contiguous() for key, value in state.items()}, str(folder / "open_clip_model.safetensors"))
    return load_model(folder, device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def builtin() -> LoadedModel:
    return load_model("openmedclip-base", device="cpu", precision="fp32")


def _full_context(loaded: LoadedModel, texts: list[str]) -> torch.Tensor:
    with torch.inference_mode():
        return normalise(loaded.model.encode_text(loaded.tokenizer(texts)))


def _assert_trimmed_equals_full(loaded: LoadedModel, monkeypatch, *, trims: bool) -> None:
    reference = _full_context(loaded, PROMPTS)
    assert loaded.tokenizer(PROMPTS).shape == (len(PROMPTS), loaded.context_length)
    widths = recorded_text_batches(loaded, monkeypatch, lambda tokens: tokens.shape[1])
    for batch_size in (256, 2):
        features = encode_texts(loaded, PROMPTS, batch_size=batch_size)
        assert (features - reference).abs().max().item() <= 1e-6
    assert (max(widths) < loaded.context_length) is trims
    if trims:
        assert len(set(widths)) > 1  # each batch is cut to its own longest text


@pytest.mark.parametrize(("family", "example"), EXAMPLES, ids=lambda x: getattr(x, "architecture", ""))
def test_family_examples_trim_where_features_stay(family, example, monkeypatch):
    loaded = _example(family, example)
    _assert_trimmed_equals_full(loaded, monkeypatch, trims=family.name in TRIMMING)


def test_builtin_model_trims(builtin, monkeypatch):
    assert builtin.family.text_pad_id(builtin.model) == 0
    _assert_trimmed_equals_full(builtin, monkeypatch, trims=True)


@pytest.mark.parametrize("pooler", ["cls_last_hidden_state_pooler", "cls_pooler", "mean_pooler"])
def test_hf_text_towers_trim(pooler, tmp_path, monkeypatch):
    _assert_trimmed_equals_full(_hf_tower(tmp_path, pooler), monkeypatch, trims=True)


def _cut_by_hand(loaded: LoadedModel) -> torch.Tensor:
    tokens = trim_padding(loaded.tokenizer(PROMPTS), 0)
    assert tokens.shape[1] < loaded.context_length
    with torch.inference_mode():
        return normalise(loaded.model.encode_text(tokens))


@pytest.mark.parametrize(
    ("family", "example"),
    [(family, example) for family, example in EXAMPLES if family.name not in TRIMMING],
    ids=lambda x: getattr(x, "architecture", ""),
)
def test_families_that_do_not_trim_would_change(family, example):
    """Cutting the padding of these towers fails (open_clip's text transformer: full-context positional embedding
    and causal mask) or changes the features (PMC-CLIP's BERT attends to padding): they must say None."""
    loaded = _example(family, example)
    assert family.text_pad_id(loaded.model) is None
    try:
        cut = _cut_by_hand(loaded)
    except RuntimeError:
        return
    assert (cut - _full_context(loaded, PROMPTS)).abs().max().item() > 1e-4


def test_other_poolers_do_not_trim(tmp_path):
    loaded = _hf_tower(tmp_path, "max_pooler")  # open_clip's max pooler fills the unmasked positions
    assert loaded.family.text_pad_id(loaded.model) is None


def test_pmc_clip_does_not_trim():
    family = FAMILIES["pmc_clip"]
    for example in family.examples():
        assert family.text_pad_id(_example(family, example).model) is None


def test_trim_padding_keeps_one_column_and_inner_pads():
    tokens = torch.tensor([[5, 0, 7, 0, 0], [6, 0, 0, 0, 0]])
    assert torch.equal(trim_padding(tokens, 0), tokens[:, :3])
    assert trim_padding(torch.zeros(2, 4, dtype=torch.long), 0).shape == (2, 1)
    assert trim_padding(tokens, None) is tokens
