"""Linear layers with oneDNN-prepacked weights: the same outputs as ``F.linear``, and a fallback wherever the packed
copy cannot stand for the weight."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from openmedclip.io import MedicalImage
from openmedclip.models import load_model
from openmedclip.models.packed_linear import PackedLinear, can_pack, pack_linear_layers

CPU = torch.device("cpu")
pytestmark = pytest.mark.skipif(not can_pack(CPU, torch.bfloat16), reason="this torch has no oneDNN linear ops")


def _layers(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(24, 40), nn.GELU(), nn.Linear(40, 8, bias=False)).to(torch.bfloat16)


def _inputs() -> torch.Tensor:
    return torch.randn(3, 7, 24, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a.float(), b.float(), rtol=0.02, atol=0.02)


def test_packed_layers_give_f_linear_outputs_and_keep_their_state_dict():
    plain, packed = _layers(), _layers()
    before = {k: v.clone() for k, v in packed.state_dict().items()}
    assert pack_linear_layers(packed, CPU, torch.bfloat16) == 2
    assert all(type(packed[i]) is PackedLinear for i in (0, 2))
    assert packed.state_dict().keys() == before.keys()
    assert all(torch.equal(packed.state_dict()[k], v) for k, v in before.items())
    with torch.inference_mode():
        _close(packed(_inputs()), plain(_inputs()))


def test_weights_changed_in_place_are_used_not_the_stale_packed_copy():
    packed, other = _layers(0), _layers(1)
    pack_linear_layers(packed, CPU, torch.bfloat16)
    packed.load_state_dict(other.state_dict())
    with torch.inference_mode():
        _close(packed(_inputs()), other(_inputs()))
        packed[0].pack()
        _close(packed(_inputs()), other(_inputs()))


def test_gradients_other_dtypes_and_copies_fall_back_or_repack():
    plain, packed = _layers(), _layers()
    pack_linear_layers(packed, CPU, torch.bfloat16)
    packed(_inputs()).float().sum().backward()
    plain(_inputs()).float().sum().backward()
    _close(packed[0].weight.grad, plain[0].weight.grad)
    packed.float()
    with torch.inference_mode():
        _close(packed(_inputs().float()), plain.float()(_inputs().float()))
    for copied in (copy.deepcopy(_packed_layers()), _pickled(_packed_layers())):
        with torch.inference_mode():
            _close(copied(_inputs()), _layers()(_inputs()))


def _packed_layers() -> nn.Sequential:
    layers = _layers()
    pack_linear_layers(layers, CPU, torch.bfloat16)
    return layers


def _pickled(module: nn.Module) -> nn.Module:
    buffer = io.BytesIO()
    torch.save(module, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


def test_only_bf16_on_the_cpu_is_packed_and_subclasses_are_left_alone():
    assert not can_pack(CPU, torch.float32)
    assert not can_pack(torch.device("cuda"), torch.bfloat16)
    layers = _layers().float()
    assert pack_linear_layers(layers, CPU, torch.float32) == 0
    attention = nn.MultiheadAttention(16, 2).to(torch.bfloat16)
    assert pack_linear_layers(attention, CPU, torch.bfloat16) == 0


def test_load_model_packs_a_bf16_model_and_its_features_match_fp32(tiny_model_dir):
    bf16 = load_model(tiny_model_dir, device="cpu", precision="bf16")
    fp32 = load_model(tiny_model_dir, device="cpu", precision="fp32")
    packed = [m for m in bf16.model.modules() if isinstance(m, PackedLinear)]
    assert packed and not any(isinstance(m, PackedLinear) for m in fp32.model.modules())
    grey = np.random.default_rng(0).uniform(0, 255, (48, 40)).astype(np.float32)
    picture = MedicalImage(grey, "random", meta={"bit_depth": 8})
    pixels = torch.stack([fp32.preprocess(picture)] * 2)
    tokens = bf16.tokenizer(["a chest x-ray", "an axial ct of the head"])
    with torch.inference_mode():
        for tower, data in (("encode_image", pixels), ("encode_text", tokens)):
            ref = getattr(fp32.model, tower)(data)
            got = getattr(bf16.model, tower)(data.to(torch.bfloat16) if data.is_floating_point() else data)
            assert F.cosine_similarity(ref, got.float()).min() > 0.999


def test_torch_compile_traces_f_linear_in_one_graph():
    import torch._dynamo

    layers = _packed_layers()
    explanation = torch._dynamo.explain(layers)(_inputs())
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1
    compiled = torch.compile(layers, backend="eager", fullgraph=True)
    with torch.inference_mode():
        _close(compiled(_inputs()), _layers()(_inputs()))
