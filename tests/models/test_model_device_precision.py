"""Device choice and weight precision."""

from __future__ import annotations

import pytest
import torch

from openmedclip.errors import InvalidInputError, ModelLoadError
from openmedclip.models import load_model, resolve_device


def test_bf16_casts_every_floating_weight_and_encodes(tiny_biomedclip_dir):
    fp32 = load_model(tiny_biomedclip_dir, device="cpu")
    bf16 = load_model(tiny_biomedclip_dir, device="cpu", precision="bf16")
    assert bf16.dtype == torch.bfloat16 and fp32.dtype == torch.float32
    floating = [p for p in bf16.model.state_dict().values() if p.is_floating_point()]
    assert floating and all(p.dtype == torch.bfloat16 for p in floating)
    pixels = torch.rand(2, 3, 64, 64)
    tokens = bf16.tokenizer(["pleural effusion", "normal chest"])
    with torch.no_grad():
        image = bf16.model.encode_image(pixels.to(torch.bfloat16))
        text = bf16.model.encode_text(tokens)
        assert image.dtype == text.dtype == torch.bfloat16
        assert torch.allclose(image.float(), fp32.model.encode_image(pixels), atol=0.1, rtol=0.05)
        assert torch.allclose(text.float(), fp32.model.encode_text(tokens), atol=0.1, rtol=0.05)


def test_fp16_on_cpu_suggests_bf16(tiny_model_dir):
    with pytest.raises(ModelLoadError, match="precision='bf16'"):
        load_model(tiny_model_dir, device="cpu", precision="fp16")


def test_unknown_precision_is_refused(tiny_model_dir):
    with pytest.raises(ModelLoadError, match="'int8' is not one of fp32, bf16, fp16"):
        load_model(tiny_model_dir, device="cpu", precision="int8")


def test_model_is_in_eval_mode_on_the_device(tiny_model_dir):
    loaded = load_model(tiny_model_dir, device="cpu")
    assert loaded.device == torch.device("cpu")
    assert all(p.device.type == "cpu" for p in loaded.model.parameters())
    assert not any(module.training for module in loaded.model.modules())


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"), [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")]
)
def test_default_device_prefers_cuda_then_mps(monkeypatch, cuda, mps, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert resolve_device(None) == torch.device(expected)
    assert resolve_device("cpu") == torch.device("cpu")


def test_unavailable_accelerator_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InvalidInputError, match="CUDA is not available"):
        resolve_device("cuda:0")
    with pytest.raises(InvalidInputError, match="not a valid torch device"):
        resolve_device("gpu-please")
