"""Zero-shot text classifiers are encoded once per model × sentence list: in memory, on disk, across processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from openmedclip.embed import text_cache
from openmedclip.models import load_model
from openmedclip.models.families import load_builtin_families
from openmedclip.models.family import FAMILIES
from openmedclip.models.loaded import LoadedModel, ModelSpec
from openmedclip.tasks.zeroshot import text_classifier
from tiny_models import recorded_text_batches

PROMPTS = {"effusion": ["a chest x-ray with pleural effusion", "effusion"], "normal": ["a normal chest x-ray"]}


@pytest.fixture(autouse=True)
def cache_folder(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("OPENMEDCLIP_CACHE", str(folder))
    monkeypatch.delenv("OPENMEDCLIP_TEXT_CACHE", raising=False)
    text_cache.clear_memory()
    yield folder / "text"
    text_cache.clear_memory()


@pytest.fixture()
def model(tiny_model_dir) -> LoadedModel:
    return load_model(tiny_model_dir, device="cpu", precision="fp32")


def test_second_call_encodes_nothing(model, monkeypatch, cache_folder):
    calls = recorded_text_batches(model, monkeypatch)
    first = text_classifier(model, PROMPTS)
    assert calls == [3]
    second = text_classifier(model, PROMPTS)
    assert calls == [3] and torch.equal(first, second)
    assert len(list(cache_folder.glob("*.npy"))) == 1


def test_other_sentences_dtype_or_model_miss(model, tiny_model_dir, tmp_path, monkeypatch):
    from tiny_models import write_tiny_biomedclip_folder

    text_classifier(model, PROMPTS)
    calls = recorded_text_batches(model, monkeypatch)
    text_classifier(model, {**PROMPTS, "normal": ["a normal chest radiograph"]})
    assert calls == [3]
    text_classifier(model, {"normal": PROMPTS["normal"], "effusion": PROMPTS["effusion"]})  # another order
    assert calls == [3, 3]

    bf16 = load_model(tiny_model_dir, device="cpu", precision="bf16")
    bf16_calls = recorded_text_batches(bf16, monkeypatch)
    text_classifier(bf16, PROMPTS)
    assert bf16_calls == [3]

    other = load_model(write_tiny_biomedclip_folder(tmp_path / "other"), device="cpu", precision="fp32")
    other_calls = recorded_text_batches(other, monkeypatch)
    text_classifier(other, PROMPTS)
    assert other_calls == [3]


def test_reloaded_model_reads_the_disk(model, tiny_model_dir, monkeypatch):
    first = text_classifier(model, PROMPTS)
    text_cache.clear_memory()
    again = load_model(tiny_model_dir, device="cpu", precision="fp32")
    calls = recorded_text_batches(again, monkeypatch)
    assert torch.equal(text_classifier(again, PROMPTS), first) and calls == []


def test_corrupt_file_is_ignored_and_rewritten(model, monkeypatch, cache_folder):
    first = text_classifier(model, PROMPTS)
    (path,) = cache_folder.glob("*.npy")
    calls = recorded_text_batches(model, monkeypatch)
    for garbage in (b"not an array", path.read_bytes()[:-8]):
        path.write_bytes(garbage)
        text_cache.clear_memory()
        assert torch.equal(text_classifier(model, PROMPTS), first)
    assert calls == [3, 3]
    text_cache.clear_memory()
    assert torch.equal(text_classifier(model, PROMPTS), first) and calls == [3, 3]  # rewritten, read back


def test_disk_cache_can_be_turned_off(model, monkeypatch, cache_folder):
    monkeypatch.setenv("OPENMEDCLIP_TEXT_CACHE", "off")
    calls = recorded_text_batches(model, monkeypatch)
    text_classifier(model, PROMPTS)
    text_classifier(model, PROMPTS)
    assert calls == [3] and not cache_folder.exists()  # memory still serves the second call


def test_memory_is_bounded(model, monkeypatch):
    monkeypatch.setenv("OPENMEDCLIP_TEXT_CACHE", "off")
    monkeypatch.setattr(text_cache, "MEMORY_ENTRIES", 2)
    calls = recorded_text_batches(model, monkeypatch)
    for sentences in (["one"], ["two"], ["three"], ["three"], ["one"]):
        text_classifier(model, {"c": sentences})
    assert calls == [1, 1, 1, 1]  # "one" was dropped when "three" came in


def test_weights_changed_in_memory_miss(model, monkeypatch, cache_folder):
    first = text_classifier(model, PROMPTS)
    with torch.no_grad():
        next(model.model.parameters()).add_(0.5)
        model.model.token_embedding.weight.mul_(1.5)
    calls = recorded_text_batches(model, monkeypatch)
    changed = text_classifier(model, PROMPTS)
    assert calls == [3] and not torch.allclose(changed, first)


def test_random_weights_stay_in_memory(monkeypatch, cache_folder):
    load_builtin_families()
    family = FAMILIES["open_clip"]
    example = family.examples()[0]

    def build(seed: int) -> LoadedModel:
        torch.manual_seed(seed)
        model = family.build(example, name="random").eval()
        preprocess, config = family.preprocess(example, model)
        tokenizer, context_length = family.tokenizer(example, name="random")
        spec = ModelSpec("random", family.name, example.architecture, "random", example.format, config)
        return LoadedModel(model, preprocess, tokenizer, context_length, spec, torch.device("cpu"), torch.float32)

    first = build(0)
    calls = recorded_text_batches(first, monkeypatch)
    text_classifier(first, PROMPTS)
    text_classifier(first, PROMPTS)
    assert calls == [3] and not cache_folder.exists()
    second = build(1)
    second_calls = recorded_text_batches(second, monkeypatch)
    assert not torch.allclose(text_classifier(second, PROMPTS), text_classifier(first, PROMPTS))
    assert second_calls == [3]


def test_disk_cache_survives_a_new_process(model, tiny_model_dir, cache_folder):
    expected = text_classifier(model, PROMPTS)
    script = textwrap.dedent(f"""
        import sys, torch
        from openmedclip.models import load_model
        from openmedclip.tasks.zeroshot import text_classifier
        loaded = load_model({str(tiny_model_dir)!r}, device="cpu", precision="fp32")
        def refuse(tokens):
            raise SystemExit("encoded")
        loaded.model.encode_text = refuse
        torch.save(text_classifier(loaded, {PROMPTS!r}), sys.argv[1])
    """)
    out = cache_folder.parent / "classifier.pt"
    env = {**os.environ, "OPENMEDCLIP_CACHE": str(cache_folder.parent)}
    done = subprocess.run([sys.executable, "-c", script, str(out)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert torch.equal(torch.load(out, weights_only=True), expected)
