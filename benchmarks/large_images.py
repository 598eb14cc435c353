"""Peak memory and time of reading and preprocessing the largest images the size guard admits, per file kind.

Each case is written once into a scratch folder as a gradient (small on disk, except BMP and uncompressed DICOM),
then read with ``read_image`` and preprocessed for a 224 px open_clip model (``OpenClipPreprocess``) in a fresh
subprocess, once at full decode and once with ``target_size=224``. Columns: the case, its size (columns x rows),
for each read the peak resident memory of that subprocess (MB, from ``VmHWM``: unlike ``ru_maxrss`` it leaves out
the resident memory of the process that started it) and its read + preprocess time, the divisor of the reduced
read (``meta["reduced_scale"]``), and the peak resident memory after the imports, before reading (MB).

A second table gives, for real chest X-rays in ``--data`` (as stored, and the 2373 px one also as 8-bit PNG and
16-bit TIFF), the cosine between the image features of the full decode and of the reduced read at each model's
target size, for the built-in ``openmedclip-base`` (64 px) and a small random ViT at 224 px; '-' where the read
is not reduced.

    uv run python benchmarks/large_images.py [--cases png-rgb8,tiff-rgb-float32] [--scratch DIR] [--data DIR]
        [--skip-cosine]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import tifffile
from PIL import Image

from openmedclip.io.checks import MAX_PIXELS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from dicom_files import build_dicom

REPO_ROOT = Path(__file__).resolve().parents[1]
SIDE = int(MAX_PIXELS**0.5)
"""11585: the side of the largest square image the size guard admits."""

CHILD = """
import json, sys, time
from dataclasses import asdict
from open_clip.transform import PreprocessCfg, image_transform_v2
from openmedclip.io import read_image
from openmedclip.models.families.open_clip.preprocess import OpenClipPreprocess

def peak_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024

cfg = PreprocessCfg(size=224, interpolation="bicubic", resize_mode="shortest")
preprocess = OpenClipPreprocess(image_transform_v2(cfg, is_train=False), asdict(cfg))
target = None if sys.argv[2] == "full" else int(sys.argv[2])
base = peak_mb()
start = time.perf_counter()
image = read_image(sys.argv[1], target_size=target)
preprocess(image)
seconds = time.perf_counter() - start
print(json.dumps({"peak": peak_mb(), "base": base, "seconds": seconds,
                  "scale": image.meta.get("reduced_scale", 1), "shape": image.pixels.shape[:2]}))
"""


def gradient(rows: int, columns: int, dtype: type, channels: int = 0, top: float = 255.0) -> np.ndarray:
    """A left-to-right ramp of 256 steps from 0 to ``top`` (channels repeat it): compresses well."""
    ramp = (np.arange(columns) * 256 // columns * (top / 255.0)).astype(dtype)
    shape = (rows, columns, channels) if channels else (rows, columns)
    pixels = np.empty(shape, dtype)
    pixels[:] = ramp[:, None] if channels else ramp
    return pixels


def _pillow(pixels: np.ndarray, path: Path, **options: object) -> None:
    Image.fromarray(pixels).save(path, **options)


def _tiff(pixels: np.ndarray, path: Path, **options: object) -> None:
    tifffile.imwrite(path, pixels, compression="zlib", **options)


def _dicom(pixels: np.ndarray, path: Path, photometric: str, bits: int | None = None, **attributes: object) -> None:
    build_dicom(pixels, photometric, bits, **attributes).save_as(path, enforce_file_format=True)


def _nifti(path: Path) -> None:
    volume = np.empty((SIDE, SIDE, 1), np.int16)
    volume[:] = np.linspace(-1000, 1000, SIDE).astype(np.int16)[:, None, None]
    image = nib.Nifti1Image(volume, np.eye(4))
    image.header.set_slope_inter(0.5, -10.0)
    nib.save(image, path)


CASES: dict[str, tuple[str, Callable[[Path], None]]] = {
    "png-rgb8": ("png", lambda p: _pillow(gradient(11000, 12000, np.uint8, 3), p, compress_level=9)),
    "png-rgba8": ("png", lambda p: _pillow(gradient(SIDE, SIDE, np.uint8, 4), p, compress_level=9)),
    "png-grey16": ("png", lambda p: _pillow(gradient(SIDE, SIDE, np.uint16, top=65535), p, compress_level=9)),
    "jpeg-rgb8": ("jpg", lambda p: _pillow(gradient(8000, 8000, np.uint8, 3), p, quality=90)),
    "jpeg-rgb8-max": ("jpg", lambda p: _pillow(gradient(SIDE, SIDE, np.uint8, 3), p, quality=90)),
    "bmp-rgb8": ("bmp", lambda p: _pillow(gradient(SIDE, SIDE, np.uint8, 3), p)),
    "tiff-grey16": ("tif", lambda p: _tiff(gradient(SIDE, SIDE, np.uint16, top=65535), p)),
    "tiff-grey16-miniswhite": ("tif", lambda p: _tiff(gradient(SIDE, SIDE, np.uint16, top=65535), p,
                                                     photometric="miniswhite")),
    "tiff-grey-float32": ("tif", lambda p: _tiff(gradient(SIDE, SIDE, np.float32, top=1.0), p)),
    "tiff-rgb8": ("tif", lambda p: _tiff(gradient(SIDE, SIDE, np.uint8, 3), p, photometric="rgb")),
    "tiff-rgb16": ("tif", lambda p: _tiff(gradient(SIDE, SIDE, np.uint16, 3, 65535), p, photometric="rgb")),
    "tiff-rgb16-tiled": ("tif", lambda p: _tiff(gradient(SIDE, SIDE, np.uint16, 3, 65535), p, photometric="rgb",
                                                tile=(512, 512))),
    "tiff-rgb-float32": ("tif", lambda p: _tiff(gradient(SIDE, SIDE, np.float32, 3, 1.0), p, photometric="rgb")),
    "dicom-ct16": ("dcm", lambda p: _dicom(gradient(SIDE, SIDE, np.uint16, top=4095), p, "MONOCHROME2", 12,
                                           Modality="CT", RescaleSlope=1, RescaleIntercept=-1024)),
    "dicom-mono1-16": ("dcm", lambda p: _dicom(gradient(SIDE, SIDE, np.uint16, top=65535), p, "MONOCHROME1")),
    "dicom-rgb8": ("dcm", lambda p: _dicom(gradient(SIDE, SIDE, np.uint8, 3), p, "RGB")),
    "nifti-slice": ("nii.gz", _nifti),
}
"""Case name -> (file suffix, writer). Square cases are SIDE x SIDE."""


def case_file(name: str, scratch: Path) -> Path:
    """The file of case ``name`` in ``scratch``, written on first use (in a subprocess: this one stays small)."""
    path = scratch / f"{name}.{CASES[name][0]}"
    if not path.exists():
        subprocess.run([sys.executable, __file__, "--write", name, str(path)], check=True)
    return path


def measure(path: Path, target: str) -> dict[str, Any]:
    """Peak memory (MB), memory after imports (MB), seconds, reduced scale and pixel shape of one read and
    preprocess in a fresh process; ``error`` holds the last line of its traceback when it failed."""
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), target], capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def row(name: str, full: dict[str, Any], reduced: dict[str, Any]) -> str:
    """One table row; a failed read shows its error instead of its figures."""
    if "error" in full or "error" in reduced:
        return f"| {name} | {full.get('error') or reduced.get('error')} |"
    rows, columns = full["shape"]
    return (f"| {name} | {columns} x {rows} | {full['peak']:.0f} | {full['seconds']:.2f} | {reduced['peak']:.0f} | "
            f"{reduced['seconds']:.2f} | {reduced['scale']} | {full['base']:.0f} |")


def real_images(data: Path, scratch: Path) -> list[Path]:
    """The chest X-rays of ``data``, and its 2373 px radiograph written as an 8-bit PNG and a 16-bit TIFF."""
    cxr = data / "txv_test_cxr"
    files = sorted(path for path in cxr.rglob("*") if path.suffix.lower() in (".png", ".jpg", ".dcm"))
    grey = np.asarray(Image.open(cxr / "covid-19-pneumonia-58-prior.jpg").convert("L"))
    Image.fromarray(grey).save(scratch / "covid-2373-grey8.png")
    tifffile.imwrite(scratch / "covid-2373-grey16.tif", grey.astype(np.uint16) * 257, compression="zlib")
    return [*files, scratch / "covid-2373-grey8.png", scratch / "covid-2373-grey16.tif"]


def cosine_table(files: list[Path]) -> None:
    """Cosine of the features of the full and the reduced read, per file and model (see the module docstring)."""
    import torch

    from decode import tiny_vit
    from openmedclip.io import read_image
    from openmedclip.models import load_model

    base = load_model("openmedclip-base")
    models = {"openmedclip-base (64 px)": (base.preprocess, lambda x: base.model.encode_image(x.to(base.dtype))),
              "random ViT (224 px)": tiny_vit()}
    print("\n| file | size | " + " | ".join(f"{name}: scale, cosine" for name in models) + " |")
    print("|---|---|" + "---:|" * len(models))
    for path in files:
        full = read_image(path)
        cells = []
        for preprocess, encode in models.values():
            reduced = read_image(path, target_size=preprocess.target_size)
            if "reduced_scale" not in reduced.meta:
                cells.append("-")
                continue
            with torch.inference_mode():
                features = encode(torch.stack([preprocess(full), preprocess(reduced)])).float()
            features = torch.nn.functional.normalize(features, dim=-1)
            cells.append(f"{reduced.meta['reduced_scale']}, {float(features[0] @ features[1]):.5f}")
        rows, columns = full.pixels.shape[:2]
        print(f"| {path.name} | {columns} x {rows} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    parser.add_argument("--scratch", type=Path, default=None, help="folder to keep the written files in")
    parser.add_argument("--data", type=Path, default=REPO_ROOT.parent / "shared" / "data",
                        help="folder of real images (txv_test_cxr) for the cosine table")
    parser.add_argument("--skip-cosine", action="store_true", help="print the memory table only")
    parser.add_argument("--write", nargs=2, metavar=("CASE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write:
        CASES[args.write[0]][1](Path(args.write[1]))
        return
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="large-images-"))
    scratch.mkdir(parents=True, exist_ok=True)
    print("| case | size | full peak MB | full s | reduced peak MB | reduced s | reduced scale | imports MB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name in args.cases.split(","):
        path = case_file(name, scratch)
        print(row(name, measure(path, "full"), measure(path, "224")), flush=True)
    if not args.skip_cosine:
        warnings.simplefilter("ignore")  # min-max scaling of the 16-bit TIFF, said once per read
        cosine_table(real_images(args.data, scratch))


if __name__ == "__main__":
    main()
