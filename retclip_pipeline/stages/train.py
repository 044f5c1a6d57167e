"""The training stage: RET-CLIP on lmdb/train (see training/trainer.py), and out of GPU
memory, the largest batch that fits (retried with it when train.oom_retry allows)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .. import ownership
from ..errors import UserError
from ..layout import RunLayout
from ..profile import Profile
from ..stage import Stage, StageContext


def _outputs(profile: Profile, workdir: Path) -> list[Path]:
    layout = RunLayout.of(profile, workdir)
    return [layout.latest, layout.metrics, layout.export / "retclip_state_dict.pt"]


def _inputs(profile: Profile, workdir: Path) -> list[str]:
    layout = RunLayout.of(profile, workdir)
    return [str(layout.lmdb_split("train")), str(layout.lmdb_split("test"))]


def run(ctx: StageContext) -> dict[str, Any]:
    import dataclasses

    import torch

    from ..hub.reach import hub_or_cache
    from ..model.sources import hub_ids
    from ..training import checkpoint
    from ..training.oom import largest_fitting_batch
    from ..training.trainer import Trainer

    # A user's file where a checkpoint goes stops the stage before anything is set aside.
    layout = RunLayout.of(ctx.profile, ctx.workdir)
    numbered = [layout.epoch_checkpoint(n) for n in range(1, ctx.profile.train.epochs + 1)]
    ownership.refuse_foreign([layout.latest, layout.best, layout.metrics, layout.export, *numbered])
    spec = ctx.profile.model
    try:
        # Towers on the hub, and it does not answer: the cache only, said at once (a wrong
        # name fails in seconds, not after a minute of the client's retries).
        with hub_or_cache(bool(hub_ids([spec.vision, spec.text]))):
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
    # The data order depends on the batch size: the retry starts the training afresh. Only
    # this attempt's epoch_latest.pt goes now (it would be resumed); the rest, earlier
    # settings' checkpoints included, is set aside at the retry's first save, as ever.
    latest = RunLayout.of(ctx.profile, ctx.workdir).latest
    if latest.exists() and checkpoint.made_here(checkpoint.load(latest), ctx):
        ownership.remove(latest)
    retry = dataclasses.replace(
        ctx.profile,
        train=dataclasses.replace(
            cfg, batch_size=batch, accumulation=accumulation, oom_retry=False
        ),
    )
    return run(dataclasses.replace(ctx, profile=retry))


def run_worker(profile: Profile, workdir: Path, fingerprint: str) -> None:
    """A torchrun process other than rank 0: it trains alongside, with no events or state."""
    from ..events import Emitter
    from ..training.trainer import Trainer

    Trainer(StageContext(profile, workdir, Emitter(lambda event: None, "train"), fingerprint)).run()


def _plan_lines(profile: Profile, gpu: str | None) -> list[str]:
    """The memory and time estimate, or why there is none (a tower not to be had offline);
    what training keeps on disk; where TensorBoard finds the run."""
    from ..data.sampling import split_pairs
    from ..preflight.costs import kept_checkpoints, training_output_bytes
    from ..preflight.estimate import estimate
    from ..units import size

    try:
        pairs = split_pairs(profile)
        found = estimate(profile, pairs["train"], gpu, test_pairs=pairs.get("test", 0))
        kept = training_output_bytes(profile, found.parameters, found.trainable)
        lines = found.lines() + [
            f"disk: {kept_checkpoints(profile)} checkpoints and the export, about {size(kept)}"
        ]
    except UserError as exc:
        lines = [f"estimate unavailable: {exc}"]
    from ..training.tracking import tensorboard_line

    line = tensorboard_line(profile, Path.cwd())
    return lines + ([line] if line else [])


STAGE = Stage(
    name="train",
    description="RET-CLIP training",
    sections=("data.image_size", "model", "train"),
    needs=("lmdb",),
    run=run,
    inputs=_inputs,
    outputs=_outputs,
    scratch=lambda profile, workdir: [RunLayout.of(profile, workdir).training],
    precious=True,
    plan_lines=_plan_lines,
    # A failure before the first checkpoint (towers that do not load) leaves nothing to go on
    # from: the next start trains afresh, and the plan says so.
    resumable=lambda profile, workdir: RunLayout.of(profile, workdir).latest.exists(),
)
