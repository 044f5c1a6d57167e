"""The training loop: RET-CLIP on lmdb/train, validated on lmdb/test every epoch, with
checkpoints that resume exactly (weights, optimizer, scheduler, scaler, the random
generators, the position in the data order and the best validation figure so far).

Checkpoints go to logs/<name>/checkpoints: epoch_latest.pt every epoch (and every
`save_every_steps` optimizer steps, and when stopped), epoch{N}.pt every `save_every` epochs
(the newest `keep_last` of them), best.pt whenever train.best_metric's figure improves."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import ownership, units
from ..atomic import write_text
from ..errors import UserError
from ..layout import RunLayout
from ..profile import train_batch_size
from ..stage import StageContext
from .device import checkpointing, forward, freeze, resolve_device, resolve_precision
from .stop import StopRequest, nan_advice

LOG_EVERY_S = 10.0  # metric events at most this often
PRECISIONS = {"torch.bfloat16": "bf16", "torch.float16": "fp16"}  # autocast dtype -> name


@dataclass
class Progress:
    """Where training stands; saved in every checkpoint."""

    epoch: int = 0  # epochs finished
    batch: int = 0  # batches of the current epoch finished
    step: int = 0  # optimizer steps taken
    best: float | None = None  # the best validation figure so far (best.pt's)
    best_metric: str = ""  # which figure
    best_epoch: int = 0
    bad_epochs: int = 0  # epochs since it last improved
    history: list[dict[str, Any]] = field(default_factory=list)


class Trainer:
    def __init__(self, ctx: StageContext):
        import torch

        from ..model.build import build, image_size_of
        from ..model.weights import load_reference
        from . import distributed
        from .data import Collate, TrainPairs, image_transform, text_labels
        from .optim import epoch_steps, make_optimizer, make_scheduler
        from .tracking import Trackers, require

        self.ctx, profile = ctx, ctx.profile
        self.cfg = cfg = profile.train
        require(cfg.report_to)  # a missing tracker package fails before anything starts
        self.trackers = Trackers([])  # rank 0's are opened when training starts
        self.world = world = distributed.from_env()
        self.device = resolve_device(cfg.device, ctx.emit)
        if self.device.type == "cuda" and world.size > 1:
            self.device = torch.device("cuda", world.local_rank)
            torch.cuda.set_device(self.device)
        distributed.start(world, self.device.type)
        self.dtype = resolve_precision(cfg.precision, self.device)
        torch.manual_seed(cfg.seed)
        spec = profile.model_spec()
        self.module, self.tokenizer = build(spec)  # the model itself, unwrapped
        if profile.model.init:
            loaded = load_reference(self.module, profile.resolve(profile.model.init))
            ctx.emit.log(f"started from {profile.model.init}: {loaded}")
        freeze(self.module, profile.model.freeze)
        if cfg.grad_checkpointing:
            checkpointing(self.module)
        self.module.to(self.device)
        self.model = self.module
        if world.size > 1:
            torch.manual_seed(cfg.seed + 7919 * world.rank)  # own dropout masks per rank
            self.model = torch.nn.parallel.DistributedDataParallel(
                self.module,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                broadcast_buffers=False,
            )
        if cfg.compile:  # the wrapper trains; self.module keeps the plain names for saving
            self.model = torch.compile(self.model)
        size = image_size_of(spec)
        self.layout = layout = RunLayout.of(profile, ctx.workdir)
        self.train_set = TrainPairs(
            layout.lmdb_split("train"), image_transform(size, cfg.augment, cfg.hflip), cfg.seed
        )
        self.val_set = (
            TrainPairs(layout.lmdb_split("test"), image_transform(size), cfg.seed)
            if (layout.lmdb_env("test", "pairs") / "data.mdb").exists()
            else None
        )
        self.val_labels = text_labels(layout.texts_jsonl("test"))
        self.collate = Collate(self.tokenizer, profile.model.context_length)
        self.batch, note = train_batch_size(profile, len(self.train_set), world.size)
        if note:
            ctx.emit.warn(note)
        self.batches, self.steps_per_epoch = epoch_steps(
            len(self.train_set), self.batch, world.size, cfg.accumulation
        )
        total = self.steps_per_epoch * cfg.epochs
        self.optimizer = make_optimizer(self.module, cfg.lr, cfg.weight_decay)
        self.scheduler = make_scheduler(self.optimizer, cfg.warmup_steps, total)
        fp16 = self.dtype == torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=fp16)
        self.folder = layout.training
        self.checkpoints = layout.checkpoints
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        self.progress = Progress()
        self.stop = StopRequest()
        self.saved_at: int | None = None  # the optimizer step epoch_latest.pt holds
        self.resumed = False
        self.kept_files: set[Path] = set()  # this run's own files in its folder

    # -- checkpoints -------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Called on every rank (the RNG states are gathered); rank 0 writes. The first save
        of a run that did not resume sets the earlier settings' outputs aside first, and
        deletes them once the new checkpoint is written."""
        from . import checkpoint, distributed

        rngs = distributed.gather_objects(checkpoint.rng_state(), self.world)
        if self.world.main:
            aside = None if self.saved_at is not None else self._set_aside()
            checkpoint.save(path, checkpoint.payload(self, rngs))
            if aside is not None:
                checkpoint.discard_superseded(aside, self.ctx.emit)
        distributed.barrier(self.world)
        if path == self.layout.latest:
            self.saved_at = self.progress.step

    def _set_aside(self):
        """Training outputs in this run's folder that another run made (other settings, or
        none this run can resume from) move to superseded/<time>/ before they would be
        overwritten; None when there are none."""
        from . import checkpoint

        if self.resumed:
            return None
        return checkpoint.set_aside(self.folder, self.ctx.workdir, self.kept_files, self.ctx.emit)

    def save_epoch(self, kept: bool) -> None:
        """End of an epoch: epoch{N}.pt first when it is kept, then epoch_latest.pt as the
        same file, so that a kill between them costs nothing a rerun cannot redo."""
        from ..atomic import link_or_copy

        latest = self.layout.latest
        if not kept:
            self.save(latest)
            return
        numbered = self.layout.epoch_checkpoint(self.progress.epoch)
        self.save(numbered)
        if self.world.main:
            link_or_copy(numbered, latest)
        self.saved_at = self.progress.step

    def write_history(self) -> None:
        """metrics.jsonl from the history the checkpoint holds: a kill between the two writes
        can neither lose nor repeat an epoch's line, and a resumed run rewrites it."""
        if self.world.main and self.progress.history:
            write_text(
                self.layout.metrics,
                "".join(json.dumps(m) + "\n" for m in self.progress.history),
            )

    def resume(self) -> bool:
        """Pick up this run's epoch_latest.pt; False when there is none of these settings."""
        from . import checkpoint

        self.resumed = checkpoint.restore(self)
        if self.resumed:
            self.saved_at = self.progress.step
            self.write_history()  # a kill just after the checkpoint may have cut it short
        return self.resumed

    # -- the loop ----------------------------------------------------------------------------

    def loader(self, dataset, epoch: int, start: int, batch_size: int, shard: bool = True):
        from .data import epoch_loader

        rank, ranks = (self.world.rank, self.world.size) if shard else (0, 1)
        return epoch_loader(
            dataset, self.collate, self.cfg, self.device, epoch, start, batch_size, rank, ranks
        )

    def autocast(self):
        import contextlib

        import torch

        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def optimizer_step(self) -> None:
        import torch

        if self.cfg.clip_grad_norm:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.cfg.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.module.clamp_scales_()  # the reference's bounds on the temperatures, every step
        self.progress.step += 1

    def train_epoch(self, epoch: int) -> float:
        import functools

        import torch

        from ..model.loss import retclip_loss
        from . import distributed

        cfg, emit, progress, world = self.cfg, self.ctx.emit, self.progress, self.world
        gather = functools.partial(distributed.gather, world=world) if world.size > 1 else None
        self.model.train()
        task = f"epoch {epoch + 1}/{cfg.epochs}"
        # Losses stay on the device: reading one waits for the GPU, and a wait every step
        # leaves it idle while the next step is launched. They are read when logged and
        # before anything is saved; a non-finite one stops the run there.
        losses: list[Any] = []
        started, last_log, first = time.monotonic(), 0.0, progress.batch

        def finite_losses() -> list[float]:
            values = torch.stack(losses).float().tolist() if losses else []
            bad = next((i for i, v in enumerate(values) if not math.isfinite(v)), None)
            if bad is not None:
                raise UserError(
                    f"the loss became {values[bad]} at epoch {epoch + 1}, batch {first + bad}: "
                    f"training stopped; the last good checkpoint is kept in {self.checkpoints}. "
                    + nan_advice(cfg)
                )
            return values

        for index, batch in enumerate(
            self.loader(self.train_set, epoch, progress.batch, self.batch), start=progress.batch
        ):
            with self.autocast():
                loss, parts = retclip_loss(forward(self.model, batch, self.device), gather)
            # Each rank's gradient flows through its own features only and DDP averages the
            # ranks: scaling by the world size makes the sum the full loss's gradient.
            self.scaler.scale(loss * world.size / cfg.accumulation).backward()
            losses.append(loss.detach())
            if (index + 1) % cfg.accumulation and index + 1 < self.batches:
                continue
            self.optimizer_step()
            self.trackers.record(
                progress.step, parts, self.scheduler.get_last_lr, self.module.scales
            )
            progress.batch = index + 1
            emit.progress(task, progress.batch, self.batches, "batches")
            now = time.monotonic()
            if now - last_log >= LOG_EVERY_S or progress.batch == self.batches:
                last_log = now
                latest = finite_losses()[-1]
                rate = (index + 1 - first) * self.batch * world.size / (now - started)
                left = self.batches - progress.batch + (cfg.epochs - epoch - 1) * self.batches
                eta = units.duration(left * self.batch * world.size / rate) if left else ""
                emit.metric(
                    f"step {progress.step}: loss {latest:.4f}, {units.rate(rate, 'samples')}"
                    + (f", training ETA {eta}" if eta else ""),
                    step=progress.step,
                    loss=latest,
                    lr=self.scheduler.get_last_lr()[0],
                    samples_per_s=float(f"{rate:.4g}"),  # a slow CPU step: 0.004
                    eta_s=round(left * self.batch * world.size / rate, 1),
                    **{name: float(value) for name, value in parts.items()},
                )
                self.trackers.flush(progress.step, {"train/samples_per_s": rate})
            if cfg.save_every_steps and progress.step % cfg.save_every_steps == 0:
                finite_losses()
                self.save(self.layout.latest)
            if self.stop.asked or world.size > 1:
                finite_losses()
                self.stop_if_asked()
        values = finite_losses()
        return sum(values) / max(1, len(values))

    def stop_if_asked(self) -> None:
        """After a step: on Ctrl-C or a stop, save where training is and end the stage
        (every rank agrees, so that all of them save together)."""
        from . import distributed

        if not distributed.any_rank(self.stop.asked, self.world):
            return
        if self.saved_at != self.progress.step:
            self.save(self.layout.latest)
        self.ctx.emit.log(
            f"stopped at epoch {self.progress.epoch + 1}, batch {self.progress.batch}, step "
            f"{self.progress.step}: saved in epoch_latest.pt; rerun to resume from there"
        )
        raise KeyboardInterrupt

    def validate(self) -> dict[str, float]:
        """Rank 0's validation figures, shared with every rank (early stopping must agree)."""
        from . import distributed

        metrics = self._validate() if self.world.main else {}
        return distributed.gather_objects(metrics, self.world)[0]

    def _validate(self) -> dict[str, float]:
        from .validation import validation_figures

        if self.val_set is None or len(self.val_set) < 2:
            return {}
        size = min(self.batch, len(self.val_set))
        batches = self.loader(self.val_set, 0, 0, size, shard=False)
        self.module.eval()  # unwrapped: only rank 0 validates, so no DDP collective may run
        with self.autocast():
            return validation_figures(self.module, batches, self.device, self.val_labels, size)

    def run(self) -> dict[str, Any]:
        emit = self.ctx.emit
        self.resume()
        progress = self.progress
        stamp = time.strftime("%Y%m%d-%H%M%S")
        main = self.world.main
        if main:
            from .checkpoint import params_text
            from .tracking import open_trackers

            self.kept_files.add(self.folder / f"params_{stamp}.txt")
            write_text(self.folder / f"params_{stamp}.txt", params_text(self))
            self.trackers = open_trackers(self.ctx.profile, self.layout, progress.step)
        with self.stop, self.trackers:  # closed however training ends
            self.train_epochs(stamp)
        from . import distributed

        if main:
            from .checkpoint import export_run

            best = self.layout.best
            export_run(self.module, self.tokenizer, self.layout.export, best)
            emit.log(
                f"model exported to {self.folder.relative_to(self.ctx.workdir) / 'export'} "
                f"(transformers folders and a RET-CLIP-layout state dict)"
                + (" with best.pt's weights" if best.exists() else "")
            )
        distributed.barrier(self.world)
        distributed.stop(self.world)
        final = progress.history[-1] if progress.history else {}
        return {
            "epochs": progress.epoch,
            "steps": progress.step,
            "precision": PRECISIONS.get(str(self.dtype), "fp32"),  # what "auto" resolved to
            **{k: v for k, v in final.items() if k.startswith(("val_", "train_"))},
        }

    def train_epochs(self, stamp: str) -> None:
        from .validation import update_best

        cfg, emit, progress, main = self.cfg, self.ctx.emit, self.progress, self.world.main
        for epoch in range(progress.epoch, cfg.epochs):
            self.stop_if_asked()
            train_loss = self.train_epoch(epoch)
            metrics = {
                "epoch": epoch + 1,
                "step": progress.step,
                "train_loss": round(train_loss, 5),
                "lr": self.scheduler.get_last_lr()[0],
            } | self.validate()
            progress.epoch, progress.batch = epoch + 1, 0
            progress.history.append(metrics)
            emit.metric(", ".join(f"{k} {v:.4g}" for k, v in metrics.items()), **metrics)
            self.trackers.log_epoch(metrics)
            # best.pt follows train.best_metric's figure; early stopping watches it too
            improved = update_best(progress, cfg, metrics, emit)
            stop_early = bool(cfg.early_stop) and progress.bad_epochs >= cfg.patience
            last = epoch + 1 == cfg.epochs or stop_early
            self.save_epoch(kept=(epoch + 1) % cfg.save_every == 0 or last)
            self.write_history()
            if main:
                from .checkpoint import keep_best, prune_epochs

                if improved:
                    keep_best(self.layout)
                prune_epochs(self.layout, cfg.keep_last)
                log = self.folder / f"out_{stamp}.log"
                self.kept_files.add(log)
                ownership.claim(log)
                with open(log, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(metrics) + "\n")
            if stop_early:
                emit.log(
                    f"early stop: {progress.best_metric} has not improved for "
                    f"{progress.bad_epochs} epochs"
                )
                break
