"""What the wizard knows between screens: the profile being edited, the token typed in
(memory only), and the run it started or attached to. No Textual here."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retclip_pipeline import profile as profiles
from retclip_pipeline import profile_edit
from retclip_pipeline.atomic import write_text
from retclip_pipeline.errors import UserError
from retclip_pipeline.layout import RESOLVED_PROFILE, TUI_PROFILE, RunLayout
from retclip_pipeline.profile import Profile

RUN_PROFILE = TUI_PROFILE  # the profile's name in a run folder, for a reader with no layout
DRIVE = Path("/content/drive/MyDrive")


@dataclass
class Session:
    profile: Profile = field(default_factory=Profile)
    token: str | None = None  # typed in the Token screen; reaches the pipeline by environment
    run_dir: Path | None = None  # the run started or attached to
    pid: int | None = None  # a pipeline this TUI started
    autostart: bool = False  # the next running step starts at once (the full-size rerun)

    @property
    def workdir(self) -> Path:
        return self.run_dir or self.profile.workdir_path()

    def env(self) -> dict[str, str]:
        return {self.profile.hub.token_env: self.token} if self.token else {}

    def update(self, values: dict[str, Any]) -> Profile:
        """The profile with `values` set ("section.key" -> text as typed; see
        profile_edit.set_fields); raises ProfileError and then keeps the profile as it was."""
        self.profile = profile_edit.set_fields(self.profile, values)
        return self.profile

    def write_run_profile(self) -> Path:
        """The profile, paths absolute, in the run directory for the detached pipeline."""
        path = RunLayout(self.workdir).tui_profile
        self.workdir.mkdir(parents=True, exist_ok=True)
        write_text(path, profiles.dumps(self.profile, minimal=True, resolved=True))
        return path

    def save_text(self, target: Path) -> str:
        return profile_edit.file_text(self.profile, target)

    def save(self, target: Path) -> None:
        """Write the profile to `target`; an OSError becomes a UserError that names the
        user's file (the write goes through a temporary file beside it: never named)."""
        try:
            write_text(target, self.save_text(target))
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            raise UserError(
                f"cannot save {shown(target)}: {why.lower()}: choose another file or folder"
            ) from None
        self.profile = profiles.load(target, check_files=False)


def field_text(profile: Profile, dotted: str, value: Any) -> str:
    """A value as its field shows it: a path relative to the current folder (where it is
    under it), whatever folder the profile's own paths are relative to."""
    if value is None:
        return ""
    text = str(value)
    if dotted == "hub.dataset":
        kind, where = profile.dataset_source()
        return shown(where) if kind == "local" and text else text
    if dotted in profile_edit.path_keys() and text.strip() and text != "init":
        return shown(profile.resolve(text))
    return text


def run_labels(runs: list) -> list[str]:
    """Each run's label (watch.RunInfo): its name, or its folder where names repeat."""
    names = [info.name for info in runs]
    return [shown(info.workdir) if names.count(info.name) > 1 else info.name for info in runs]


def new_profile(folder: Path | None = None) -> Profile:
    """The profile for a folder that has none yet: the defaults, a run name that no run in
    the folder has (retclip, else run-1, run-2, ...), and its run directory runs/<name> there."""
    folder = folder or Path.cwd()
    names = itertools.chain(["retclip"], (f"run-{n}" for n in itertools.count(1)))
    name = next(n for n in names if not (folder / "runs" / n).exists())
    return Profile(name=name, workdir=str(folder / "runs" / name))


def profile_files() -> list[Path]:
    """The profiles in ./profiles (a checkout's, or the user's own)."""
    folder = Path.cwd() / "profiles"
    return sorted(p for p in folder.glob("*.toml") if p.is_file()) if folder.is_dir() else []


def shown(path: Path | str | None) -> str:
    """A path as the screen shows it: relative to the current folder when inside it."""
    if path is None:
        return "not saved"
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def save_target(profile: Profile) -> Path:
    """Where a save goes by default: the profile's own file, or for a new profile or a run's
    copy of one (attached), profiles/<name>.toml in the current folder."""
    source = profile.source
    if source is None or Path(source).name in (TUI_PROFILE, RESOLVED_PROFILE):
        return Path.cwd() / "profiles" / f"{profile.name}.toml"
    return Path(source)


def run_roots(session: Session) -> list[Path]:
    roots = [Path.cwd() / "runs", session.profile.workdir_path().parent]
    if DRIVE.is_dir():
        roots.append(DRIVE / "retclip-runs")
    return roots
