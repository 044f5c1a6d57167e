"""Which checkpoint the evaluate stage reads: torch-free, so that a plan (the wizard's plan
line, --dry-run) can fingerprint the evaluation without importing torch."""

from __future__ import annotations

from pathlib import Path

from ..layout import RunLayout
from ..profile import Profile


def checkpoint_path(profile: Profile, workdir: Path, override: str | None = None) -> str:
    """The checkpoint to evaluate: a path, or "init" for the untrained starting weights."""
    choice = override or profile.eval.checkpoint
    if choice == "init":
        return "init"
    if choice:
        return str(profile.resolve(choice))
    return str(RunLayout.of(profile, workdir).latest)
