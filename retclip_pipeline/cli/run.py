"""`run` (the default command): the stages of a profile, or its plan (--dry-run), or a
preflight (--check); under torchrun, every process trains and rank 0 keeps the records."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..errors import UserError
from ..profile import GPU_CHOICES
from . import PROG


def add(commands) -> None:
    parser = commands.add_parser(
        "run",
        prog=PROG,
        help="run the pipeline (the default command)",
        description="Run the RET-CLIP pipeline headless: convert, lmdb, train, evaluate. A "
        "rerun skips what is done, resumes what was cut off, and redoes what a changed "
        "setting made stale.",
        epilog="Other commands (each with --help): compare RUN_DIR...; embed --run RUN_DIR "
        "(--images DIR | --texts FILE); query --run RUN_DIR TEXT | --image PATH; "
        "token check | login; promote --run SMOKE_RUN_DIR (the same settings at full size); "
        "sweep --profile P --vary KEY=V1,V2 (a grid of variants, one table); "
        "push --run RUN_DIR --repo USER/NAME (the model and its card to the Hub).",
    )
    parser.set_defaults(handler=_dispatch)
    parser.add_argument("--profile", required=True, type=Path, help="the run's TOML profile")
    parser.add_argument(
        "--stages", help="comma-separated stages to run, in pipeline order (default: all)"
    )
    parser.add_argument("--workdir", type=Path, help="run directory (overrides the profile's)")
    parser.add_argument(
        "--checkpoint",
        help="checkpoint the evaluate stage reads (overrides "
        'eval.checkpoint; "init": the untrained starting weights)',
    )
    parser.add_argument(
        "--restart",
        action="store_true",
        help="discard the selected stages' outputs and run them from zero",
    )
    parser.add_argument(
        "--gpu",
        choices=[g for g in GPU_CHOICES if g],
        help="with --check or --dry-run: also estimate memory and time per epoch on this GPU "
        "(overrides train.gpu)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan (done / stale / to run, inputs, outputs, counts); change nothing",
    )
    mode.add_argument(
        "--check",
        action="store_true",
        help="preflight: profile, files, columns, data set, token, disk space",
    )


def _selected(value: str | None) -> list[str] | None:
    """The stages --stages names, in pipeline order; None (all) when it is not given."""
    if value is None:
        return None
    from ..runner import stage_names

    known = stage_names()
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:  # "," or "" would otherwise run every stage
        raise UserError(f"--stages names no stage: choose from {', '.join(known)}")
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UserError(f"unknown stage {unknown[0]!r} in --stages: choose from {', '.join(known)}")
    return [n for n in known if n in names]


def run_profile(path: Path) -> int:
    """Run every stage of the profile at `path`, as `--profile PATH` does."""
    return _dispatch(build_args(["--profile", str(path)]))


def build_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add(parser.add_subparsers())
    return parser.parse_args(["run", *argv])


def _dispatch(args: argparse.Namespace) -> int:
    from .. import profile as profiles

    profile = profiles.load(args.profile, check_files=not args.check)
    if args.workdir:
        profile.workdir = str(args.workdir.expanduser().resolve())
    if args.checkpoint:
        checkpoint = args.checkpoint
        profile.eval.checkpoint = (
            checkpoint if checkpoint == "init" else str(Path(checkpoint).expanduser().resolve())
        )
    workdir = profile.workdir_path()
    selected = _selected(args.stages)
    if args.check:
        return _check(profile, workdir, args.gpu, selected)
    if args.dry_run:
        return _dry_run(profile, workdir, selected, args.gpu)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # started by torchrun
        return _distributed(profile, workdir, selected)
    from ..console import make_renderer
    from ..runner import run

    renderer = make_renderer()
    try:
        run(profile, workdir, renderer, selected=selected, restart=args.restart)
    finally:
        if hasattr(renderer, "close"):
            renderer.close()
    print(f"run directory: {workdir}", file=sys.stderr)
    return 0


def _distributed(profile, workdir: Path, selected: list[str] | None) -> int:
    """Under torchrun every process trains; rank 0 alone runs the runner (state, events)."""
    if selected != ["train"]:
        raise UserError(
            "under torchrun, run only the train stage (--stages train); build the "
            "data first with: python -m retclip_pipeline --profile P "
            "--stages convert,lmdb"
        )
    if int(os.environ.get("RANK", "0")) == 0:
        from ..console import PlainRenderer
        from ..runner import run

        run(profile, workdir, PlainRenderer(), selected=selected)
        return 0
    from ..runner import fingerprints, plan
    from ..stages.train import run_worker

    status = {row.stage.name: row.status for row in plan(profile, workdir)}
    if status["train"] != "done":
        run_worker(profile, workdir, fingerprints(profile)["train"])
    return 0


def _check(profile, workdir: Path, gpu: str | None, selected: list[str] | None) -> int:
    from ..checks import Check, passed, render, summary
    from ..preflight.check import run_checks
    from ..runner import refusals

    items = run_checks(profile, workdir, gpu)
    items += [Check.of("stages", False, problem) for problem in refusals(profile, selected)]
    print(render(items))
    print(summary(items))
    return 0 if passed(items) else 2


def _dry_run(profile, workdir: Path, selected: list[str] | None, gpu: str | None) -> int:
    from ..runner import plan

    print(f"plan for {profile.name} in {workdir} (nothing is changed)")
    for row in plan(profile, workdir, selected):
        stage = row.stage
        reason = f" ({row.reason})" if row.reason else ""
        if not row.selected:
            reason += " [not selected]"
        print(f"  {stage.name:<8} {row.status}{reason}")
        print(f"           inputs:  {', '.join(stage.inputs(profile, workdir))}")
        outputs = stage.outputs(profile, workdir)
        print(f"           outputs: {', '.join(_shown(p, workdir) for p in outputs)}")
        for line in stage.plan_lines(profile, gpu) if stage.plan_lines else []:
            print(f"           {line}")
    return 0


def _shown(path: Path, workdir: Path) -> str:
    """A stage output relative to the run folder; in full when it lies elsewhere (a sweep
    variant's data folder, shared through data_dir)."""
    return str(path.relative_to(workdir)) if path.is_relative_to(workdir) else str(path)
