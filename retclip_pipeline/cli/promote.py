"""Smoke to full: a finished smoke run's settings at full size, in a run folder of its own.

    python -m retclip_pipeline promote --run runs/smoke [--workdir DIR] [--force] [--start]

The smoke run's checklist must pass (or --force). The full run's profile is written into its
own folder as profile.toml (every setting of the smoke run, the sizing full), and `--start`
runs it at once; otherwise the command to run it is printed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import UserError
from ..profile import Profile
from . import PROG


def full_profile(smoke_workdir: Path, workdir: Path | None = None) -> Profile:
    """The smoke run's resolved profile at full size, named `<name>-full`, in `workdir`
    (default: a folder of that name beside the smoke run's)."""
    from .. import profile as profiles
    from ..layout import RESOLVED_PROFILE

    resolved = smoke_workdir / RESOLVED_PROFILE
    if not resolved.is_file():
        raise UserError(
            f"{smoke_workdir} is not a run folder (no {RESOLVED_PROFILE}): give the smoke "
            f"run's folder with --run"
        )
    profile = profiles.load(resolved)
    if profile.sizing.mode != "smoke":
        raise UserError(
            f"{smoke_workdir} is a {profile.sizing.mode} run, not a smoke run: only a smoke run "
            f"is promoted to full size"
        )
    name = profile.name.removesuffix("-smoke") + "-full"
    target = (workdir or smoke_workdir.parent / name).expanduser().resolve()
    profile.name = name
    profile.workdir = str(target)
    profile.sizing.mode = "full"
    return profile


def promote(smoke_workdir: Path, workdir: Path | None = None, force: bool = False) -> Path:
    """Write the full run's profile into its folder; returns the profile's path."""
    from .. import profile as profiles
    from ..preflight.smoke import checklist

    smoke_workdir = smoke_workdir.expanduser().resolve()
    profile = full_profile(smoke_workdir, workdir)
    failed = [item for item in checklist(smoke_workdir) if not item.ok]
    if failed and not force:
        shown = "; ".join(f"{item.name}: {item.detail}" for item in failed)
        raise UserError(
            f"the smoke run's checklist failed ({shown}): finish or fix the smoke run "
            f"(rerun its profile), or promote anyway with --force"
        )
    target = profile.workdir_path()
    path = target / "profile.toml"
    if path.exists() and profiles.load(path, check_files=False).name != profile.name:
        raise UserError(f"{path} belongs to another run: choose a new folder with --workdir")
    target.mkdir(parents=True, exist_ok=True)
    profile.source = path
    profile.workdir = "."  # the profile lives in its run folder
    profiles.save(profile, path)
    return path


def add(commands) -> None:
    parser = commands.add_parser(
        "promote",
        prog=f"{PROG} promote",
        help="the full-size run of a finished smoke run",
        description="Create the full-size run of a finished smoke run, with its settings.",
    )
    parser.add_argument("--run", required=True, type=Path, help="the smoke run's folder")
    parser.add_argument("--workdir", type=Path, help="the full run's folder (default: beside)")
    parser.add_argument("--force", action="store_true", help="even if the checklist failed")
    parser.add_argument("--start", action="store_true", help="run the full run now")
    parser.set_defaults(handler=_promote)


def _promote(args) -> int:
    path = promote(args.run, args.workdir, args.force)
    command = f"python -m retclip_pipeline --profile {path}"
    print(f"full run created: {path.parent}\nrun it with: {command}", file=sys.stderr)
    if not args.start:
        return 0
    from .run import run_profile

    return run_profile(path)
