"""Command line: python -m retclip_pipeline --profile P [--stages ...] [--workdir DIR]
[--restart] [--dry-run] [--check].

Exit codes: 0 done, 2 a user error (one line on stderr), 130 interrupted (rerun to resume),
1 a bug (with its traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import StageInterrupted, UserError
from .profile import GPU_CHOICES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m retclip_pipeline",
        description="Run the RET-CLIP pipeline headless: convert, lmdb, train, evaluate. A "
        "rerun skips what is done, resumes what was cut off, and redoes what a changed "
        "setting made stale. Also: `compare RUN_DIR...`, `embed --run RUN_DIR (--images DIR | "
        "--texts FILE)`, `query --run RUN_DIR TEXT | --image PATH`, `token check | login`, "
        "`promote --run SMOKE_RUN_DIR` (the same settings at full size).",
    )
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
    return parser


def _selected(value: str | None) -> list[str] | None:
    """The stages --stages names, in pipeline order; None (all) when it is not given."""
    if value is None:
        return None
    from .runner import stage_names

    known = stage_names()
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:  # "," or "" would otherwise run every stage
        raise UserError(f"--stages names no stage: choose from {', '.join(known)}")
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UserError(f"unknown stage {unknown[0]!r} in --stages: choose from {', '.join(known)}")
    return [n for n in known if n in names]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from .quiet import no_library_bars

    no_library_bars()
    try:
        if argv and argv[0] == "compare":
            from .evaluation import compare

            return compare.main(argv[1:])
        if argv and argv[0] == "token":
            from .cli import token as token_cli

            return token_cli.main(argv[1:])
        if argv and argv[0] in ("embed", "query"):
            from .cli import use

            return getattr(use, argv[0])(argv[1:])
        if argv and argv[0] == "promote":
            from .cli import promote

            return promote.main(argv[1:])
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (StageInterrupted, KeyboardInterrupt):
        print(
            "interrupted: finished work is kept; rerun the same command to resume", file=sys.stderr
        )
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    from . import profile as profiles

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
        return _check(profile, workdir, args.gpu)
    if args.dry_run:
        return _dry_run(profile, workdir, selected, args.gpu)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # started by torchrun
        return _distributed(profile, workdir, selected)
    from .console import make_renderer
    from .runner import run

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
        from .console import PlainRenderer
        from .runner import run

        run(profile, workdir, PlainRenderer(), selected=selected)
        return 0
    from .runner import fingerprints, plan
    from .stages.train import run_worker

    status = {row.stage.name: row.status for row in plan(profile, workdir)}
    if status["train"] != "done":
        run_worker(profile, workdir, fingerprints(profile)["train"])
    return 0


def _check(profile, workdir: Path, gpu: str | None) -> int:
    from .preflight.check import run_checks

    items = run_checks(profile, workdir, gpu)
    for item in items:
        print(f"[{item.mark:<4}] {item.name}: {item.detail}")
    failed = [i for i in items if not i.ok]
    warned = sum(1 for i in items if i.ok and i.warning)
    warnings = f" ({warned} with warnings)" if warned else ""
    print(f"{len(items) - len(failed)} of {len(items)} checks passed{warnings}")
    return 0 if not failed else 2


def _train_estimate(profile, gpu: str | None) -> list[str]:
    """The estimate's lines, or why there is none (a tower that cannot be had offline)."""
    from .preflight.estimate import estimate
    from .stages.convert import split_pairs

    try:
        pairs = split_pairs(profile)
        return estimate(profile, pairs["train"], gpu, test_pairs=pairs.get("test", 0)).lines()
    except UserError as exc:
        return [f"estimate unavailable: {exc}"]


def _dry_run(profile, workdir: Path, selected: list[str] | None, gpu: str | None) -> int:
    from .runner import plan

    print(f"plan for {profile.name} in {workdir} (nothing is changed)")
    for row in plan(profile, workdir, selected):
        stage = row.stage
        reason = f" ({row.reason})" if row.reason else ""
        if not row.selected:
            reason += " [not selected]"
        print(f"  {stage.name:<8} {row.status}{reason}")
        print(f"           inputs:  {', '.join(stage.inputs(profile, workdir))}")
        outputs = stage.outputs(profile, workdir)
        print(f"           outputs: {', '.join(str(p.relative_to(workdir)) for p in outputs)}")
        if stage.name == "train":
            for line in _train_estimate(profile, gpu):
                print(f"           {line}")
        if stage.plan_counts:
            for split, counts in stage.plan_counts(profile).items():
                print(
                    f"           {split}: {counts['rows']} CSV rows on {counts['images']} images, "
                    f"{counts['sampled']} images in this run"
                )
            from .preflight.costs import sizing_lines

            for line in sizing_lines(profile):
                print(f"           {line}")
    return 0


def run_main() -> None:
    """Entry point: an interrupt that lands outside main()'s own handling still exits 130."""
    try:
        code = main()
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    run_main()
