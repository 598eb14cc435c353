"""Every registry name: a registered family that describes it, a licence and a source, recommended prompts that
exist, and, without its files, a message naming what to get, from where and where to put it."""

from __future__ import annotations

import pytest

from openmedclip.errors import ModelLoadError
from openmedclip.models import load_model
from openmedclip.models.family import get_family
from openmedclip.models.registry import registry
from openmedclip.prompts.banks import list_banks
from openmedclip.prompts.templates import TEMPLATE_SETS

ENTRIES = sorted(registry().values(), key=lambda entry: entry.name)
EXPECTED = {"openmedclip-base", "biomedclip", "chexzero", "pmc-clip", "medclip/resnet50", "medclip/swin-tiny",
            "biovil", "biovil-t", "gloria", "unimed/vit-b16", "unimed/vit-l14-base-text",
            "unimed/vit-l14-large-text", *(f"openai/{arch}" for arch in
                                           ("RN50", "RN101", "ViT-B-32", "ViT-B-16", "ViT-L-14", "ViT-L-14-336"))}


def test_the_zoo_has_every_published_model():
    assert {entry.name for entry in ENTRIES} >= EXPECTED


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda entry: entry.name)
def test_every_entry_is_described_licensed_and_sourced(entry):
    family = get_family(entry.family)
    assert family.describe_entry(entry) and entry.description and entry.licence
    assert entry.bundled or entry.url.startswith("https://")
    assert entry.prompts == "" or entry.prompts in TEMPLATE_SETS or entry.prompts in list_banks()
    assert not set(family.architectures()) & {entry.name}  # a registry name never shadows an architecture


@pytest.mark.parametrize("entry", [e for e in ENTRIES if not e.bundled], ids=lambda entry: entry.name)
def test_every_missing_model_says_what_to_get_from_where_and_where_to_put_it(entry):
    with pytest.raises(ModelLoadError) as error:
        load_model(entry.name, device="cpu")
    message = str(error.value)
    assert f"$OPENMEDCLIP_MODELS/{entry.name}/" in message and entry.url in message
    assert "Traceback" not in message
    for repo in entry.needs:
        assert f"https://huggingface.co/{repo}" in message
    for name in entry.files:
        assert name in message
    if entry.hf_repo:
        assert f"openmedclip download {entry.name}" in message
