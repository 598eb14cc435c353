"""End-to-end zero-shot on real files: the BiomedCLIP model-card pipeline vs openmedclip's ``zero_shot`` per option.

Run: ``uv run python benchmarks/end_to_end.py [--images 255] [--repeats 1] [--options defaults fp32 bf16 ...]``
(``--tiny`` for a smoke run with a tiny model on 12 files).

Both pipelines classify the same real files (MedPix and VQA-RAD JPEGs, chest X-ray PNG/JPEG and DICOM, MedMNIST
test images written as PNG; see ``common.real_image_files``) into 2 labels x the ``medical`` template set, with one
BiomedCLIP-shaped model (ViT-B/16 + BERT-base at context 256, random weights; ``common.write_biomedclip_folder``).

- The model-card pipeline is plain open_clip in fp32, as on BiomedCLIP's model card:
  ``create_model_from_pretrained('local-dir:...')``, the prompts tokenised once, then per batch
  ``torch.stack([preprocess(Image.open(p)) ...])`` and ``model(images, texts)``; class embeddings are the
  re-normalised mean of each class's prompt features, as ``zero_shot`` makes them. PIL cannot open DICOM, so for
  ``.dcm`` files it reads them with pydicom instead (VOI LUT, MONOCHROME1 inverted, min-max to 8 bits).
- Each openmedclip row is one ``zero_shot(model, paths, labels, templates='medical', ...)`` call on a freshly
  loaded model (load not timed), with the row's options: ``load_model`` precision and ``num_workers``; left out,
  the engine picks the loader workers and torch threads itself (the table shows what it ran with). ``defaults``
  passes nothing: whatever openmedclip does by default. ``reduced`` adds the opt-in reduced-scale JPEG decoding
  (``read_options={"target_size": ...}``, the model's input side). ``no-grey-path`` is the defaults with grey pictures
  stored as RGB resampled as RGB again (``grey_if_uniform`` undone), to measure what that step is worth.
  Every call starts with empty text caches (a new ``$OPENMEDCLIP_CACHE`` folder, memory cleared), except the
  "repeat call" row, whose prompts are encoded once before the timed call.

Every pipeline first runs once on a couple of files with other labels (so kernels are warm, text caches are not);
then the rounds run every pipeline once, interleaved. images/s is files / median seconds per call. Agreement is
the share of files where the model card's top-1 margin exceeds ``--margin`` on which openmedclip picks the same
label; the cosine compares each file's image features with the model card's. "÷ image tower only" divides each
rate by that of the defaults' image tower alone on pixels preprocessed beforehand (timed in the same rounds).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from unittest.mock import patch

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from common import (
    DEFAULT_DATA,
    LABELS,
    cpu_line,
    empty_text_cache,
    markdown_table,
    median,
    medical_prompts,
    real_image_files,
    timed,
    with_threads,
    write_biomedclip_folder,
)
from openmedclip.precision import precision_name

WARMUP_LABELS = ("warm-up finding", "other warm-up finding")


@dataclass(frozen=True)
class Option:
    """One openmedclip row: what differs from openmedclip's defaults."""

    title: str
    precision: str | None = None
    """``load_model(precision=...)``; None passes nothing."""
    workers: int | None = None
    """``num_workers`` of ``zero_shot``; None passes nothing."""
    cached_prompts: bool = False
    """Encode the prompts once before the timed call (a repeat call: the text classifier comes from the cache)."""
    reduced_decoding: bool = False
    """``read_options={"target_size": <the model's input side>}``: JPEGs decoded at reduced scale (an opt-in)."""
    undone: tuple[str, ...] = ()
    """openmedclip functions replaced by the identity for the call, to measure what each one is worth."""


OPTIONS: dict[str, Option] = {
    "defaults": Option("openmedclip `zero_shot` defaults"),
    "fp32": Option("openmedclip precision='fp32'", precision="fp32"),
    "bf16": Option("openmedclip precision='bf16'", precision="bf16"),
    "bf16-w0": Option("openmedclip bf16, num_workers=0", precision="bf16", workers=0),
    "bf16-w1": Option("openmedclip bf16, num_workers=1", precision="bf16", workers=1),
    "defaults-cached": Option("openmedclip defaults, repeat call (prompts cached)", cached_prompts=True),
    "reduced": Option("openmedclip defaults + reduced-scale JPEG decoding (opt-in `read_options`)",
                      reduced_decoding=True),
    "no-grey-path": Option("openmedclip defaults, grey RGB pictures resampled as RGB",
                           undone=("openmedclip.models.families.open_clip.preprocess.grey_if_uniform",
                                   "openmedclip.models.families.open_clip.native.preprocess.grey_if_uniform")),
}
DEFAULT_OPTIONS = ("defaults", "fp32", "bf16", "bf16-w0", "defaults-cached")


@dataclass
class Outcome:
    """What one pipeline gave: per-file probabilities and image features (NaN rows for unread files)."""

    probabilities: np.ndarray
    features: np.ndarray
    note: str = ""


Pipeline = Callable[[Sequence[Path], Sequence[str]], tuple[float, Outcome]]

TOWER = "image tower only"
"""Classify files into labels: (seconds of the timed part, outcome)."""


# -- the model-card pipeline --------------------------------------------------------------------------------------


def open_as_pil(path: Path) -> Image.Image:
    """``Image.open`` as on the model card; DICOM (which PIL cannot open) through pydicom, to 8 bits."""
    if path.suffix.lower() != ".dcm":
        return Image.open(path)
    import pydicom
    from pydicom.pixels import apply_voi_lut

    dataset = pydicom.dcmread(path)
    pixels = apply_voi_lut(dataset.pixel_array, dataset).astype(np.float64)
    if dataset.get("PhotometricInterpretation") == "MONOCHROME1":
        pixels = pixels.max() - pixels
    low, high = pixels.min(), pixels.max()
    return Image.fromarray(np.round((pixels - low) / max(high - low, 1e-12) * 255).astype(np.uint8))


class ModelCard:
    """BiomedCLIP's model-card zero-shot code, in plain open_clip and fp32."""

    def __init__(self, folder: Path, batch_size: int, device: str):
        import open_clip

        self.model, self.preprocess = open_clip.create_model_from_pretrained(f"local-dir:{folder}")
        self.tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
        self.model.to(device).eval()
        self.context_length = int(self.tokenizer.context_length)
        self.batch_size = batch_size
        self.device = device

    def __call__(self, paths: Sequence[Path], labels: Sequence[str]) -> tuple[float, Outcome]:
        return timed(lambda: self.classify(paths, labels))

    def classify(self, paths: Sequence[Path], labels: Sequence[str]) -> Outcome:
        prompts = medical_prompts(labels)
        sentences = [sentence for group in prompts.values() for sentence in group]
        sizes = [len(group) for group in prompts.values()]
        texts = self.tokenizer(sentences, context_length=self.context_length).to(self.device)
        probabilities, features = [], []
        for start in range(0, len(paths), self.batch_size):
            batch = paths[start : start + self.batch_size]
            images = torch.stack([self.preprocess(open_as_pil(path)) for path in batch]).to(self.device)
            with torch.no_grad():
                image_features, text_features, logit_scale = self.model(images, texts)
                classes = F.normalize(torch.stack([c.mean(dim=0) for c in torch.split(text_features, sizes)]), dim=-1)
                probabilities.append((logit_scale * image_features @ classes.T).softmax(dim=-1).cpu())
            features.append(image_features.cpu())
        return Outcome(torch.cat(probabilities).numpy(), torch.cat(features).double().numpy())


# -- openmedclip ----------------------------------------------------------------------------------------------------


@contextmanager
def captured_image_features(store: list[Any]) -> Iterator[None]:
    """Record the ``EncodedImages`` that ``zero_shot`` computes (its call of ``encode_images``), untouched."""
    module: Any = importlib.import_module("openmedclip.tasks.zeroshot")
    original = getattr(module, "encode_images", None)
    if original is None:
        yield
        return

    def recording(*args: Any, **kwargs: Any) -> Any:
        encoded = original(*args, **kwargs)
        store.append(encoded)
        return encoded

    module.encode_images = recording
    try:
        yield
    finally:
        module.encode_images = original


@contextmanager
def recorded_loader_workers() -> Iterator[list[int]]:
    """The loader workers ``encode_images`` picks when it is left to choose (appended to the yielded list)."""
    engine: Any = importlib.import_module("openmedclip.embed.engine")
    original = engine.loader_workers
    chosen: list[int] = []

    def recording(*args: Any, **kwargs: Any) -> int:
        chosen.append(original(*args, **kwargs))
        return chosen[-1]

    engine.loader_workers = recording
    try:
        yield chosen
    finally:
        engine.loader_workers = original


def _spread_rows(n: int, indices: Sequence[int], rows: np.ndarray) -> np.ndarray:
    full = np.full((n, rows.shape[1]), np.nan)
    full[list(indices)] = rows
    return full


class OpenMedClip:
    """``zero_shot`` with one option, on a model loaded afresh for every call."""

    def __init__(self, option: Option, folder: Path, device: str, scratch: Path):
        self.option = option
        self.folder = folder
        self.device = device
        self.scratch = scratch
        self.threads_used = ""
        self.precision_used = ""
        self.workers_used = 0

    def __call__(self, paths: Sequence[Path], labels: Sequence[str]) -> tuple[float, Outcome]:
        from openmedclip.models import load_model
        from openmedclip.tasks.zeroshot import text_classifier, zero_shot

        load_options: dict[str, Any] = {"precision": self.option.precision} if self.option.precision else {}
        loaded = load_model(self.folder, device=self.device, **load_options)
        self.precision_used = str(loaded.dtype).removeprefix("torch.")
        encode_options: dict[str, Any] = {"num_workers": self.option.workers} if self.option.workers is not None else {}
        if self.option.reduced_decoding:
            encode_options["read_options"] = {"target_size": loaded.preprocess.target_size}
        empty_text_cache(self.scratch)
        if self.option.cached_prompts:
            text_classifier(loaded, medical_prompts(labels))
        store: list[Any] = []
        threads_seen: list[int] = []
        encode_image = loaded.model.encode_image

        def counting_encode_image(*args: Any, **kwargs: Any) -> Any:
            threads_seen.append(torch.get_num_threads())  # what the engine runs the image tower with
            return encode_image(*args, **kwargs)

        loaded.model.encode_image = counting_encode_image

        def call() -> Any:
            with captured_image_features(store):
                result = zero_shot(loaded, [str(p) for p in paths], list(labels), templates="medical",
                                   **encode_options)
            self.threads_used = ",".join(str(n) for n in sorted(set(threads_seen)))
            return result

        with recorded_loader_workers() as chosen, ExitStack() as undone:
            for target in self.option.undone:
                undone.enter_context(patch(target, lambda value: value))
            seconds, result = timed(call)
        self.workers_used = chosen[-1] if chosen else (self.option.workers or 0)
        index = {str(p): i for i, p in enumerate(paths)}
        rows = [index[item] for item in result.items]
        if store:
            features = store[-1].features.double().numpy()
        else:  # zero_shot no longer calls encode_images itself: encode once more, untimed, for the comparison
            from openmedclip.embed import encode_images

            features = encode_images(loaded, [str(paths[i]) for i in rows], **encode_options).features.double().numpy()
        note = f"{len(result.errors)} unread" if result.errors else ""
        gc.collect()
        outcome = Outcome(_spread_rows(len(paths), rows, result.probabilities),
                          _spread_rows(len(paths), rows, features), note)
        return seconds, outcome


class TowerOnly:
    """The image tower alone, loaded with openmedclip's defaults, on the files' pixels preprocessed beforehand
    (untimed): the ceiling of any end-to-end pipeline with that model and precision."""

    def __init__(self, folder: Path, device: str, batch_size: int):
        from openmedclip.models import load_model

        self.loaded = load_model(folder, device=device)
        self.batch_size = batch_size
        self.pixels: dict[tuple[Path, ...], torch.Tensor] = {}

    def __call__(self, paths: Sequence[Path], labels: Sequence[str]) -> tuple[float, Outcome]:
        from openmedclip.io import read_image

        key = tuple(paths)
        if key not in self.pixels:
            batch = [self.loaded.preprocess(read_image(path)) for path in paths]
            self.pixels[key] = torch.stack(batch).to(self.loaded.device, self.loaded.dtype)
        pixels = self.pixels[key]
        model = self.loaded.model
        with torch.inference_mode():
            seconds, _ = timed(lambda: [model.encode_image(pixels[start : start + self.batch_size]).float().cpu()
                                        for start in range(0, len(pixels), self.batch_size)])
        empty = np.full((len(paths), len(labels)), np.nan)
        return seconds, Outcome(empty, empty)


# -- comparison -----------------------------------------------------------------------------------------------------


def agreement(reference: Outcome, other: Outcome, margin: float) -> tuple[int, int]:
    """(files where both pick the same top-1, files where the reference's top-1 margin exceeds ``margin``)."""
    ordered = np.sort(reference.probabilities, axis=1)
    confident = (ordered[:, -1] - ordered[:, -2]) > margin
    confident &= ~np.isnan(other.probabilities).any(axis=1)
    same = reference.probabilities.argmax(axis=1) == np.nan_to_num(other.probabilities).argmax(axis=1)
    return int((same & confident).sum()), int(confident.sum())


def cosines(reference: Outcome, other: Outcome) -> np.ndarray:
    read = ~np.isnan(other.features).any(axis=1)
    a, b = reference.features[read], other.features[read]
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def run_rounds(
    pipelines: dict[str, Pipeline],
    files: Sequence[Path],
    repeats: int,
    warmup: int,
    threads: int,
) -> tuple[dict[str, list[float]], dict[str, Outcome]]:
    """Warm every pipeline up, then ``repeats`` interleaved rounds; seconds per call and the first outcome."""
    for name, pipeline in pipelines.items():
        print(f"warm-up: {name}", flush=True)
        with_threads(threads, partial(pipeline, files[:warmup], WARMUP_LABELS))
    seconds: dict[str, list[float]] = {name: [] for name in pipelines}
    outcomes: dict[str, Outcome] = {}
    for round_index in range(repeats):
        for name, pipeline in pipelines.items():
            took, outcome = with_threads(threads, partial(pipeline, files, LABELS))
            seconds[name].append(took)
            outcomes.setdefault(name, outcome)
            print(f"round {round_index + 1}/{repeats}: {name}: {took:.1f} s", flush=True)
    return seconds, outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the real data folder (../shared/data)")
    parser.add_argument("--images", type=int, default=255, help="files to classify (default 255)")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved rounds (default 1)")
    parser.add_argument("--warmup", type=int, default=2, help="files of each pipeline's warm-up call (default 2)")
    parser.add_argument("--batch-size", type=int, default=32, help="the model card's batch size (default 32)")
    parser.add_argument("--margin", type=float, default=0.01, help="top-1 margin of a confident file (0.01)")
    parser.add_argument("--options", nargs="+", choices=list(OPTIONS), default=list(DEFAULT_OPTIONS),
                        help=f"openmedclip rows (default: {' '.join(DEFAULT_OPTIONS)})")
    parser.add_argument("--device", default="cpu", help="torch device of both pipelines (default cpu)")
    parser.add_argument("--tiny", action="store_true", help="smoke run: tiny model, 12 files")
    args = parser.parse_args()
    if args.tiny:
        args.images = min(args.images, 12)

    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="openmedclip-bench-") as scratch:
        files = real_image_files(args.data, args.images, Path(scratch) / "medmnist")
        folder = write_biomedclip_folder(Path(scratch) / "model", tiny=args.tiny)
        card = ModelCard(folder, args.batch_size, args.device)
        pipelines: dict[str, Pipeline] = {"model card": card}
        ours = {name: OpenMedClip(OPTIONS[name], folder, args.device, Path(scratch)) for name in args.options}
        pipelines.update(ours)
        tower = pipelines[TOWER] = TowerOnly(folder, args.device, args.batch_size)
        seconds, outcomes = run_rounds(pipelines, files, args.repeats, args.warmup, threads)

    reference = outcomes["model card"]
    base_rate = len(files) / median(seconds["model card"])
    tower_rate = len(files) / median(seconds[TOWER])
    rows = [["BiomedCLIP model card: open_clip fp32, `preprocess(Image.open(p))` loop, `model(images, texts)` per "
             "batch", f"{base_rate:.2f}", "1.00", f"{base_rate / tower_rate:.0%}", "—", "—", "float32", threads, 0,
             ""]]
    for name, pipeline in ours.items():
        rate = len(files) / median(seconds[name])
        same, confident = agreement(reference, outcomes[name], args.margin)
        cos = cosines(reference, outcomes[name])
        workers = pipeline.workers_used
        rows.append([
            pipeline.option.title, f"{rate:.2f}", f"{rate / base_rate:.2f}", f"{rate / tower_rate:.0%}",
            f"{same}/{confident} ({100 * same / max(confident, 1):.1f} %)",
            f"{cos.mean():.5f} / {cos.min():.5f}", pipeline.precision_used, pipeline.threads_used, workers,
            outcomes[name].note,
        ])
    model = "tiny test_vit + 2-layer BERT" if args.tiny else "ViT-B/16 + BERT-base, context 256"
    print()
    print(f"{cpu_line()}")
    print(f"{len(files)} real files, BiomedCLIP-shaped model ({model}, random weights), labels {list(LABELS)} x "
          f"`medical` templates, {args.repeats} interleaved round(s), device {args.device}")
    print(f"image tower only ({precision_name(tower.loaded.dtype)}, pixels preprocessed beforehand, "
          f"batch {args.batch_size}): {tower_rate:.2f} images/s")
    print()
    print(markdown_table(
        ["pipeline", "images/s", "× model card", "÷ image tower only", f"top-1 agreement (margin > {args.margin})",
         "image-feature cosine mean / min", "weights", "torch threads", "loader workers", "notes"],
        rows,
    ))


if __name__ == "__main__":
    main()
