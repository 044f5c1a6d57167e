"""Which checkpoint an evaluation reads, without importing torch: the evaluate stage's
fingerprint asks it for every plan, and a plan with nothing to do must stay fast."""

from __future__ import annotations

from pathlib import Path

from ..layout import RunLayout
from ..profile import Profile


def checkpoint_path(profile: Profile, workdir: Path, override: str | None = None) -> str:
    """The checkpoint to evaluate: a path, or "init" for the untrained starting weights. By
    default the training's best.pt (the best validation figure's), else its latest."""
    choice = override or profile.eval.checkpoint
    if choice == "init":
        return "init"
    if choice:
        return str(profile.resolve(choice))
    layout = RunLayout.of(profile, workdir)
    return str(layout.best if layout.best.exists() else layout.latest)


def missing_checkpoint(profile: Profile, workdir: Path) -> str | None:
    """Why the checkpoint to evaluate cannot be read, or None when it can (or is "init")."""
    path = checkpoint_path(profile, workdir)
    if path == "init" or Path(path).is_file():
        return None
    if profile.eval.checkpoint:
        return (
            f"no checkpoint at {path} (named by eval.checkpoint or --checkpoint): name a "
            'checkpoint file (logs/<name>/checkpoints/*.pt), or "init" for the untrained model'
        )
    return f"no checkpoint at {path}: run the train stage first"
