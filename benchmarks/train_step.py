"""One training step of the built-in recipe: openmedclip's training step vs a plain open_clip step of the same
model, interleaved.

Run: ``uv run python benchmarks/train_step.py [--recipe configs/train/openmedclip-base.yaml] [--steps 5]
[--rounds 3] [--precision bf16]`` (``--tiny`` for a smoke run).

Both start from the same weights: the recipe's model (``configs/models/openmedclip-base-minilm.json``: ResNet-10-T
at 64 px + all-MiniLM-L6-v2 at context 48), its batch size, learning rate, weight decay, precision and loss
(InfoNCE) with the text transformer frozen.

- openmedclip: ``load_model`` -> ``train.towers.prepare_model`` (tower locking, the frozen-text cache) ->
  ``train.step.DualEncoder`` + ``train.step.backward_step`` with ``train.losses.build_loss`` and
  ``train.optim.build_optimizer``, then the optimizer step and the temperature clamp, as the training loop does.
- plain open_clip: ``open_clip.model.CustomTextCLIP`` from the same config, ``lock_text_tower()``, ``model(images,
  texts)``, ``open_clip.loss.ClipLoss``, AdamW with open_clip's parameter groups, no caching.

Inputs are fixed random pixels (no decoding or augmentation) and real MedPix captions tokenised beforehand by each
pipeline's own tokenizer. Captions are new to the text cache at every step, except in the "captions seen before"
row (one batch repeated: what epochs after the first, and the recipe's sentence-bank captions, look like).
A round runs ``--steps`` steps of every pipeline; steps/s is steps / median seconds per round. The loss of the
warm-up step (same weights, same batch) shows both compute the same thing, up to the dropout that open_clip keeps
active in its frozen text tower.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from pathlib import Path
from typing import Any

import torch

from common import DEFAULT_DATA, REPO_ROOT, cpu_line, markdown_table, median, timed

Step = Callable[[torch.Tensor, torch.Tensor], float]


def captions(data: Path) -> list[str]:
    """The distinct MedPix 2.0 captions (train, then dev), in file order."""
    seen: dict[str, None] = {}
    for split in ("train", "dev"):
        with (data / "medpix2_traindev" / f"descriptions_{split}.jsonl").open(encoding="utf-8") as lines:
            for line in lines:
                caption = (json.loads(line).get("Description") or {}).get("Caption")
                if caption:
                    seen.setdefault(caption.strip())
    return list(seen)


def resolve_package(reference: str) -> str:
    """A ``package:<name>/<path>`` reference of an openmedclip config as the folder it names."""
    if not reference.startswith("package:"):
        return reference
    package, _, relative = reference.removeprefix("package:").partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{reference}: package {package} is not installed")
    return str(Path(next(iter(spec.submodule_search_locations))) / relative)


def recipe_autocast(precision: str) -> Callable[[], AbstractContextManager]:
    return nullcontext if precision == "fp32" else partial(torch.autocast, "cpu", dtype=torch.bfloat16)


class OpenMedClipStep:
    """openmedclip's training step (what ``train.loop`` does per optimizer step, without logging and schedule)."""

    def __init__(self, config: Any, state: dict[str, torch.Tensor]):
        from openmedclip.models import load_model
        from openmedclip.precision import autocast_factory, grad_scaler
        from openmedclip.train.losses import build_loss
        from openmedclip.train.optim import build_optimizer
        from openmedclip.train.step import DualEncoder
        from openmedclip.train.towers import prepare_model

        loaded = load_model(config.model, device="cpu", precision="fp32")
        loaded.model.load_state_dict(state)
        self.loaded, text_encoder = prepare_model(
            loaded, loss=config.loss, lock_image=config.lock_image, lock_text=config.lock_text,
            grad_checkpointing=config.grad_checkpointing,
        )
        self.model = self.loaded.model
        self.tokenize = self.loaded.tokenizer
        self.encoder = DualEncoder(self.model, text_encoder)
        self.optimizer = build_optimizer(self.model, config.lr, config.weight_decay)
        self.loss_fn = build_loss(config.loss, gather=config.gather_features)
        self.autocast = autocast_factory(config.precision, self.loaded.device)
        self.scaler = grad_scaler(config.precision, self.loaded.device)

    def __call__(self, pixels: torch.Tensor, tokens: torch.Tensor) -> float:
        from openmedclip.train.losses import MAX_LOGIT_SCALE
        from openmedclip.train.step import backward_step

        loss = backward_step(self.encoder, [(pixels, tokens)], self.loss_fn, self.autocast, self.scaler.scale)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            self.model.logit_scale.clamp_(max=math.log(MAX_LOGIT_SCALE))
        return float(loss.detach())


class OpenClipStep:
    """A plain open_clip training step (as in open_clip's ``train_one_epoch``), text tower locked, no caching."""

    def __init__(self, config: Any, model_cfg: dict[str, Any], state: dict[str, torch.Tensor]):
        import open_clip
        from open_clip.loss import ClipLoss

        cfg = copy.deepcopy(model_cfg)
        text = cfg["text_cfg"]
        text["hf_model_name"] = resolve_package(text["hf_model_name"])
        text["hf_model_pretrained"] = False
        cfg["vision_cfg"]["timm_model_pretrained"] = False
        self.model = open_clip.model.CustomTextCLIP(**cfg)
        self.model.load_state_dict(state)
        self.model.train()
        self.model.lock_text_tower(unlocked_layers=0, freeze_layer_norm=True)
        self.tokenize = open_clip.tokenizer.HFTokenizer(
            resolve_package(text["hf_tokenizer_name"]), context_length=int(text["context_length"])
        )

        def exclude(name: str, param: torch.nn.Parameter) -> bool:
            return param.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name

        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            [{"params": [p for n, p in named if exclude(n, p)], "weight_decay": 0.0},
             {"params": [p for n, p in named if not exclude(n, p)], "weight_decay": config.weight_decay}],
            lr=config.lr, betas=(0.9, 0.98), eps=1e-6,
        )
        self.loss_fn = ClipLoss()
        self.autocast = recipe_autocast(config.precision)

    def __call__(self, pixels: torch.Tensor, tokens: torch.Tensor) -> float:
        with self.autocast():
            image_features, text_features, logit_scale = self.model(pixels, tokens)
            loss = self.loss_fn(image_features, text_features, logit_scale)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        with torch.no_grad():
            self.model.logit_scale.clamp_(0, math.log(100))
        return float(loss.detach())


class Pipeline:
    """A training step with the batches it sees: its own tokens of the given caption batches, fixed pixels."""

    def __init__(self, step: Any, batches: Sequence[Sequence[str]], pixels: Callable[[int], torch.Tensor]):
        self.step: Step = step
        self.tokens = [step.tokenize(list(batch)) for batch in batches]
        self.pixels = pixels
        self.next = 0

    def run(self, steps: int) -> float:
        """Seconds for ``steps`` steps on the next batches (the last batch repeats if they run out)."""

        def go() -> None:
            for _ in range(steps):
                k = min(self.next, len(self.tokens) - 1)
                self.step(self.pixels(k), self.tokens[k])
                self.next += 1

        return timed(go)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, default=REPO_ROOT / "configs" / "train" / "openmedclip-base.yaml")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the real data folder (../shared/data)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the recipe's (64)")
    parser.add_argument("--steps", type=int, default=5, help="steps of each pipeline per round (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--precision", default=None, help="default: the recipe's ('auto' resolves per CPU)")
    parser.add_argument("--tiny", action="store_true", help="smoke run: batch 8, 2 steps, 1 round")
    args = parser.parse_args()
    if args.tiny:
        args.batch_size, args.steps, args.rounds = 8, 2, 1

    from openmedclip.precision import resolve_precision
    from openmedclip.train.config import load_recipe

    config = load_recipe(args.recipe)
    precision = resolve_precision(args.precision or config.precision, torch.device("cpu"))
    config = config.model_copy(update={"precision": precision})
    model_path = Path(config.model)
    if not model_path.is_absolute() and not model_path.exists():
        config = config.model_copy(update={"model": str(REPO_ROOT / model_path)})
    batch = args.batch_size or config.batch_size
    pool = captions(args.data)
    needed = 1 + args.rounds * args.steps
    if len(pool) < needed * batch:
        raise SystemExit(f"{len(pool)} distinct captions give {len(pool) // batch} batches of {batch}; "
                         f"{needed} are needed: lower --steps or --rounds")
    batches = [pool[k * batch : (k + 1) * batch] for k in range(needed)]
    image_size = int(json.loads(Path(config.model).read_text())["model_cfg"]["vision_cfg"]["image_size"])

    def pixels(k: int) -> torch.Tensor:
        return torch.randn(batch, 3, image_size, image_size, generator=torch.Generator().manual_seed(k))

    from openmedclip.models import load_model

    torch.manual_seed(config.seed)
    source = load_model(config.model, device="cpu", precision="fp32")
    state = {key: value.detach().clone() for key, value in source.model.state_dict().items()}
    model_cfg = json.loads(Path(config.model).read_text())["model_cfg"]
    del source

    pipelines = {
        "plain open_clip (ClipLoss, text tower locked, no cache)": Pipeline(
            OpenClipStep(config, model_cfg, state), batches, pixels),
        "openmedclip training step, new captions": Pipeline(OpenMedClipStep(config, state), batches, pixels),
        "openmedclip training step, captions seen before": Pipeline(
            OpenMedClipStep(config, state), batches[:1], pixels),
    }
    warmup_loss = {}
    for name, pipeline in pipelines.items():
        warmup_loss[name] = pipeline.step(pixels(0), pipeline.tokens[0])
        pipeline.next = 1
    seconds: dict[str, list[float]] = {name: [] for name in pipelines}
    for round_index in range(args.rounds):
        for name, pipeline in pipelines.items():
            seconds[name].append(pipeline.run(args.steps))
            print(f"round {round_index + 1}/{args.rounds}: {name}: {seconds[name][-1]:.2f} s", flush=True)

    base = args.steps / median(next(iter(seconds.values())))
    rows = []
    for name in pipelines:
        rate = args.steps / median(seconds[name])
        rows.append([name, f"{rate:.2f}", f"{1000 / rate:.0f}", f"{rate / base:.2f}", f"{warmup_loss[name]:.5f}"])
    print()
    print(cpu_line())
    print(f"recipe {args.recipe.name}: {Path(config.model).name}, batch {batch}, {image_size} px, precision "
          f"{config.precision}, lock_text={config.lock_text}, loss {config.loss}; {args.rounds} round(s) x "
          f"{args.steps} step(s), interleaved")
    print()
    print(markdown_table(["training step", "steps/s", "ms/step", "× plain open_clip", "warm-up step loss"], rows))


if __name__ == "__main__":
    main()
