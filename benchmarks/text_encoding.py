"""Text encoding per prompt set: seconds per ``text_classifier`` call, cold, from the disk cache and warm, fp32 and
bf16, with the tokens per prompt against the context length.

Run: ``uv run python benchmarks/text_encoding.py [--models openmedclip-base biomedclip-shaped] [--bank body_region]``
(``--tiny`` for a smoke run).

Prompt sets: 2 labels x the ``medical`` template set, and every class of a built-in sentence bank (``body_region``:
5 classes x 10 sentences). For each model and precision the model is loaded once and a call on other sentences warms
the kernels; then, per prompt set, ``openmedclip.tasks.zeroshot.text_classifier`` is timed three times: *cold*
(empty disk cache folder, memory cleared), *disk* (memory cleared, the disk entry of the cold call kept: a new
process) and *warm* (a second call in the same process). The disk cache lives in a temporary folder
(``$OPENMEDCLIP_CACHE``). "tokens/prompt" counts the non-padding tokens the tokenizer gives; "width" is how many
token columns it returns (the context length, unless openmedclip trims padding later, inside ``encode_texts``).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path

import torch

from common import (
    BIOMEDCLIP_SHAPED,
    LABELS,
    clear_text_memory,
    cpu_line,
    empty_text_cache,
    markdown_table,
    medical_prompts,
    model_source,
    timed,
)

WARMUP = {"warm-up": ["a sentence to warm the kernels up.", "another one, somewhat longer than the first one."]}


def prompt_sets(bank: str) -> dict[str, dict[str, list[str]]]:
    from openmedclip.prompts import load_bank
    from openmedclip.tasks.zeroshot import class_prompts

    sentences = load_bank(bank)
    prompts = class_prompts(sentences.class_names, bank=sentences)
    total = sum(len(group) for group in prompts.values())
    return {
        f"`medical` x {len(LABELS)} labels": medical_prompts(LABELS),
        f"bank `{bank}` ({total} sentences)": prompts,
    }


def token_counts(loaded, sentences: Sequence[str]) -> tuple[int, int, int]:
    """(fewest, most non-padding tokens per sentence, columns the tokenizer returns)."""
    tokens = loaded.tokenizer(list(sentences))
    pad_of = getattr(loaded.family, "text_pad_id", None)
    pad = pad_of(loaded.model) if pad_of is not None else None
    used = (tokens != (0 if pad is None else pad)).sum(dim=1)
    return int(used.min()), int(used.max()), int(tokens.shape[1])


def measure(name: str, source: str | Path, precision: str, sets: Mapping[str, Mapping[str, list[str]]],
            scratch: Path) -> list[list]:
    from openmedclip.models import load_model
    from openmedclip.tasks.zeroshot import text_classifier

    loaded = load_model(source, device="cpu", precision=precision)
    empty_text_cache(scratch)
    text_classifier(loaded, WARMUP)
    rows = []
    for set_name, prompts in sets.items():
        sentences = [sentence for group in prompts.values() for sentence in group]
        empty_text_cache(scratch)
        call = partial(text_classifier, loaded, prompts)
        cold, first = timed(call)
        clear_text_memory()
        disk, _ = timed(call)
        warm, again = timed(call)
        fewest, most, width = token_counts(loaded, sentences)
        rows.append([
            name, precision, set_name, len(sentences), f"{fewest}–{most}", f"{width} / {loaded.context_length}",
            f"{cold:.3f}", f"{disk:.4f}", f"{warm:.4f}", f"{1000 * cold / len(sentences):.1f}",
            "yes" if torch.equal(first, again) else "NO",
        ])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=None,
                        help=f"'{BIOMEDCLIP_SHAPED}' or anything load_model accepts (default: openmedclip-base and "
                        f"{BIOMEDCLIP_SHAPED}; with --tiny only the latter)")
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"])
    parser.add_argument("--bank", default="body_region", help="built-in sentence bank (default body_region)")
    parser.add_argument("--tiny", action="store_true", help="smoke run: the tiny BiomedCLIP-shaped model")
    args = parser.parse_args()
    if args.models is None:
        args.models = [BIOMEDCLIP_SHAPED] if args.tiny else ["openmedclip-base", BIOMEDCLIP_SHAPED]

    sets = prompt_sets(args.bank)
    rows = []
    with tempfile.TemporaryDirectory(prefix="openmedclip-bench-") as scratch:
        for model in args.models:
            name, source = model_source(model, Path(scratch), tiny=args.tiny, label="BERT-base")
            for precision in args.precisions:
                print(f"{name} {precision} ...", flush=True)
                rows += measure(name, source, precision, sets, Path(scratch))

    print()
    print(cpu_line())
    print()
    print(markdown_table(
        ["model", "precision", "prompt set", "prompts", "tokens/prompt", "width / context", "cold s", "disk s",
         "warm s", "cold ms/prompt", "same features"],
        rows,
    ))


if __name__ == "__main__":
    main()
