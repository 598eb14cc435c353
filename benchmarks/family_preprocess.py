"""The chest X-ray families' preprocesses on real files: grey pictures kept grey against the RGB model input.

Run: ``uv run python benchmarks/family_preprocess.py [--data ../shared/data] [--repeats 5]``

For each file of ``txv_test_cxr`` (PNG, JPEG, DICOM) and each family preprocess (CheXzero, BioViL, MedCLIP,
GLoRIA), ms per file (each file's best of ``--repeats``, the two paths interleaved, then averaged over the files):

* *RGB input*: ``family(to_model_input(image))``, the 8-bit RGB picture that the families were given before;
* *now*: ``family(image)``, which takes the grey picture itself (CheXzero also resamples a grey picture stored as
  RGB as one channel).

Both give the same tensor, bit for bit (checked here, and in ``tests/io/test_fast_read_path.py``). The file is read
once, beforehand; only the preprocess is timed.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from common import DEFAULT_DATA, best_of, cpu_line, markdown_table
from openmedclip.io import MedicalImage, read_image, to_model_input
from openmedclip.models.families.biovil.preprocess import BiovilPreprocess
from openmedclip.models.families.chexzero.preprocess import ChexzeroPreprocess
from openmedclip.models.families.gloria.preprocess import GloriaPreprocess
from openmedclip.models.families.medclip.preprocess import MedclipPreprocess

FAMILIES = {"CheXzero": ChexzeroPreprocess(), "BioViL": BiovilPreprocess(512, 480),
            "MedCLIP": MedclipPreprocess(224), "GLoRIA": GloriaPreprocess()}


def seconds(family: Callable[[Any], torch.Tensor], image: MedicalImage, repeats: int) -> tuple[float, float]:
    """Best seconds of ``family`` on the RGB model input and on ``image`` itself, after checking both agree."""
    assert torch.equal(family(image), family(to_model_input(image))), image.path
    return best_of(repeats, lambda: family(to_model_input(image))), best_of(repeats, lambda: family(image))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the real data folder (../shared/data)")
    parser.add_argument("--repeats", type=int, default=5, help="runs per file and path; the best counts (5)")
    args = parser.parse_args()
    files = sorted(p for p in (args.data / "txv_test_cxr").rglob("*") if p.suffix.lower() in (".png", ".jpg", ".dcm"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # min-max scaling of 16-bit data warns, as it should
        images = [read_image(path) for path in files]
        rows = []
        for name, family in FAMILIES.items():
            before = now = 0.0
            for image in images:
                rgb_input, grey_kept = seconds(family, image, args.repeats)
                before, now = before + rgb_input, now + grey_kept
            count = len(images)
            rows.append([name, count, f"{1000 * before / count:.2f}", f"{1000 * now / count:.2f}",
                         f"{before / now:.2f}x"])
    print(cpu_line())
    print()
    print(markdown_table(["family", "files", "RGB input ms", "now ms", "speed-up"], rows))


if __name__ == "__main__":
    main()
