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
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader

from openmedclip.atomic import write_text
from openmedclip.data.streaming import ShardStream
from openmedclip.errors import InvalidInputError
from openmedclip.models import load_model
from openmedclip.precision import autocast_factory, grad_scaler
from openmedclip.progress import progress_bar
from openmedclip.train import checkpoint as ckpt
from openmedclip.train.config import TrainConfig
from openmedclip.train.data import caption_chooser, training_data, validation_data
from openmedclip.train.distributed import (
    Context,
    barrier,
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
    PairDataset,
    StreamPlan,
)
from openmedclip.train.schedule import warmup_cosine
from openmedclip.train.step import DualEncoder, backward_step
from openmedclip.train.towers import prepare_model
from openmedclip.train.validate import evaluate_retrieval

log = logging.getLogger(__name__)


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

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["out_dir"] = str(self.out_dir)
        out["checkpoint"] = str(self.checkpoint) if self.checkpoint else None
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
        self.scaler = grad_scaler(config.precision, ctx.device)
        self.autocast = autocast_factory(config.precision, ctx.device)
        self.loss_fn = build_loss(config.loss, gather=config.gather_features)
        self.encoder = DualEncoder(self.model, text_encoder)
        self.log = JsonlLog(self.out_dir / config.log_file if ctx.is_main else None)
        self.epoch, self.step_in_epoch, self.step = 0, 0, 0
        self.saved_step: int | None = None
        self.checkpoint: Path | None = None
        self.summary_losses: list[float] = []
        self.validations: list[dict[str, Any]] = []

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
        self.optimizer.load_state_dict(optimizer_state)
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        rngs = state["rng"]
        ckpt.set_rng_state(rngs[self.ctx.rank] if len(rngs) == self.ctx.world_size else rngs[0])
        self.epoch, self.step_in_epoch, self.step = state["epoch"], state["step_in_epoch"], state["step"]
        self.saved_step, self.checkpoint = self.step, folder
        self.log.truncate_after(self.step)
        return self.step

    def save(self) -> None:
        """Checkpoint the current position (every process takes part; rank 0 writes)."""
        rngs = gather_objects(self.ctx, ckpt.rng_state())
        if self.ctx.is_main:
            state = {
                "epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "step": self.step,
                "steps_per_epoch": self.plan.steps_per_epoch, "global_batch": self.plan.global_batch,
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(), "rng": rngs,
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
        )

    def _reached_max(self) -> bool:
        return self.config.max_steps is not None and self.step >= self.config.max_steps

    def _micro_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
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
                generator=generator,
            ))
        sampler = list(self.plan.micro_batches(self.epoch, self.step_in_epoch))
        return iter(DataLoader(
            self.pairs, batch_sampler=sampler, num_workers=config.num_workers, pin_memory=pin, generator=generator,
        ))

    def _run_epoch(self, trained: torch.nn.Module) -> None:
        config, device = self.config, self.ctx.device
        batches = self._micro_batches()
        description = f"epoch {self.epoch + 1}/{config.epochs}"
        enabled = config.progress and self.ctx.is_main
        with progress_bar(description, total=self.plan.steps_per_epoch, enabled=enabled) as advance:
            advance(self.step_in_epoch)
            while self.step_in_epoch < self.plan.steps_per_epoch and not self._reached_max():
                micro = [next(batches) for _ in range(config.grad_accum)]
                micro = [(p.to(device, non_blocking=True), t.to(device, non_blocking=True)) for p, t in micro]
                self._optimizer_step(trained, micro)
                advance(1)

    def _optimizer_step(self, trained: torch.nn.Module, micro: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
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
