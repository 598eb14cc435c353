"""`train(config)`: the training loop, from a `TrainConfig` to checkpoints, a JSONL log and a `TrainSummary`.

Datasets are read into memory (`DataSource`, planned by `BatchPlan`) or, when every dataset spec says
``streaming: true`` (webdataset shards), streamed (`openmedclip.data.streaming.ShardStream`, planned by
`StreamPlan`): each process then reads its own endless, weight-mixed stream and an epoch is ``epoch_size`` pairs.

Resume restores the weights, optimizer, schedule, gradient scaler, RNG states and the epoch and step counters. In
memory, the epoch's order is recomputed and the run continues at the next batch. A stream has no position to
restore: the interrupted epoch's stream is started again (it is the same stream, seeded by seed, epoch, rank and
loader worker) and the batches already trained on are read, decoded and dropped before training continues, so
the run continues as without the interruption as long as the number of processes and loader workers is the
same (a warning says when it is not). Skipping costs reading and decoding those samples once more.

An unreadable training item (a truncated or empty image file, an undecodable streamed sample) is left out of its
batch: the first time it is met it is logged (a ``skipped_item`` record naming it and its problem, and a warning),
and it counts, once however often it is drawn, against ``max_bad_items``. Past that limit every process stops
together with `TooManyBadItemsError`, after checkpointing the last completed step. Batches that lost items are
smaller (processes may hold different numbers of pairs); a step in which some process has no readable pair at all
changes no weights, on any process, but counts as a step so the batch plan stays in place.
"""

from __future__ import annotations

import logging
import math
import random
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader

from openmedclip.atomic import write_text
from openmedclip.data.base import SkippedItem
from openmedclip.data.streaming import ShardStream
from openmedclip.errors import InvalidInputError, RandomWeightsWarning
from openmedclip.models import load_model
from openmedclip.precision import autocast_factory, grad_scaler, resolve_precision
from openmedclip.progress import progress_bar
from openmedclip.train import checkpoint as ckpt
from openmedclip.train.config import TrainConfig
from openmedclip.train.data import caption_chooser, training_data, validation_data
from openmedclip.train.distributed import (
    Context,
    barrier,
    gather_ints,
    gather_objects,
    init_distributed,
    mean_over_ranks,
    shutdown,
    wrap,
)
from openmedclip.train.log import JsonlLog
from openmedclip.train.losses import MAX_LOGIT_SCALE, build_loss
from openmedclip.train.manifest import TrainingManifest, config_manifest
from openmedclip.train.optim import build_optimizer
from openmedclip.train.pairs import (
    BatchPlan,
    PairBatch,
    PairDataset,
    StreamPlan,
    collate_pairs,
)
from openmedclip.train.schedule import warmup_cosine
from openmedclip.train.step import Batch, DualEncoder, backward_step
from openmedclip.train.towers import prepare_model
from openmedclip.train.validate import evaluate_retrieval

log = logging.getLogger(__name__)


class TooManyBadItemsError(InvalidInputError):
    """More distinct unreadable training items than `TrainConfig.max_bad_items`."""


@dataclass
class TrainSummary:
    """What a call to `train` did."""

    out_dir: Path
    checkpoint: Path | None
    """The newest checkpoint folder (``load_model`` reads it)."""
    step: int
    """Optimizer steps done in all, counting those before a resume."""
    epoch: int
    """Epochs completed in all."""
    steps_per_epoch: int
    losses: list[float] = field(default_factory=list)
    """Loss of each optimizer step this call ran (mean over processes)."""
    validation: list[dict[str, Any]] = field(default_factory=list)
    """``{"epoch", "step", "metrics": {source: {metric: value}}}`` for each validation this call ran."""
    resumed_from: int | None = None
    """The step of the checkpoint this call continued from."""
    seconds: float = 0.0
    skipped_items: dict[str, str] = field(default_factory=dict)
    """Unreadable training items left out, item (file path or stream id) -> problem, each once however often it
    was drawn, counting those before a resume."""

    @property
    def n_skipped_items(self) -> int:
        return len(self.skipped_items)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["out_dir"] = str(self.out_dir)
        out["checkpoint"] = str(self.checkpoint) if self.checkpoint else None
        out["n_skipped_items"] = self.n_skipped_items
        return out


def train(config: TrainConfig) -> TrainSummary:
    """Run (or, with ``config.resume``, continue) a training run; under torchrun, one call per process."""
    ctx = init_distributed(config.device)
    try:
        return _Trainer(config, ctx).run()
    finally:
        shutdown(ctx)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class _Trainer:
    """The state of one run; `run` drives it."""

    def __init__(self, config: TrainConfig, ctx: Context):
        self.config = config
        self.ctx = ctx
        self.out_dir = Path(config.out_dir)
        self.root = self.out_dir / "checkpoints"
        seed_everything(config.seed)
        with warnings.catch_warnings():  # training from scratch starts from random weights on purpose
            warnings.simplefilter("ignore", RandomWeightsWarning)
            loaded = load_model(
                config.model, device=ctx.device, precision="fp32", checkpoint=config.checkpoint, runtime="library"
            )
        self.loaded, text_encoder = prepare_model(
            loaded,
            loss=config.loss,
            lock_image=config.lock_image,
            lock_text=config.lock_text,
            grad_checkpointing=config.grad_checkpointing,
        )
        self.model = self.loaded.model
        seed_everything(config.seed + ctx.rank)
        self.chooser = caption_chooser(config.captions, config.seed)
        self.pairs: PairDataset | ShardStream
        self.plan: BatchPlan | StreamPlan
        self.pairs, self.plan = training_data(config, self.loaded, self.chooser, ctx.rank, ctx.world_size)
        self.streaming = isinstance(self.plan, StreamPlan)
        self.val_sets = validation_data(config.val_datasets)
        self.manifest: TrainingManifest | None = config_manifest(config) if ctx.is_main and config.manifest else None
        self.total_steps = config.epochs * self.plan.steps_per_epoch
        self.optimizer = build_optimizer(self.model, config.lr, config.weight_decay)
        self.scheduler = warmup_cosine(self.optimizer, config.warmup_steps, self.total_steps)
        self.precision = resolve_precision(config.precision, ctx.device)
        self.scaler = grad_scaler(self.precision, ctx.device)
        self.autocast = autocast_factory(self.precision, ctx.device)
        self.loss_fn = build_loss(config.loss, gather=config.gather_features)
        self.encoder = DualEncoder(self.model, text_encoder)
        self.log = JsonlLog(self.out_dir / config.log_file if ctx.is_main else None)
        self.epoch, self.step_in_epoch, self.step = 0, 0, 0
        self.saved_step: int | None = None
        self.checkpoint: Path | None = None
        self.summary_losses: list[float] = []
        self.validations: list[dict[str, Any]] = []
        self.skipped_items: dict[str, str] = {}
        """Unreadable items met before the current step (item -> problem)."""

    # -- resume and checkpoints -------------------------------------------------------------------------

    def restore(self) -> int | None:
        """Continue from the latest checkpoint, if resuming and there is one; return its step."""
        folder = ckpt.latest_checkpoint(self.root) if self.config.resume else None
        if folder is None:
            return None
        optimizer_state, state = ckpt.load_state(folder)
        if state["global_batch"] != self.plan.global_batch or state["steps_per_epoch"] != self.plan.steps_per_epoch:
            raise InvalidInputError(
                f"{folder}: written with a global batch of {state['global_batch']} and {state['steps_per_epoch']} "
                f"steps per epoch; this run has {self.plan.global_batch} and {self.plan.steps_per_epoch}"
            )
        if state.get("stream") != self._stream_layout():
            log.warning(
                "%s: written with data %s, resumed with %s: the rest of the interrupted epoch is not the data it "
                "would have seen", folder, state.get("stream") or "in memory", self._stream_layout() or "in memory",
            )
        ckpt.load_weights(self.loaded, folder)
        try:
            self._load_loop_state(optimizer_state, state)
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as err:
            raise InvalidInputError(f"{folder}: its optimizer or loop state does not fit this run ({err})") from None
        self.saved_step, self.checkpoint = self.step, folder
        self.log.truncate_after(self.step)
        return self.step

    def _load_loop_state(self, optimizer_state: dict[str, Any], state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(optimizer_state)
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        rngs = state["rng"]
        ckpt.set_rng_state(rngs[self.ctx.rank] if len(rngs) == self.ctx.world_size else rngs[0])
        self.epoch, self.step_in_epoch, self.step = int(state["epoch"]), int(state["step_in_epoch"]), int(state["step"])
        self.skipped_items = dict(state.get("skipped_items", {}))

    def save(self) -> None:
        """Checkpoint the current position (every process takes part; rank 0 writes)."""
        rngs = gather_objects(self.ctx, ckpt.rng_state())
        if self.ctx.is_main:
            state = {
                "epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "step": self.step,
                "steps_per_epoch": self.plan.steps_per_epoch, "global_batch": self.plan.global_batch,
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(), "rng": rngs,
                "skipped_items": dict(self.skipped_items),
            }
            if self.streaming:
                state["stream"] = self._stream_layout()
            self.checkpoint = ckpt.save_checkpoint(
                self.root, self.step, self.loaded, self.optimizer, state, keep=self.config.keep_checkpoints,
                manifest=self.manifest,
            )
        else:
            self.checkpoint = self.root / ckpt.checkpoint_name(self.step)
        self.saved_step = self.step
        barrier(self.ctx)

    def _stream_layout(self) -> dict[str, int] | None:
        """What a stream's order depends on besides the seed and epoch (None for in-memory data)."""
        if not self.streaming:
            return None
        return {"world_size": self.ctx.world_size, "num_workers": self.config.num_workers}

    # -- training -----------------------------------------------------------------------------------------

    def run(self) -> TrainSummary:
        started = time.perf_counter()
        resumed_from = self.restore()
        if self.ctx.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            write_text(self.out_dir / "config.yaml", yaml.safe_dump(self.config.to_dict()))
        self.log.write({
            "event": "start", "step": self.step, "epoch": self.epoch, "resumed_from": resumed_from,
            "world_size": self.ctx.world_size, "global_batch": self.plan.global_batch,
            "steps_per_epoch": self.plan.steps_per_epoch, "total_steps": self.total_steps,
            "precision": self.precision,
            "streaming": self.streaming,
        })
        trained = wrap(self.encoder, self.ctx)
        while self.epoch < self.config.epochs and not self._reached_max():
            self._run_epoch(trained)
            if self.step_in_epoch == self.plan.steps_per_epoch:
                self._end_epoch()
        if self.saved_step != self.step:
            self.save()
        return TrainSummary(
            self.out_dir, self.checkpoint, self.step, self.epoch, self.plan.steps_per_epoch,
            self.summary_losses, self.validations, resumed_from, time.perf_counter() - started,
            dict(self.skipped_items),
        )

    def _reached_max(self) -> bool:
        return self.config.max_steps is not None and self.step >= self.config.max_steps

    def _micro_batches(self) -> Iterator[PairBatch]:
        """This process's micro-batches of the current epoch from its current step on."""
        config, device = self.config, self.ctx.device
        generator = torch.Generator().manual_seed(config.seed)
        pin = device.type == "cuda"
        if isinstance(self.plan, StreamPlan):
            assert isinstance(self.pairs, ShardStream)
            skip = self.plan.skipped_batches(self.step_in_epoch)
            self.pairs.set_epoch(self.epoch, skip_batches=skip, batch_size=config.batch_size)
            return iter(DataLoader(
                self.pairs, batch_size=config.batch_size, num_workers=config.num_workers, pin_memory=pin,
                generator=generator, collate_fn=collate_pairs,
            ))
        sampler = list(self.plan.micro_batches(self.epoch, self.step_in_epoch))
        return iter(DataLoader(
            self.pairs, batch_sampler=sampler, num_workers=config.num_workers, pin_memory=pin, generator=generator,
            collate_fn=collate_pairs,
        ))

    def _run_epoch(self, trained: torch.nn.Module) -> None:
        config = self.config
        batches = self._micro_batches()
        description = f"epoch {self.epoch + 1}/{config.epochs}"
        enabled = config.progress and self.ctx.is_main
        with progress_bar(description, total=self.plan.steps_per_epoch, enabled=enabled) as advance:
            advance(self.step_in_epoch)
            while self.step_in_epoch < self.plan.steps_per_epoch and not self._reached_max():
                micro = self._step_pairs([next(batches) for _ in range(config.grad_accum)])
                if micro:
                    self._optimizer_step(trained, micro)
                else:
                    self._empty_step()
                advance(1)

    def _step_pairs(self, batches: list[PairBatch]) -> list[Batch]:
        """This process's readable pairs of the next step, on its device, in as many micro-batches as every process
        has (none when some process has no readable pair). The step's unreadable items, of all processes, are
        reported first, which may stop the run."""
        device = self.ctx.device
        kept = [
            (b.pixels.to(device, non_blocking=True), b.tokens.to(device, non_blocking=True))
            for b in batches if b.pixels is not None and b.tokens is not None
        ]
        skipped = [item for b in batches for item in b.skipped]
        counts = gather_ints(self.ctx, [sum(pixels.shape[0] for pixels, _ in kept), len(skipped)])
        if any(n_skipped for _, n_skipped in counts):
            self._report_skipped(item for part in gather_objects(self.ctx, skipped) for item in part)
        parts = min(self.config.grad_accum, *(n_pairs for n_pairs, _ in counts))
        if parts == 0:
            return []
        if len(kept) == parts:
            return kept
        pixels, tokens = torch.cat([p for p, _ in kept]), torch.cat([t for _, t in kept])
        return list(zip(pixels.tensor_split(parts), tokens.tensor_split(parts), strict=True))

    def _report_skipped(self, items: Iterable[SkippedItem]) -> None:
        """Log the items not met before and count them; past ``max_bad_items``, checkpoint and stop."""
        new = {item.item: item for item in items if item.item not in self.skipped_items}
        for item in new.values():
            if self.ctx.is_main:
                log.warning("%s: left out of training: %s", item.item, item.problem)
            self.log.write({
                "event": "skipped_item", "step": self.step + 1, "epoch": self.epoch, "item": item.item,
                "problem": item.problem,
            })
        limit = self.config.max_bad_items
        if limit is not None and len(self.skipped_items) + len(new) > limit:
            self._stop(len(self.skipped_items) + len(new), list(new.values())[-1])
        self.skipped_items.update({name: item.problem for name, item in new.items()})

    def _stop(self, found: int, last: SkippedItem) -> None:
        """Checkpoint the last completed step (unless it is saved already) and raise `TooManyBadItemsError`."""
        if self.step > 0 and self.saved_step != self.step:
            self.save()
        saved = f"step {self.step} is saved in {self.checkpoint}" if self.checkpoint else "no step was trained"
        message = (
            f"training stopped: {found} unreadable training items, more than max_bad_items "
            f"({self.config.max_bad_items}); the last: {last.item}: {last.problem}; all are listed in "
            f"{self.out_dir / self.config.log_file}; {saved}; replace them (or raise max_bad_items) and resume the run"
        )
        self.log.write({"event": "stopped", "step": self.step + 1, "epoch": self.epoch, "error": message})
        raise TooManyBadItemsError(message)

    def _empty_step(self) -> None:
        """A step without an update, since some process had no readable pair: the counters and the learning-rate
        schedule still move on, so the batch plan and the schedule stay in place."""
        self.optimizer.step()  # no parameter has a gradient: a no-op, after which the scheduler may step
        self.scheduler.step()
        self.step += 1
        self.step_in_epoch += 1
        if self.ctx.is_main:
            log.warning("step %d: a process had no readable pair; no weights were updated", self.step)
        self.log.write({"event": "empty_step", "step": self.step, "epoch": self.epoch})

    def _optimizer_step(self, trained: torch.nn.Module, micro: list[Batch]) -> None:
        lr = self.optimizer.param_groups[0]["lr"]
        loss = backward_step(trained, micro, self.loss_fn, self.autocast, self.scaler.scale)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        with torch.no_grad():
            self.model.logit_scale.clamp_(max=math.log(MAX_LOGIT_SCALE))
        self.step += 1
        self.step_in_epoch += 1
        value = mean_over_ranks(self.ctx, loss)
        self.summary_losses.append(value)
        self.log.write({
            "event": "step", "step": self.step, "epoch": self.epoch, "loss": value, "lr": lr,
            "logit_scale": float(self.model.logit_scale.detach().exp().item()),
        })

    def _end_epoch(self) -> None:
        every = self.config.val_every
        if self.val_sets and every and (self.epoch + 1) % every == 0:
            self._validate()
        self.epoch += 1
        self.step_in_epoch = 0
        self.save()

    def _validate(self) -> None:
        metrics = {}
        if self.ctx.is_main:
            for name, source in self.val_sets:
                metrics[name] = evaluate_retrieval(
                    self.loaded, source, chooser=self.chooser, batch_size=self.config.batch_size,
                    autocast=self.autocast, num_workers=self.config.num_workers,
                )
            record = {"epoch": self.epoch, "step": self.step, "metrics": metrics}
            self.validations.append(record)
            self.log.write({"event": "validation", **record})
        barrier(self.ctx)
