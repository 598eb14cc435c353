"""Grey pictures stored as RGB: how many real JPEGs are, and what resampling them as one channel saves.

Run: ``uv run python benchmarks/grey_pictures.py [--data ../shared/data] [--every 4]``

For every ``--every``-th MedPix and VQA-RAD JPEG: whether its three channels are equal everywhere
(``openmedclip.io.convert.grey_if_uniform``). For a spread of them, ms per picture (best of 7): the check itself,
and the resize of open_clip's 224 px eval transform (bicubic, shortest side) on the RGB picture and on its one
channel.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from common import DEFAULT_DATA, best_of, cpu_line, markdown_table
from openmedclip.io.convert import grey_if_uniform

SOURCES = {"MedPix": "medpix2_traindev/images", "VQA-RAD": "vqa_rad/images"}


def shortest_side(size: tuple[int, int], target: int = 224) -> tuple[int, int]:
    scale = target / min(size)
    return round(size[0] * scale), round(size[1] * scale)


def milliseconds(picture: Image.Image, channel: Image.Image) -> list[str]:
    """Best of 7, in ms: the grey check, the resize of the RGB picture, the resize on the grey path."""
    size = shortest_side(picture.size)
    steps = (lambda: grey_if_uniform(picture), lambda: picture.resize(size, Image.Resampling.BICUBIC),
             lambda: channel.resize(size, Image.Resampling.BICUBIC))
    return [f"{1000 * best_of(7, step):.2f}" for step in steps]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the real data folder (../shared/data)")
    parser.add_argument("--every", type=int, default=4, help="take every n-th JPEG of each source (default 4)")
    args = parser.parse_args()
    counts, timings = [], []
    for name, folder in SOURCES.items():
        files = sorted((args.data / folder).glob("*.jpg"))[:400 : args.every]
        grey = 0
        for index, path in enumerate(files):
            with Image.open(path) as opened:
                picture = opened.convert("RGB")
            channel = grey_if_uniform(picture)
            grey += channel.mode == "L"
            if index % 10 == 0:
                timings.append([name, f"{picture.width} x {picture.height}",
                                "grey" if channel.mode == "L" else "colour", *milliseconds(picture, channel)])
        counts.append([name, len(files), grey])
    print(cpu_line())
    print()
    print(markdown_table(["source", "JPEGs", "grey pictures stored as RGB"], counts))
    print()
    print(markdown_table(["source", "size", "content", "check ms", "resize as RGB ms", "resize on the grey path ms"],
                         timings))


if __name__ == "__main__":
    main()
