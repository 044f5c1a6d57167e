"""What a training run saves: checkpoints that resume exactly (weights, optimizer, scheduler,
scaler, the random number generators and the position in the data order), written atomically
and read back with weights_only=True (plain containers and tensors only); the earlier
settings' outputs set aside; and the final export folder."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_open
from ..errors import UserError


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(path: Path, payload: dict[str, Any]) -> None:
    with atomic_open(path, "wb") as handle:
        torch.save(payload, handle)


def load(path: Path) -> dict[str, Any]:
    from ..model.weights import safe_load

    data = safe_load(path)
    if not isinstance(data, dict) or "state_dict" not in data:
        raise UserError(f"cannot read checkpoint {path}: it holds no state dict")
    return data


def set_aside(folder: Path, workdir: Path, keep: set[Path], emit) -> Path | None:
    """Move the pipeline's own files in a run's training folder (but `keep`) to
    superseded/<time>/ under the run folder, and say where and how much; None when there
    were none."""
    import os
    import time

    from .. import ownership
    from ..units import size

    owned = [p for p in ownership.owned_files(folder) if p not in keep]
    if not owned:
        return None
    aside = workdir / "superseded" / time.strftime("%Y%m%d-%H%M%S")
    ownership.claim_folder(aside, [p.relative_to(workdir).as_posix() for p in owned])
    total = 0
    for path in owned:
        target = aside / path.relative_to(workdir)
        target.parent.mkdir(parents=True, exist_ok=True)
        total += path.stat().st_size
        os.replace(path, target)
    checkpoints = sum(1 for p in owned if p.parent.name == "checkpoints" and p.suffix == ".pt")
    emit.warn(
        f"the training outputs of earlier settings ({checkpoints} checkpoints, {size(total)}) "
        f"are set aside in {aside}: they are deleted once this run has written its first "
        f"checkpoint; move them elsewhere now to keep them"
    )
    return aside


def discard_superseded(aside: Path, emit) -> None:
    from .. import ownership
    from ..units import size

    total = sum(p.stat().st_size for p in aside.rglob("*") if p.is_file())
    ownership.remove(aside)
    emit.log(f"deleted {aside} ({size(total)}): this run's first checkpoint is written")


def payload(trainer, rngs: list) -> dict[str, Any]:
    """What a checkpoint holds: everything an exact resume needs, and the settings' print."""
    return {
        "epoch": trainer.progress.epoch,
        "step": trainer.progress.step,
        "name": trainer.ctx.profile.name,
        "state_dict": trainer.module.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "scaler": trainer.scaler.state_dict(),
        "rng": rngs,
        "progress": vars(trainer.progress),
        "fingerprint": trainer.ctx.fingerprint,
        "best": best_record(trainer.progress, trainer.cfg.epochs),
    }


def best_record(progress, epochs: int) -> dict[str, Any] | None:
    """The best validation figure so far: which, its value, its epoch, of how many."""
    if progress.best is None:
        return None
    return {
        "metric": progress.best_metric,
        "value": progress.best,
        "epoch": progress.best_epoch,
        "epochs": epochs,
    }


def keep_best(layout) -> None:
    """best.pt becomes epoch_latest.pt as just written at the end of the best epoch (a hard
    link where it can be: no second copy on disk)."""
    from ..atomic import link_or_copy

    link_or_copy(layout.latest, layout.best)


def prune_epochs(layout, keep: int) -> list[Path]:
    """Delete all but the newest `keep` epoch{N}.pt files this run wrote (none when `keep` is
    0); best.pt and epoch_latest.pt always stay."""
    import re

    from .. import ownership

    if not keep:
        return []
    numbered = []
    for path in ownership.owned_files(layout.checkpoints):
        match = re.fullmatch(r"epoch(\d+)\.pt", path.name)
        if match and path == layout.epoch_checkpoint(int(match.group(1))):
            numbered.append((int(match.group(1)), path))
    old = [path for _, path in sorted(numbered)[:-keep]]
    for path in old:
        ownership.remove(path)
    return old


def params_text(trainer) -> str:
    """A run's params_<time>.txt: the settings and what training made of them."""
    import json

    params = {
        "model": vars(trainer.ctx.profile.model),
        "train": vars(trainer.cfg),
        "device": str(trainer.device),
        "precision": str(trainer.dtype or "fp32"),
        "pairs": len(trainer.train_set),
        "batch_size_used": trainer.batch,
        "batches_per_epoch": trainer.batches,
    }
    return json.dumps(params, indent=2, default=str) + "\n"


def made_here(data: dict, ctx) -> bool:
    """Whether a checkpoint was written for these settings: it carries their fingerprint,
    or the one an earlier version made for them (a run cut off before the upgrade, whose
    record was taken over: state.RunState.take_over)."""
    from ..state import RunState

    said = data.get("fingerprint")
    if said == ctx.fingerprint:
        return True
    earlier = RunState.load(ctx.workdir).stages.get("train", {}).get("earlier")
    return isinstance(said, str) and said == earlier


def restore(trainer) -> bool:
    """Load the run's epoch_latest.pt into the trainer when these settings wrote it."""
    latest = trainer.layout.latest
    if not latest.exists():
        return False
    data = load(latest)
    if not made_here(data, trainer.ctx):
        return False  # another run's: its outputs are set aside at the first save
    trainer.module.load_state_dict(data["state_dict"])
    trainer.optimizer.load_state_dict(data["optimizer"])
    trainer.scheduler.load_state_dict(data["scheduler"])
    trainer.scaler.load_state_dict(data["scaler"])
    rngs, world = data["rng"], trainer.world
    set_rng_state(rngs[world.rank] if len(rngs) == world.size else rngs[0])
    trainer.progress = type(trainer.progress)(**data["progress"])
    p = trainer.progress
    if p.best is not None and p.best_epoch == p.epoch and p.batch == 0 and trainer.world.main:
        keep_best(trainer.layout)  # a kill may have come between the epoch's two writes
    trainer.ctx.emit.log(f"resuming at epoch {p.epoch + 1}, batch {p.batch}, step {p.step}")
    return True


def export_run(module, tokenizer, folder: Path, best: Path | None = None) -> None:
    """The export folder written whole beside its place, then moved there; with the weights
    of `best` (best.pt) when there is one."""
    from .. import ownership
    from ..atomic import replace_dir
    from ..model.export import write_export

    if best is not None and best.exists():
        module.load_state_dict(load(best)["state_dict"])
    building = folder.with_name(f".{folder.name}.building")
    ownership.claim_folder(folder)  # its files claimed one by one as the build moves in
    ownership.remove(building)
    building.mkdir(parents=True)
    write_export(module, tokenizer, building)
    replace_dir(building, folder)
