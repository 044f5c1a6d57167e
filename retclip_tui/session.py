"""What the wizard knows between screens: the profile being edited, the token typed in
(memory only), and the run it started or attached to. No Textual here."""

from __future__ import annotations

import dataclasses
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retclip_pipeline import profile as profiles
from retclip_pipeline.atomic import write_text
from retclip_pipeline.errors import UserError
from retclip_pipeline.layout import TUI_PROFILE, RunLayout
from retclip_pipeline.profile import Profile, ProfileError
from retclip_pipeline.profile_edit import convert

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
        """A copy of the profile with `values` ("section.key" -> value, strings converted to
        each key's type), checked as a loaded file would be; raises ProfileError."""
        raw = profiles.to_dict(self.profile)
        problems = []
        for dotted, value in values.items():
            section, _, key = dotted.rpartition(".")
            target = raw.setdefault(section, {}) if section else raw
            try:
                target[key] = convert(self.profile, dotted, typed_value(dotted, value))
            except ValueError as exc:
                problems.append(profiles.Problem(dotted, str(exc)))
        if problems:  # with what the other keys' own checks say: every error at once
            try:
                profiles.from_dict(raw, source=self.profile.source, cross=False)
            except ProfileError as exc:
                problems += [p for p in exc.problems if p.key in values]
            raise ProfileError(problems, self.profile.source)
        updated = profiles.from_dict(raw, source=self.profile.source, cross=False)
        # Rules between keys bind only the keys being set: the train CSV is not yet required
        # on the screen before the one that asks for it.
        problems = [p for p in profiles.cross_checks(updated, "", True) if p.key in values]
        if problems:
            raise ProfileError(problems, self.profile.source)
        self.profile = updated
        return updated

    def write_run_profile(self) -> Path:
        """The profile, paths absolute, in the run directory for the detached pipeline."""
        path = RunLayout(self.workdir).tui_profile
        self.workdir.mkdir(parents=True, exist_ok=True)
        write_text(path, profiles.dumps(self.profile, minimal=True, resolved=True))
        return path

    def save_text(self, target: Path) -> str:
        """The TOML a save to `target` writes: only what differs from the defaults, paths
        relative to the target's folder. Never the token: the profile has no field for it."""
        data = profiles.to_dict(self.profile, minimal=True)
        folder = target.parent.resolve()
        # Always written: an empty workdir means runs/<name> in whatever folder a later run
        # starts from, not the run directory this session showed and used.
        data["workdir"] = os.path.relpath(self.profile.workdir_path(), folder)
        for section, table in data.items():
            if not isinstance(table, dict):
                continue
            specs = {f.name: f for f in dataclasses.fields(getattr(self.profile, section))}
            for key, value in table.items():
                local = section == "hub" and key == "dataset"
                if local and self.profile.dataset_source()[0] != "local":
                    continue
                if (specs[key].metadata.get("file") or local) and value not in ("", "init"):
                    absolute = self.profile.resolve(value)
                    table[key] = os.path.relpath(absolute, folder)
        import tomli_w

        return tomli_w.dumps(data)

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


def path_keys() -> set[str]:
    """The keys that name a file or folder: "hub.dataset" and the profile's file keys."""
    return {"hub.dataset", *(f"{section}.{key}" for section, key in profiles.file_keys())}


def typed_path(text: str) -> Path:
    """A path typed in the wizard: relative to the current folder, as in a shell (a saved
    profile's paths are relative to its own folder: Session.save_text writes them so)."""
    try:
        path = Path(text).expanduser()
    except RuntimeError:  # "~someone/..." with no such user: a path that is not found
        path = Path(text)
    return path if path.is_absolute() else Path.cwd() / path


def typed_value(dotted: str, value: Any) -> Any:
    """What a field's text means for the profile: a path typed relative to the current
    folder made absolute; a hub id (owner/name that is no folder here) and "init" kept."""
    if dotted not in path_keys() or not isinstance(value, str):
        return value
    text = value.strip()
    if text in ("", "init"):  # no file, or the untrained starting weights
        return value
    if dotted == "hub.dataset":
        looks_local = text.startswith((".", "/", "~")) or not profiles.HUB_ID.match(text)
        if not looks_local and not typed_path(text).exists():
            return value  # a hub id
    return str(typed_path(text))


def field_text(profile: Profile, dotted: str, value: Any) -> str:
    """A value as its field shows it: a path relative to the current folder (where it is
    under it), whatever folder the profile's own paths are relative to."""
    if value is None:
        return ""
    text = str(value)
    if dotted == "hub.dataset":
        kind, where = profile.dataset_source()
        return shown(where) if kind == "local" and text else text
    if dotted in path_keys() and text.strip() and text != "init":
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


def run_roots(session: Session) -> list[Path]:
    roots = [Path.cwd() / "runs", session.profile.workdir_path().parent]
    if DRIVE.is_dir():
        roots.append(DRIVE / "retclip-runs")
    return roots
