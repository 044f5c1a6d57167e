"""The training stage: RET-CLIP on lmdb/train, validated on lmdb/test every epoch.

Checkpoints go to logs/<name>/checkpoints: epoch_latest.pt every epoch (and every
`save_every_steps` optimizer steps), epoch{N}.pt every `save_every` epochs. epoch_latest.pt
holds everything a run needs to continue exactly where it stopped.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import ownership
from ..atomic import write_text
from ..errors import UserError
from ..profile import Profile, train_batch_size
from ..stage import Stage, StageContext

LOG_EVERY_S = 10.0  # metric events at most this often


def run_dir(profile: Profile, workdir: Path) -> Path:
    return workdir / "logs" / profile.name


def _outputs(profile: Profile, workdir: Path) -> list[Path]:
    folder = run_dir(profile, workdir)
    return [
        folder / "checkpoints" / "epoch_latest.pt",
        folder / "metrics.jsonl",
        folder / "export" / "retclip_state_dict.pt",
    ]


def _inputs(profile: Profile, workdir: Path) -> list[str]:
    return [str(workdir / "lmdb" / "train"), str(workdir / "lmdb" / "test")]


@dataclass
class Progress:
    """Where training stands; saved in every checkpoint."""

    epoch: int = 0  # epochs finished
    batch: int = 0  # batches of the current epoch finished
    step: int = 0  # optimizer steps taken
    best: float | None = None
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


class StopRequest:
    """While training: Ctrl-C or SIGTERM (the wizard's stop) asks for a stop after the
    current step, which then saves where it is; a second one stops at once."""

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self):
        self.asked = False
        self.previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.asked:
            raise KeyboardInterrupt
        self.asked = True

    def __enter__(self) -> StopRequest:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                number = getattr(signal, name)
                self.previous[number] = signal.signal(number, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        import signal

        for number, handler in self.previous.items():
            signal.signal(number, handler)
        self.previous.clear()


def ignore_interrupts(worker_id: int) -> None:
    """DataLoader workers leave Ctrl-C to the trainer (see StopRequest)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def resolve_device(choice: str, emit) -> Any:
    import torch

    if choice == "cuda" and not torch.cuda.is_available():
        raise UserError(
            'train.device = "cuda" but no GPU is visible: set it to "auto" or '
            '"cpu", or check the GPU driver'
        )
    if choice == "cpu" or not torch.cuda.is_available():
        if choice == "auto":
            emit.warn("no GPU found: running on the CPU, which suits the demo and smoke sizes only")
        return torch.device("cpu")
    return torch.device("cuda")


def resolve_precision(choice: str, device) -> Any:
    """The autocast dtype, or None for fp32."""
    import torch

    if device.type == "cpu":
        if choice == "fp16":
            raise UserError('train.precision = "fp16" needs a GPU: use "auto" or "fp32"')
        return torch.bfloat16 if choice == "bf16" else None
    if choice == "fp32":
        return None
    if choice == "fp16" or (choice == "auto" and not torch.cuda.is_bf16_supported()):
        return torch.float16
    return torch.bfloat16


def freeze(model, which: str) -> None:
    towers = {
        "vision": [model.visual],
        "text": [model.bert],
        "both": [model.visual, model.bert],
        "none": [],
    }[which]
    for tower in towers:
        tower.requires_grad_(False)


def forward(model, batch: dict[str, Any], device):
    """RetClipOutput for a batch, through the model's own forward (so DDP sees it); with
    per-eye texts, each text head reads its own text."""
    from ..training.data import normalize

    move = {
        k: v.to(device, non_blocking=True)
        for k, v in batch.items()
        if hasattr(v, "to") and k != "text_ids"
    }
    for side in ("left", "right"):
        if side in move:
            move[side] = normalize(move[side])
    eye_texts = None
    if "ids_left" in move:
        eye_texts = (move["ids_left"], move["mask_left"], move["ids_right"], move["mask_right"])
    return model(move["left"], move.get("right"), move["ids"], move["mask"], eye_texts)


class Trainer:
    def __init__(self, ctx: StageContext):
        import torch

        from ..model.build import ModelSpec, build, image_size_of
        from ..model.weights import load_reference
        from ..training import distributed
        from ..training.data import Collate, TrainPairs, image_transform, text_labels
        from ..training.optim import make_optimizer, make_scheduler

        self.ctx, profile = ctx, ctx.profile
        self.cfg = cfg = profile.train
        self.world = world = distributed.from_env()
        self.device = resolve_device(cfg.device, ctx.emit)
        if self.device.type == "cuda" and world.size > 1:
            self.device = torch.device("cuda", world.local_rank)
            torch.cuda.set_device(self.device)
        distributed.start(world, self.device.type)
        self.dtype = resolve_precision(cfg.precision, self.device)
        torch.manual_seed(cfg.seed)
        spec = ModelSpec(
            profile.model.vision,
            profile.model.text,
            profile.model.context_length,
            profile.data.image_size,
        )
        self.module, self.tokenizer = build(spec)  # the model itself, unwrapped
        if profile.model.init:
            loaded = load_reference(self.module, profile.resolve(profile.model.init))
            ctx.emit.log(f"started from {profile.model.init}: {loaded}")
        freeze(self.module, profile.model.freeze)
        if cfg.grad_checkpointing:
            for tower in (self.module.visual, self.module.bert):
                tower.gradient_checkpointing_enable()
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
        lmdb = ctx.path("lmdb")
        self.train_set = TrainPairs(
            lmdb / "train", image_transform(size, cfg.augment, cfg.hflip), cfg.seed
        )
        self.val_set = (
            TrainPairs(lmdb / "test", image_transform(size), cfg.seed)
            if (lmdb / "test" / "pairs" / "data.mdb").exists()
            else None
        )
        self.val_labels = text_labels(ctx.path("data", "test_texts.jsonl"))
        self.collate = Collate(self.tokenizer, profile.model.context_length)
        self.batch, note = train_batch_size(profile, len(self.train_set), world.size)
        if note:
            ctx.emit.warn(note)
        self.batches = len(self.train_set) // (self.batch * world.size)
        if self.batches == 0:
            raise UserError(
                f"the train split has {len(self.train_set)} pairs, fewer than "
                f"train.batch_size = {self.batch} x {world.size} process(es): lower the "
                f"batch size"
            )
        self.steps_per_epoch = math.ceil(self.batches / cfg.accumulation)
        total = self.steps_per_epoch * cfg.epochs
        self.optimizer = make_optimizer(self.module, cfg.lr, cfg.weight_decay)
        self.scheduler = make_scheduler(self.optimizer, cfg.warmup_steps, total)
        fp16 = self.dtype == torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=fp16)
        self.folder = run_dir(profile, ctx.workdir)
        self.checkpoints = self.folder / "checkpoints"
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
        from ..training import checkpoint, distributed

        rngs = distributed.gather_objects(checkpoint.rng_state(), self.world)
        if self.world.main:
            aside = None if self.saved_at is not None else self._set_aside()
            checkpoint.save(path, self._payload(rngs))
            if aside is not None:
                checkpoint.discard_superseded(aside, self.ctx.emit)
        distributed.barrier(self.world)
        if path.name == "epoch_latest.pt":
            self.saved_at = self.progress.step

    def _set_aside(self):
        """Training outputs in this run's folder that another run made (other settings, or
        none this run can resume from) move to superseded/<time>/ before they would be
        overwritten; None when there are none."""
        from ..training import checkpoint

        if self.resumed:
            return None
        return checkpoint.set_aside(self.folder, self.ctx.workdir, self.kept_files, self.ctx.emit)

    def save_epoch(self, kept: bool) -> None:
        """End of an epoch: epoch{N}.pt first when it is kept, then epoch_latest.pt as the
        same file, so that a kill between them costs nothing a rerun cannot redo."""
        from ..atomic import link_or_copy

        latest = self.checkpoints / "epoch_latest.pt"
        if not kept:
            self.save(latest)
            return
        numbered = self.checkpoints / f"epoch{self.progress.epoch}.pt"
        self.save(numbered)
        if self.world.main:
            link_or_copy(numbered, latest)
        self.saved_at = self.progress.step

    def write_history(self) -> None:
        """metrics.jsonl from the history the checkpoint holds: a kill between the two writes
        can neither lose nor repeat an epoch's line, and a resumed run rewrites it."""
        if self.world.main and self.progress.history:
            write_text(
                self.folder / "metrics.jsonl",
                "".join(json.dumps(m) + "\n" for m in self.progress.history),
            )

    def _payload(self, rngs: list) -> dict[str, Any]:
        return {
            "epoch": self.progress.epoch,
            "step": self.progress.step,
            "name": self.ctx.profile.name,
            "state_dict": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rngs,
            "progress": vars(self.progress),
            "fingerprint": self.ctx.fingerprint,
        }

    def resume(self) -> bool:
        from ..training import checkpoint

        latest = self.checkpoints / "epoch_latest.pt"
        if not latest.exists():
            return False
        payload = checkpoint.load(latest)
        if payload.get("fingerprint") != self.ctx.fingerprint:
            return False  # another run's: the runner clears it when settings change
        self.module.load_state_dict(payload["state_dict"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        self.scaler.load_state_dict(payload["scaler"])
        rngs = payload["rng"]
        checkpoint.set_rng_state(rngs[self.world.rank] if len(rngs) == self.world.size else rngs[0])
        self.progress = Progress(**payload["progress"])
        self.saved_at = self.progress.step
        self.resumed = True
        self.write_history()  # a kill just after the checkpoint may have cut it short
        self.ctx.emit.log(
            f"resuming at epoch {self.progress.epoch + 1}, batch "
            f"{self.progress.batch}, step {self.progress.step}"
        )
        return True

    # -- the loop ----------------------------------------------------------------------------

    def loader(self, dataset, epoch: int, start: int, batch_size: int, shard: bool = True):
        import torch

        from ..training.data import EpochBatches

        rank, ranks = (self.world.rank, self.world.size) if shard else (0, 1)
        sampler = EpochBatches(len(dataset), batch_size, self.cfg.seed, epoch, start, rank, ranks)
        # A private generator: making the loader must not draw on the global RNG, or a
        # resumed run would see other dropout masks than an uninterrupted one.
        return torch.utils.data.DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=self.cfg.workers,
            collate_fn=self.collate,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(self.cfg.seed + epoch),
            # Ctrl-C reaches the whole process group: the workers leave it to the trainer,
            # which stops after the current step (a worker that died of it would break
            # the step being finished).
            worker_init_fn=ignore_interrupts,
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
        from ..training import distributed

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
                    f'Lower train.lr, or use train.precision = "bf16" or "fp32"'
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
            progress.batch = index + 1
            emit.progress(task, progress.batch, self.batches, "batches")
            now = time.monotonic()
            if now - last_log >= LOG_EVERY_S or progress.batch == self.batches:
                last_log = now
                latest = finite_losses()[-1]
                rate = (index + 1 - first) * self.batch * world.size / (now - started)
                left = self.batches - progress.batch + (cfg.epochs - epoch - 1) * self.batches
                emit.metric(
                    f"step {progress.step}: loss {latest:.4f}, {rate:.1f} samples/s",
                    step=progress.step,
                    loss=latest,
                    lr=self.scheduler.get_last_lr()[0],
                    samples_per_s=round(rate, 2),
                    eta_s=round(left * self.batch * world.size / rate, 1),
                    **{name: float(value) for name, value in parts.items()},
                )
            if cfg.save_every_steps and progress.step % cfg.save_every_steps == 0:
                finite_losses()
                self.save(self.checkpoints / "epoch_latest.pt")
            if self.stop.asked or world.size > 1:
                finite_losses()
                self.stop_if_asked()
        values = finite_losses()
        return sum(values) / max(1, len(values))

    def stop_if_asked(self) -> None:
        """After a step: on Ctrl-C or a stop, save where training is and end the stage
        (every rank agrees, so that all of them save together)."""
        from ..training import distributed

        if not distributed.any_rank(self.stop.asked, self.world):
            return
        if self.saved_at != self.progress.step:
            self.save(self.checkpoints / "epoch_latest.pt")
        self.ctx.emit.log(
            f"stopped at epoch {self.progress.epoch + 1}, batch {self.progress.batch}, step "
            f"{self.progress.step}: saved in epoch_latest.pt; rerun to resume from there"
        )
        raise KeyboardInterrupt

    def validate(self) -> dict[str, float]:
        """Rank 0's validation figures, shared with every rank (early stopping must agree)."""
        from ..training import distributed

        metrics = self._validate() if self.world.main else {}
        return distributed.gather_objects(metrics, self.world)[0]

    def _validate(self) -> dict[str, float]:
        """Loss and in-batch accuracy (image->text, text->image, and class-level: the text
        picked for an image has the image's label) on the test split, in a fixed order."""
        import torch

        from ..model.loss import retclip_loss

        if self.val_set is None or len(self.val_set) < 2:
            return {}
        size = min(self.batch, len(self.val_set))
        totals = {"val_loss": 0.0, "val_i2t": 0.0, "val_t2i": 0.0, "val_i2t_class": 0.0}
        batches = labelled = 0
        self.module.eval()  # unwrapped: only rank 0 validates, so no DDP collective may run
        with torch.no_grad(), self.autocast():
            for batch in self.loader(self.val_set, 0, 0, size, shard=False):
                out = forward(self.module, batch, self.device)
                loss, _ = retclip_loss(out)
                sims = (out.image @ out.text.t()).float()
                truth = torch.arange(sims.shape[0], device=sims.device)
                totals["val_loss"] += float(loss)
                totals["val_i2t"] += float((sims.argmax(1) == truth).float().mean())
                totals["val_t2i"] += float((sims.argmax(0) == truth).float().mean())
                ids = batch["text_ids"].tolist()
                if all(i in self.val_labels for i in ids):
                    names = [self.val_labels[i] for i in ids]
                    picked = sims.argmax(1).tolist()
                    totals["val_i2t_class"] += sum(
                        names[p] == names[i] for i, p in enumerate(picked)
                    ) / len(ids)
                    labelled += 1
                batches += 1
        result = {k: v / batches for k, v in totals.items() if k != "val_i2t_class"}
        if labelled:
            result["val_i2t_class"] = totals["val_i2t_class"] / labelled
        result["val_chance"] = 1 / size
        return {k: round(v, 5) for k, v in result.items()}

    def improved(self, metrics: dict[str, float]) -> bool:
        name = self.cfg.early_stop
        if not name or name not in metrics:
            return True
        value = -metrics[name] if name == "val_loss" else metrics[name]
        if self.progress.best is None or value > self.progress.best:
            self.progress.best, self.progress.bad_epochs = value, 0
            return True
        self.progress.bad_epochs += 1
        return False

    def run(self) -> dict[str, Any]:
        cfg, emit, progress = self.cfg, self.ctx.emit, self.progress
        self.resume()
        progress = self.progress
        params = json.dumps(
            {
                "model": vars(self.ctx.profile.model),
                "train": vars(cfg),
                "device": str(self.device),
                "precision": str(self.dtype or "fp32"),
                "pairs": len(self.train_set),
                "batch_size_used": self.batch,
                "batches_per_epoch": self.batches,
            },
            indent=2,
            default=str,
        )
        stamp = time.strftime("%Y%m%d-%H%M%S")
        main = self.world.main
        if main:
            self.kept_files.add(self.folder / f"params_{stamp}.txt")
            write_text(self.folder / f"params_{stamp}.txt", params + "\n")
        with self.stop:
            self.train_epochs(stamp)
        from ..model.export import export
        from ..training import distributed

        if main:
            export(self.module, self.tokenizer, self.folder / "export")
            emit.log(
                f"model exported to {self.folder.relative_to(self.ctx.workdir) / 'export'} "
                f"(transformers folders and a "
                f"RET-CLIP-layout state dict)"
            )
        distributed.barrier(self.world)
        distributed.stop(self.world)
        final = progress.history[-1] if progress.history else {}
        return {
            "epochs": progress.epoch,
            "steps": progress.step,
            **{k: v for k, v in final.items() if k.startswith(("val_", "train_"))},
        }

    def train_epochs(self, stamp: str) -> None:
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
            emit.metric(", ".join(f"{k} {v}" for k, v in metrics.items()), **metrics)
            keep_going = self.improved(metrics)
            last = epoch + 1 == cfg.epochs or not keep_going and progress.bad_epochs >= cfg.patience
            self.save_epoch(kept=(epoch + 1) % cfg.save_every == 0 or last)
            self.write_history()
            if main:
                log = self.folder / f"out_{stamp}.log"
                self.kept_files.add(log)
                ownership.claim(log)
                with open(log, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(metrics) + "\n")
            if not keep_going and progress.bad_epochs >= cfg.patience:
                emit.log(
                    f"early stop: {cfg.early_stop} has not improved for "
                    f"{progress.bad_epochs} epochs"
                )
                break


def fits(profile: Profile, batch_size: int) -> bool:
    """Whether one training step at this batch size fits the GPU (random data)."""
    import torch

    from ..preflight.estimate import measure_steps

    try:
        measure_steps(profile, "cuda", batch_size)
        return True
    except (torch.cuda.OutOfMemoryError, UserError):
        return False


def largest_fitting_batch(profile: Profile) -> int:
    """Halve the batch size until a step fits; 0 when not even one pair does."""
    batch = profile.train.batch_size // 2
    while batch >= 1 and not fits(profile, batch):
        batch //= 2
    return batch


def run(ctx: StageContext) -> dict[str, Any]:
    import dataclasses

    import torch

    try:
        return Trainer(ctx).run()
    except torch.cuda.OutOfMemoryError:
        pass  # leave the except block first: the exception holds the GPU memory
    torch.cuda.empty_cache()
    cfg = ctx.profile.train
    batch = largest_fitting_batch(ctx.profile)
    if batch == 0:
        raise UserError(
            "out of GPU memory even at train.batch_size = 1: set "
            "train.grad_checkpointing = true, freeze a tower (model.freeze), or "
            "use a GPU with more memory"
        ) from None
    accumulation = math.ceil(cfg.batch_size * cfg.accumulation / batch)
    advice = (
        f"train.batch_size = {batch} with train.accumulation = {accumulation} keeps the "
        f"global batch of {cfg.batch_size * cfg.accumulation}"
    )
    if not cfg.oom_retry:
        raise UserError(
            f"out of GPU memory at train.batch_size = {cfg.batch_size}: {advice} "
            f"(or set train.oom_retry = true to let the run do so); the last "
            f"checkpoint is kept"
        ) from None
    ctx.emit.warn(
        f"out of GPU memory at train.batch_size = {cfg.batch_size}: retrying with {advice}"
    )
    # The data order depends on the batch size: the retry starts the training afresh.
    ownership.remove(run_dir(ctx.profile, ctx.workdir) / "checkpoints")
    retry = dataclasses.replace(
        ctx.profile,
        train=dataclasses.replace(
            cfg, batch_size=batch, accumulation=accumulation, oom_retry=False
        ),
    )
    return run(dataclasses.replace(ctx, profile=retry))


def run_worker(profile: Profile, workdir: Path) -> None:
    """A torchrun process other than rank 0: it trains alongside, with no events or state."""
    from ..events import Emitter
    from ..runner import fingerprints

    fingerprint = fingerprints(profile)["train"]
    Trainer(StageContext(profile, workdir, Emitter(lambda event: None, "train"), fingerprint)).run()


STAGE = Stage(
    name="train",
    description="RET-CLIP training",
    sections=("data.image_size", "model", "train"),
    needs=("lmdb",),
    run=run,
    inputs=_inputs,
    outputs=_outputs,
    scratch=lambda profile, workdir: [run_dir(profile, workdir)],
    precious=True,
)
