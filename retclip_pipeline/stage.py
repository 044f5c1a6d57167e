"""What a stage is: a function of (profile, run directory, event emitter) with declared
inputs, outputs and the profile sections its fingerprint covers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .events import Emitter
from .layout import RunLayout
from .profile import Profile


@dataclass
class StageContext:
    profile: Profile
    workdir: Path
    emit: Emitter
    fingerprint: str

    @property
    def layout(self) -> RunLayout:
        return RunLayout.of(self.profile, self.workdir)


@dataclass(frozen=True)
class Stage:
    name: str
    description: str
    sections: tuple[str, ...]  # profile sections the outputs depend on
    needs: tuple[str, ...]  # stages whose outputs this one reads
    run: Callable[[StageContext], dict[str, Any]]  # returns a summary kept in state.json
    inputs: Callable[[Profile, Path], list[str]]
    outputs: Callable[[Profile, Path], list[Path]]
    # Work to delete on --restart besides the outputs (partial results).
    scratch: Callable[[Profile, Path], list[Path]] = lambda profile, workdir: []
    # Extra fingerprint material beyond the profile sections (e.g. digests of input files).
    extra_fingerprint: Callable[[Profile], dict[str, Any]] = lambda profile: {}
    # What the plan (--dry-run) says beyond inputs and outputs: counts, costs, estimates,
    # computed cheaply without doing the work; (profile, the --gpu named or None) -> lines.
    plan_lines: Callable[[Profile, str | None], list[str]] | None = field(default=None)
    # Outputs that took long to make (trained checkpoints): a change of settings does not
    # delete them before the stage starts; the stage sets them aside itself when it must.
    precious: bool = False
    # Raises a UserError when an input the stage cannot make itself is missing, before
    # anything of an earlier run (its scratch) is removed: a typo never costs finished work.
    ready: Callable[[Profile, Path], None] = lambda profile, workdir: None
    # A problem of the profile that rules the stage out ("" when none): said by --check and
    # before a run's first stage, not when the stage's turn comes after hours of training.
    refuses: Callable[[Profile], str] = lambda profile: ""
    # Whether a cut-off run left work to go on from (training: a checkpoint); when not, the
    # plan says the stage starts afresh rather than "resume".
    resumable: Callable[[Profile, Path], bool] = lambda profile, workdir: True
    # Whether `resumable` alone says that cut-off work fits these settings (its partial work
    # is named by them), though the recorded fingerprint differs: conversion's part files
    # stand for a data set whose bad image was fixed since the cut-off.
    resumes_by_settings: bool = False

    def touched(self, profile: Profile, workdir: Path) -> list[Path]:
        """What running the stage again replaces or removes: its outputs and scratch."""
        return self.outputs(profile, workdir) + self.scratch(profile, workdir)
