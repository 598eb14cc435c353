"""Decode + preprocess per file, by file kind: the model-card pipeline against openmedclip's read path.

Columns (ms per file: each file's best of ``--repeats`` runs, the pipelines interleaved file by file, averaged over
the kind's files; one process):

* ``card``: ``transform(Image.open(p).convert("RGB"))`` with open_clip's eval transform of a 224 px model (DICOM:
  ``pydicom`` pixel array, NIfTI: ``nibabel`` middle slice, both min-max scaled to 8 bits, then the same);
* ``before``: openmedclip's ``read_image`` + ``to_model_input`` + the transform at ``--before-rev`` (the read path
  that went through float32), loaded from git;
* ``after``: ``OpenClipPreprocess(read_image(p))`` now, full decode (bit-identical to ``before``);
* ``reduced``: the same with ``read_image(p, target_size=224)`` (JPEGs at least 448 px a side decode at reduced
  scale).

A second table gives the cosine of image features, reduced-scale against full decode, on the real JPEGs that
decode at reduced scale, for the built-in ``openmedclip-base`` and a small random ViT at 224 px.

    uv run python benchmarks/decode.py [--repeats 5] [--data ../shared/data] [--before-rev REV]
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pydicom
import torch
from open_clip.transform import PreprocessCfg, image_transform_v2
from PIL import Image

from openmedclip.hardware import describe
from openmedclip.io import read_image
from openmedclip.models.families.open_clip.preprocess import OpenClipPreprocess

REPO_ROOT = Path(__file__).resolve().parents[1]
BEFORE_REV = "0a6fca0e85c912438f718b8c7952c99bd0746218"
"""The last revision whose read path converted every image to float32."""
SIZE = 224


def load_before_io(rev: str) -> Any:
    """``openmedclip.io`` as it was at ``rev``, importable next to the current one as ``_before_io``."""
    folder = Path(tempfile.mkdtemp(prefix="before-io-"))
    package = folder / "_before_io"
    package.mkdir()
    names = subprocess.run(["git", "ls-tree", "--name-only", f"{rev}:src/openmedclip/io"], cwd=REPO_ROOT,
                           check=True, capture_output=True, text=True).stdout.split()
    for name in names:
        text = subprocess.run(["git", "show", f"{rev}:src/openmedclip/io/{name}"], cwd=REPO_ROOT, check=True,
                              capture_output=True, text=True).stdout
        (package / name).write_text(text.replace("openmedclip.io", "_before_io"))
    sys.path.insert(0, str(folder))
    return importlib.import_module("_before_io")


def file_kinds(data: Path, scratch: Path) -> dict[str, list[Path]]:
    """A few real files per kind; 16-bit PNGs and MedMNIST PNGs are written from real data into ``scratch``."""
    pydicom_files = Path(pydicom.__file__).parent / "data" / "test_files"
    nibabel_files = Path(nib.__file__).parent / "tests" / "data"
    cxr = data / "txv_test_cxr"
    png16 = []
    for name in ("CT_small.dcm", "JPEG2000.dcm", "MR_small.dcm"):
        stored = pydicom.dcmread(pydicom_files / name).pixel_array
        path = scratch / f"{Path(name).stem}_16bit.png"
        Image.fromarray(stored.astype(np.uint16)).save(path)
        png16.append(path)
    medmnist = []
    with np.load(data / "medmnist" / "pneumoniamnist.npz") as npz:
        for i, pixels in enumerate(npz["test_images"][:40]):
            path = scratch / f"pneumoniamnist_{i}.png"
            Image.fromarray(pixels).save(path)
            medmnist.append(path)
    return {
        "JPEG small (MedPix <=384 px)": sorted((data / "medpix2_traindev").rglob("*.jpg"))[:40],
        "JPEG VQA-RAD (~1024 px)": sorted((data / "vqa_rad" / "images").glob("*.jpg"))[:20],
        "JPEG large (2373 px, 2321x1384)": [cxr / "covid-19-pneumonia-58-prior.jpg",
                                             data / "vqa_rad" / "images" / "synpic100132.jpg"],
        "PNG 8-bit CXR (512 px grey, RGB)": sorted(cxr.rglob("*.png")),
        "PNG 16-bit (from DICOM)": png16,
        "DICOM (CR 1024 px JPEG, CT, MR)": [*sorted(cxr.glob("*.dcm")), pydicom_files / "CT_small.dcm",
                                            pydicom_files / "MR_small.dcm"],
        "NIfTI (nibabel test data)": [nibabel_files / "anatomical.nii", nibabel_files / "example4d.nii.gz"],
        "MedMNIST PNG (28 px)": medmnist,
    }


def to_8bit(values: np.ndarray) -> Image.Image:
    values = values.astype(np.float32)
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    return Image.fromarray(np.rint(scaled).astype(np.uint8))


def card_picture(path: Path) -> Image.Image:
    """What a model card's pipeline feeds the transform (pydicom / nibabel for the formats PIL cannot read)."""
    name = path.name.lower()
    if name.endswith(".dcm"):
        return to_8bit(pydicom.dcmread(path).pixel_array).convert("RGB")
    if name.endswith((".nii", ".nii.gz")):
        volume = nib.load(path).dataobj
        index = (slice(None), slice(None), volume.shape[2] // 2) + (0,) * (len(volume.shape) - 3)
        return to_8bit(np.asanyarray(volume[index])).convert("RGB")
    return Image.open(path).convert("RGB")


def pipelines(preprocess: OpenClipPreprocess, before: Any) -> dict[str, Callable[[Path], torch.Tensor]]:
    transform = preprocess.transform
    return {
        "card": lambda p: transform(card_picture(p)),
        "before": lambda p: transform(before.to_model_input(before.read_image(p))),
        "after": lambda p: preprocess(read_image(p)),
        "reduced": lambda p: preprocess(read_image(p, target_size=preprocess.target_size)),
    }


def time_table(kinds: dict[str, list[Path]], runs: dict[str, Callable[[Path], torch.Tensor]], repeats: int) -> None:
    """Per file, every pipeline in turn, ``repeats`` times; a file's time is its best run (other work on a shared
    machine only ever adds time), a kind's time the mean over its files."""
    best: dict[tuple[Path, str], float] = {}
    for _ in range(repeats):
        for files in kinds.values():
            for path in files:
                for name, run in runs.items():
                    start = time.perf_counter()
                    run(path)
                    elapsed = (time.perf_counter() - start) * 1000
                    best[path, name] = min(best.get((path, name), elapsed), elapsed)
    print("| file kind | files | " + " | ".join(f"{name} ms" for name in runs) + " | after / card | reduced / card |")
    print("|---" * (len(runs) + 4) + "|")
    for kind, files in kinds.items():
        ms = {name: statistics.fmean(best[path, name] for path in files) for name in runs}
        cells = " | ".join(f"{ms[name]:.2f}" for name in runs)
        ratios = f"{ms['after'] / ms['card']:.2f} | {ms['reduced'] / ms['card']:.2f}"
        print(f"| {kind} | {len(files)} | {cells} | {ratios} |")


def check_identical(kinds: dict[str, list[Path]], runs: dict[str, Callable[[Path], torch.Tensor]]) -> None:
    for files in kinds.values():
        for path in files:
            if not torch.equal(runs["before"](path), runs["after"](path)):
                raise SystemExit(f"{path}: the model input differs from the read path at --before-rev")


def tiny_vit() -> tuple[OpenClipPreprocess, Callable[[torch.Tensor], torch.Tensor]]:
    """A small random ViT-B/16-shaped tower (2 layers, width 128) at 224 px with open_clip's eval transform."""
    import open_clip

    torch.manual_seed(0)
    vision = {"image_size": SIZE, "layers": 2, "width": 128, "head_width": 32, "patch_size": 16}
    text = {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}
    model = open_clip.CLIP(embed_dim=64, vision_cfg=vision, text_cfg=text).eval()
    return build_preprocess(SIZE), model.encode_image


def build_preprocess(size: int) -> OpenClipPreprocess:
    cfg = PreprocessCfg(size=size, interpolation="bicubic", resize_mode="shortest")
    return OpenClipPreprocess(image_transform_v2(cfg, is_train=False), {"size": size, "resize_mode": "shortest"})


def cosine_table(data: Path) -> None:
    from openmedclip.models import load_model

    jpegs = sorted(data.rglob("*.jpg"))
    base = load_model("openmedclip-base")
    models = {"openmedclip-base": (base.preprocess, lambda x: base.model.encode_image(x.to(base.dtype))),
              "tiny ViT (224 px)": tiny_vit()}
    print("\n| model | target size | JPEGs decoded at reduced scale (of all) | min cosine | mean cosine | "
          "files < 0.999 |")
    print("|---|---|---|---|---|---|")
    for name, (preprocess, encode) in models.items():
        target = preprocess.target_size
        cosines = []
        with torch.inference_mode():
            for path in jpegs:
                reduced = read_image(path, target_size=target)
                if "reduced_scale" not in reduced.meta:
                    continue
                pair = torch.stack([preprocess(read_image(path)), preprocess(reduced)])
                features = torch.nn.functional.normalize(encode(pair).float(), dim=-1)
                cosines.append(float(features[0] @ features[1]))
        low = sum(value < 0.999 for value in cosines)
        print(f"| {name} | {target} | {len(cosines)} ({len(jpegs)}) | {min(cosines):.5f} | "
              f"{statistics.mean(cosines):.5f} | {low} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data", type=Path, default=REPO_ROOT.parent / "shared" / "data")
    parser.add_argument("--before-rev", default=BEFORE_REV)
    parser.add_argument("--skip-cosine", action="store_true")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    print(f"CPU: {describe()}; Pillow {Image.__version__}; best of {args.repeats} interleaved runs per file\n")
    runs = pipelines(build_preprocess(SIZE), load_before_io(args.before_rev))
    with tempfile.TemporaryDirectory() as scratch:
        kinds = file_kinds(args.data, Path(scratch))
        check_identical(kinds, runs)
        time_table(kinds, runs, args.repeats)
    if not args.skip_cosine:
        cosine_table(args.data)


if __name__ == "__main__":
    main()
