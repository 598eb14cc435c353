"""Checkpoint files: formats, wrappers, strict key matching, unsafe pickles, TorchScript read safely, malformed
configs."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import warnings
import zipfile

import open_clip
import pytest
import torch
from safetensors.torch import load_file, save_file

from openmedclip.errors import ModelLoadError, RandomWeightsWarning
from openmedclip.models import load_model
from openmedclip.models.torchscript_reader import read_torchscript_state_dict
from tiny_models import tiny_openclip_config

UNPICKLED = []


class Payload:
    """A non-tensor object; unpickling it would record itself in UNPICKLED."""

    def __setstate__(self, state):
        UNPICKLED.append(state)


@pytest.fixture()
def weights(tiny_model_dir) -> dict[str, torch.Tensor]:
    return load_file(str(tiny_model_dir / "open_clip_model.safetensors"))


def _assert_weights(loaded, expected: dict[str, torch.Tensor]) -> None:
    state = loaded.model.state_dict()
    assert state.keys() == expected.keys()
    assert all(torch.equal(state[key], expected[key]) for key in expected)


def test_architecture_name_with_safetensors_checkpoint(tiny_arch, tiny_model_dir, weights):
    loaded = load_model(tiny_arch, device="cpu", checkpoint=tiny_model_dir / "open_clip_model.safetensors")
    _assert_weights(loaded, weights)
    assert loaded.spec.format == "checkpoint" and loaded.spec.architecture == tiny_arch


def test_architecture_name_alone_is_random(tiny_arch, weights, tiny_model_dir):
    with pytest.warns(RandomWeightsWarning, match=f"model '{tiny_arch}' has random weights"):
        loaded = load_model(tiny_arch, device="cpu")
    assert loaded.spec.source == "random"
    with warnings.catch_warnings():
        warnings.simplefilter("error", RandomWeightsWarning)
        load_model(tiny_model_dir, device="cpu")  # trained weights: no warning
    assert not torch.equal(loaded.model.state_dict()["visual.conv1.weight"], weights["visual.conv1.weight"])


def test_wrapped_ddp_pickle_is_unwrapped(tiny_arch, tmp_path, weights):
    path = tmp_path / "epoch_3.pt"
    torch.save({"epoch": 3, "name": "run", "state_dict": {f"module.{k}": v for k, v in weights.items()}}, path)
    _assert_weights(load_model(tiny_arch, device="cpu", checkpoint=path), weights)


def test_missing_and_unexpected_keys_are_named_with_counts(tiny_arch, tmp_path, weights):
    broken = {key: value for key, value in weights.items() if not key.startswith("visual.transformer")}
    broken["visual.extra_head.weight"] = torch.zeros(2)
    path = tmp_path / "broken.safetensors"
    save_file(broken, str(path))
    with pytest.raises(ModelLoadError) as error:
        load_model(tiny_arch, device="cpu", checkpoint=path)
    message = str(error.value)
    dropped = [key for key in weights if key.startswith("visual.transformer")]
    assert f"{len(dropped)} missing key(s): " in message
    assert sum(key in message for key in dropped) == 10
    assert f"({len(dropped) - 10} more)" in message
    assert "1 unexpected key(s): visual.extra_head.weight" in message
    assert str(path) in message


def test_wrong_shape_is_named(tiny_arch, tmp_path, weights):
    weights["text_projection"] = torch.zeros(3, 3)
    path = tmp_path / "shape.safetensors"
    save_file(weights, str(path))
    with pytest.raises(ModelLoadError, match=r"text_projection \(3, 3\) vs model \(32, 32\)"):
        load_model(tiny_arch, device="cpu", checkpoint=path)


def test_tolerated_buffer_key_is_the_only_exception(tiny_biomedclip_dir):
    path = tiny_biomedclip_dir / "open_clip_model.safetensors"
    state = load_file(str(path))
    assert "text.transformer.embeddings.position_ids" in state
    load_model(tiny_biomedclip_dir, device="cpu")
    state["text.transformer.embeddings.extra_ids"] = torch.zeros(1)
    save_file(state, str(path))
    with pytest.raises(ModelLoadError, match="1 unexpected key.*extra_ids"):
        load_model(tiny_biomedclip_dir, device="cpu")


def test_pickle_with_python_object_is_refused_without_unpickling_it(tiny_arch, tmp_path, weights):
    path = tmp_path / "open_clip_pytorch_model.bin"
    torch.save({"state_dict": weights, "payload": Payload()}, path)
    with pytest.raises(ModelLoadError, match=r"weights_only=True\) rejects \(Unsupported global.*Payload"):
        load_model(tiny_arch, device="cpu", checkpoint=path)
    assert UNPICKLED == []


def _openai_style_archive(weights: dict, path) -> None:
    """A TorchScript archive shaped like OpenAI's: scalar entries, partly fp16 weights, a non-weight attribute."""
    model = open_clip.model.CLIP(**tiny_openclip_config()["model_cfg"])
    model.load_state_dict(weights)
    model.register_buffer("input_resolution", torch.tensor(32))  # like OpenAI's three scalar entries
    model.visual.proj.data = model.visual.proj.data.half()
    model.text_projection.data = model.text_projection.data.half()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(model), str(path))


def test_torchscript_archive_loads_without_running_its_code(tiny_arch, tmp_path, weights, monkeypatch):
    path = tmp_path / "ViT-Tiny.pt"
    _openai_style_archive(weights, path)

    def no_jit(*args, **kwargs):
        raise AssertionError("torch.jit.load must not be called")

    monkeypatch.setattr(torch.jit, "load", no_jit)
    loaded = load_model(tiny_arch, device="cpu", checkpoint=path)
    state = loaded.model.state_dict()
    assert "input_resolution" not in state
    for key, value in weights.items():
        expected = value.half().float() if key in ("visual.proj", "text_projection") else value
        assert torch.equal(state[key], expected), key


def test_torchscript_reader_equals_torch_jit_state_dict(tmp_path, weights):
    path = tmp_path / "ViT-Tiny.pt"
    _openai_style_archive(weights, path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        reference = torch.jit.load(str(path)).state_dict()
    ours = read_torchscript_state_dict(path)
    assert set(ours) == set(reference)
    assert all(torch.equal(ours[k], reference[k]) and ours[k].dtype == reference[k].dtype for k in reference)


def test_crafted_torchscript_pickle_is_refused_and_never_runs(tiny_arch, tmp_path, weights):
    """data.pkl of a real archive replaced by a pickle whose loading would create a marker file."""
    path = tmp_path / "evil.pt"
    _openai_style_archive(weights, path)
    marker = tmp_path / "marker"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    crafted = tmp_path / "crafted.pt"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(crafted, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            target.writestr(item, pickle.dumps(Payload(), protocol=2) if item.filename.endswith("/data.pkl") else data)
    with pytest.raises(ModelLoadError, match="refused to unpickle the global (posix|os).system"):
        load_model(tiny_arch, device="cpu", checkpoint=crafted)
    assert not marker.exists()


def test_bare_safetensors_beside_config_loads(tiny_model_dir, weights):
    loaded = load_model(tiny_model_dir / "open_clip_model.safetensors", device="cpu")
    _assert_weights(loaded, weights)
    assert loaded.context_length == 16 and loaded.tokenizer(["a b"]).shape == (1, 16)


def test_bare_checkpoint_without_config_asks_for_architecture(tmp_path, tiny_model_dir):
    path = shutil.copy(tiny_model_dir / "open_clip_model.safetensors", tmp_path / "weights.safetensors")
    with pytest.raises(ModelLoadError, match="name its architecture"):
        load_model(path, device="cpu")


def test_corrupt_safetensors_is_reported(tiny_arch, tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(ModelLoadError, match="not a readable safetensors file"):
        load_model(tiny_arch, device="cpu", checkpoint=path)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{ not json", "is not valid JSON"),
        (json.dumps({"embed_dim": 32}), "embed_dim: unknown key"),
        (json.dumps({}), "missing 'model_cfg'"),
        (json.dumps({"model_cfg": {"embed_dim": 32, "vision_cfg": {}, "text_cfg": {}}, "preprocess_cfg": {"men": [0]}}),
         "preprocess_cfg.men: unknown key"),
    ],
)
def test_malformed_config_names_the_file(tiny_model_dir, tmp_path, content, problem):
    folder = shutil.copytree(tiny_model_dir, tmp_path / "model")
    (folder / "open_clip_config.json").write_text(content)
    with pytest.raises(ModelLoadError) as error:
        load_model(folder, device="cpu")
    assert f"{folder / 'open_clip_config.json'}" in str(error.value) and problem in str(error.value)


def test_folder_without_weights_is_an_error(tiny_model_dir, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copy(tiny_model_dir / "open_clip_config.json", folder)
    with pytest.raises(ModelLoadError, match="no weights file"):
        load_model(folder, device="cpu")
