"""The per-device precision policy, CPU feature detection, torch threads, and bf16 predictions against fp32."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from openmedclip import hardware
from openmedclip.errors import InvalidInputError, ModelLoadError
from openmedclip.hardware import CpuInfo, parse_cpuinfo
from openmedclip.models import load_model
from openmedclip.precision import (
    PRECISION_ENV,
    default_precision,
    inference_dtype,
    precision_name,
    resolve_precision,
)

ZEN4 = "processor\t: 0\nmodel name\t: AMD EPYC 9454\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
SAPPHIRE_RAPIDS = "model name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t: avx2 avx512f amx_bf16 amx_tile amx_int8\n"
ICE_LAKE = "model name\t: Intel(R) Xeon(R) Gold 6338\nflags\t: avx2 avx512f avx512_vnni\n"
GRAVITON = "processor\t: 0\nFeatures\t: fp asimd bf16 sve\n"

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _no_precision_env(monkeypatch):
    monkeypatch.delenv(PRECISION_ENV, raising=False)


def _cpu(monkeypatch, cpuinfo: str) -> None:
    """Pretend the CPU is the one ``cpuinfo`` (``/proc/cpuinfo`` text) describes."""
    model, flags = parse_cpuinfo(cpuinfo)
    monkeypatch.setattr(hardware, "cpu_info", lambda: CpuInfo(model, flags, "AVX512"))


@pytest.mark.parametrize(
    ("cpuinfo", "expected"),
    [(ZEN4, "bf16"), (SAPPHIRE_RAPIDS, "bf16"), (ICE_LAKE, "fp32"), (GRAVITON, "fp32"), ("", "fp32")],
)
def test_cpu_default_is_bf16_only_with_avx512_bf16_or_amx(monkeypatch, cpuinfo, expected):
    _cpu(monkeypatch, cpuinfo)
    assert default_precision(CPU) == expected
    assert resolve_precision("auto", CPU) == expected


def test_cpuinfo_is_parsed_into_name_and_flags():
    model, flags = parse_cpuinfo(SAPPHIRE_RAPIDS)
    assert model == "Intel(R) Xeon(R) Platinum 8480+"
    assert {"amx_bf16", "amx_tile"} <= flags and "avx512_bf16" not in flags
    info = CpuInfo(model, flags, "AVX512")
    assert info.amx and not info.avx512_bf16 and info.fast_bf16
    assert not CpuInfo("x", frozenset({"amx_tile"}), "AVX512").fast_bf16  # tiles without bf16 do not count


@pytest.mark.parametrize(("native_bf16", "expected"), [(True, "bf16"), (False, "fp16")])
def test_cuda_default_is_bf16_where_native_else_fp16(monkeypatch, native_bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: native_bf16)
    assert default_precision(torch.device("cuda")) == expected


def test_mps_and_other_devices_default_to_fp32(monkeypatch):
    _cpu(monkeypatch, ZEN4)
    assert default_precision(torch.device("mps")) == "fp32"
    assert default_precision(torch.device("meta")) == "fp32"


def test_explicit_precision_wins_and_the_environment_replaces_only_auto(monkeypatch):
    _cpu(monkeypatch, SAPPHIRE_RAPIDS)
    monkeypatch.setenv(PRECISION_ENV, "fp32")
    assert resolve_precision("auto", CPU) == "fp32"
    assert resolve_precision("bf16", CPU) == "bf16"
    monkeypatch.setenv(PRECISION_ENV, " AUTO ")
    assert resolve_precision("auto", CPU) == "bf16"
    monkeypatch.setenv(PRECISION_ENV, "int8")
    with pytest.raises(InvalidInputError, match=PRECISION_ENV):
        resolve_precision("auto", CPU)


def test_unknown_names_and_fp16_on_cpu_are_refused(monkeypatch):
    with pytest.raises(InvalidInputError, match="'int8' is not one of fp32, bf16, fp16 or 'auto'"):
        resolve_precision("int8", CPU)
    monkeypatch.setenv(PRECISION_ENV, "fp16")
    with pytest.raises(InvalidInputError, match="precision='bf16'"):
        inference_dtype("auto", CPU)


def test_load_model_resolves_auto_and_reports_the_real_dtype(monkeypatch, tiny_model_dir):
    _cpu(monkeypatch, ZEN4)
    assert load_model(tiny_model_dir, device="cpu").dtype == torch.bfloat16  # 'auto' is the default
    auto = load_model(tiny_model_dir, device="cpu", precision="auto")
    assert auto.dtype == torch.bfloat16 and precision_name(auto.dtype) == "bf16"
    assert next(auto.model.parameters()).dtype == torch.bfloat16
    monkeypatch.setenv(PRECISION_ENV, "fp32")
    assert load_model(tiny_model_dir, device="cpu", precision="auto").dtype == torch.float32
    monkeypatch.delenv(PRECISION_ENV)
    _cpu(monkeypatch, ICE_LAKE)
    assert load_model(tiny_model_dir, device="cpu", precision="auto").dtype == torch.float32
    with pytest.raises(ModelLoadError, match="or 'auto'"):
        load_model(tiny_model_dir, device="cpu", precision="half")


def test_physical_cores_count_smt_siblings_once(monkeypatch, tmp_path):
    for cpu, core in enumerate([0, 1, 0, 1]):  # cpus 0/2 and 1/3 are hyper-thread pairs
        topology = tmp_path / f"cpu{cpu}" / "topology"
        topology.mkdir(parents=True)
        (topology / "physical_package_id").write_text("0\n")
        (topology / "core_id").write_text(f"{core}\n")
    monkeypatch.setattr(hardware, "CPU_SYSFS", tmp_path)
    monkeypatch.setattr(hardware, "available_cpus", lambda: {0, 1, 2, 3})
    hardware.physical_cores.cache_clear()
    try:
        assert hardware.physical_cores() == 2
        monkeypatch.setattr(hardware, "available_cpus", lambda: {0, 2})  # affinity: one core's two threads
        hardware.physical_cores.cache_clear()
        assert hardware.physical_cores() == 1
        monkeypatch.setattr(hardware, "CPU_SYSFS", tmp_path / "absent")  # no topology: logical CPUs
        hardware.physical_cores.cache_clear()
        assert hardware.physical_cores() == 2
    finally:
        hardware.physical_cores.cache_clear()


@pytest.mark.parametrize(("cores", "workers", "threads"), [(2, 1, 1), (2, 0, 2), (16, 4, 12), (4, 8, 1)])
def test_torch_threads_are_cores_minus_loader_workers(monkeypatch, cores, workers, threads):
    monkeypatch.setattr(hardware, "physical_cores", lambda: cores)
    assert hardware.intra_op_threads(workers) == threads
    before = torch.get_num_threads()
    with hardware.threads_beside_loaders(workers) as chosen:
        assert chosen == threads and torch.get_num_threads() == threads
    assert torch.get_num_threads() == before


def test_describe_names_the_cpu_and_its_bf16_units():
    text = hardware.describe()
    info = hardware.cpu_info()
    assert info.model in text and "physical core" in text and info.torch_capability in text
    assert ("AMX-BF16" in text) == info.amx and ("AVX-512 BF16" in text) == info.avx512_bf16


def _pneumonia_images(root, count: int):
    from PIL import Image

    with np.load(root / "medmnist" / "pneumoniamnist.npz") as npz:
        images = npz["test_images"]
    picks = np.linspace(0, len(images) - 1, count).astype(int)
    return [Image.fromarray(images[i]) for i in picks]


def _medpix_files(root, count: int):
    files = sorted((root / "medpix2_traindev" / "images").glob("*.jpg"))
    return [files[i] for i in np.linspace(0, len(files) - 1, count).astype(int)]


@pytest.fixture(scope="module")
def builtin_fp32_bf16():
    return load_model("openmedclip-base", device="cpu", precision="fp32"), load_model(
        "openmedclip-base", device="cpu", precision="bf16"
    )


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("kind", "labels"), [("pneumoniamnist", ["normal", "pneumonia"]), ("medpix", ["CT scan", "MRI scan"])]
)
def test_bf16_predictions_match_fp32_on_real_images(shared_data, builtin_fp32_bf16, kind, labels):
    from openmedclip.embed import encode_images
    from openmedclip.tasks.zeroshot import zero_shot

    images = _pneumonia_images(shared_data, 64) if kind == "pneumoniamnist" else _medpix_files(shared_data, 32)
    fp32, bf16 = builtin_fp32_bf16
    cosine = (encode_images(fp32, images).features * encode_images(bf16, images).features).sum(dim=-1)
    assert len(cosine) == len(images) and cosine.min() >= 0.999, f"min cosine {cosine.min():.5f}"

    reference = zero_shot(fp32, images, labels).probabilities
    low = zero_shot(bf16, images, labels).probabilities
    ranked = np.sort(reference, axis=1)
    confident = ranked[:, -1] - ranked[:, -2] > 0.01
    assert confident.sum() >= len(images) // 2, "too few confident files to compare"
    agreement = (reference.argmax(1) == low.argmax(1))[confident].mean()
    assert agreement >= 0.99, f"top-1 agreement {agreement:.3f} on {confident.sum()} confident files"


def _conv_weights(model: torch.nn.Module) -> list[torch.Tensor]:
    """Convolution weights whose two layouts differ (a 1x1 kernel is contiguous in both)."""
    weights = [module.weight for module in model.modules() if isinstance(module, torch.nn.Conv2d)]
    return [w for w in weights if w.shape[1] > 1 and w.shape[-1] * w.shape[-2] > 1]


def test_convolutional_towers_get_channels_last_weights_in_bf16_on_cpu(builtin_fp32_bf16):
    fp32, bf16 = builtin_fp32_bf16  # the built-in model: a timm ResNet image tower
    assert len(_conv_weights(bf16.model)) > 5
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in _conv_weights(bf16.model))
    assert not any(w.is_contiguous(memory_format=torch.channels_last) for w in _conv_weights(fp32.model))
    pixels = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        cosine = torch.nn.functional.cosine_similarity(
            fp32.model.encode_image(pixels), bf16.model.encode_image(pixels.to(torch.bfloat16)).float()
        )
    assert cosine.min() >= 0.999


def test_a_vit_stays_contiguous_in_bf16(tiny_model_dir):
    from openmedclip.models.device import is_convolutional

    loaded = load_model(tiny_model_dir, device="cpu", precision="bf16")
    assert not is_convolutional(loaded.model)
    assert all(w.is_contiguous() for w in _conv_weights(loaded.model))
