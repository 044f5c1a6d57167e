"""Editing a profile from text, as typed in the wizard or given on the command line
(`sweep --vary model.text=a,b`): the text as the key's type (a typed path relative to the
current folder), then the key's own rules; and the TOML a save writes, paths relative to
the file saved."""

from __future__ import annotations

import dataclasses
import itertools
import os
from pathlib import Path
from typing import Any

from . import profile as profiles
from .errors import UserError
from .profile import SECTION_CLASSES, Profile, ProfileError, from_dict, to_dict

# Keys a sweep cannot vary: where the variants live is the sweep's to choose.
FIXED = ("name", "workdir", "data_dir")


def convert(profile: Profile, dotted: str, value: Any) -> Any:
    """A string typed into a field, as the key's type."""
    if not isinstance(value, str):
        return value
    section, _, key = dotted.rpartition(".")
    holder = getattr(profile, section) if section else profile
    current = getattr(holder, key)
    text = value.strip()
    if isinstance(current, bool):
        if text.lower() in ("true", "yes", "on", "1"):
            return True
        if text.lower() in ("false", "no", "off", "0"):
            return False
        raise ValueError("expected yes or no")
    if isinstance(current, int):
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"expected a whole number, got {text!r}") from None
    if isinstance(current, float):
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"expected a number, got {text!r}") from None
    return text


def _known(dotted: str) -> bool:
    section, _, key = dotted.partition(".")
    cls = SECTION_CLASSES.get(section)
    return cls is not None and key in {f.name for f in dataclasses.fields(cls)}


def typed_values(profile: Profile, option: str, text: str) -> tuple[str, list[Any]]:
    """`KEY=V1,V2` as (KEY, [typed V1, typed V2]); a UserError naming the key otherwise."""
    key, sep, values = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UserError(f"{option} {text!r}: expected KEY=V1,V2 (e.g. train.lr=0.001,0.0005)")
    if key in FIXED:
        raise UserError(f"{option} {key}: the sweep chooses each variant's {key}; vary another key")
    if not _known(key):
        section = key.partition(".")[0]
        known = (
            [f"{section}.{f.name}" for f in dataclasses.fields(SECTION_CLASSES[section])]
            if section in SECTION_CLASSES
            else [f"{name}.KEY" for name in SECTION_CLASSES]
        )
        raise UserError(f"{option} {key}: unknown profile key (known: {', '.join(known)})")
    section, _, name = key.partition(".")
    if not isinstance(getattr(getattr(profile, section), name), str | bool | int | float):
        raise UserError(f"{option} {key}: a list or table key cannot be varied")
    texts = [v.strip() for v in values.split(",")]
    if (
        not values.strip()
        or any(not v for v in texts)
        and not isinstance(getattr(getattr(profile, section), name), str)
    ):
        raise UserError(f"{option} {key}: give the values after '=', comma-separated")
    typed = []
    for raw in texts:
        try:
            value = convert(profile, key, raw)
        except ValueError as exc:
            raise UserError(f"{option} {key}={raw}: {exc}") from None
        try:  # the key's own rules: its choices, range and checks
            from_dict({section: {name: value}}, cross=False, check_files=False)
        except ProfileError as exc:
            raise UserError(f"{option} {key}={raw}: {exc.problems[0].message}") from None
        if value in typed:
            raise UserError(f"{option} {key}: the value {raw!r} is given twice")
        typed.append(value)
    return key, typed


def grid(profile: Profile, varies: list[str], option: str = "--vary") -> list[dict[str, Any]]:
    """Every combination (the cartesian product) of the --vary values, as {key: value}."""
    axes: dict[str, list[Any]] = {}
    for text in varies:
        key, values = typed_values(profile, option, text)
        if key in axes:
            raise UserError(f"{option} {key}: the key is varied twice; give its values once")
        axes[key] = values
    if not axes:
        raise UserError(f"{option}: give at least one KEY=V1,V2 to vary")
    return [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())]


def with_values(profile: Profile, values: dict[str, Any]) -> Profile:
    """A copy of the profile with the keys set, checked whole (a variant may break a rule
    between keys): a UserError naming the key and the problem."""
    raw = to_dict(profile, resolved=True)
    for dotted, value in values.items():
        section, _, name = dotted.partition(".")
        raw.setdefault(section, {})[name] = value
    try:
        return from_dict(raw, source=profile.source)
    except ProfileError as exc:
        shown = ", ".join(f"{k}={v}" for k, v in values.items())
        raise UserError(
            f"variant {shown}: {exc.problems[0].key}: {exc.problems[0].message}"
        ) from None


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


def set_fields(profile: Profile, values: dict[str, Any]) -> Profile:
    """A copy of the profile with `values` ("section.key" -> value, strings converted to
    each key's type), checked as a loaded file would be; raises ProfileError."""
    raw = profiles.to_dict(profile)
    problems = []
    for dotted, value in values.items():
        section, _, key = dotted.rpartition(".")
        target = raw.setdefault(section, {}) if section else raw
        try:
            target[key] = convert(profile, dotted, typed_value(dotted, value))
        except ValueError as exc:
            problems.append(profiles.Problem(dotted, str(exc)))
    if problems:  # with what the other keys' own checks say: every error at once
        try:
            profiles.from_dict(raw, source=profile.source, cross=False)
        except ProfileError as exc:
            problems += [p for p in exc.problems if p.key in values]
        raise ProfileError(problems, profile.source)
    updated = profiles.from_dict(raw, source=profile.source, cross=False)
    # Rules between keys bind only the keys being set: the train CSV is not yet required
    # on the screen before the one that asks for it.
    problems = [p for p in profiles.cross_checks(updated, "", True) if p.key in values]
    if problems:
        raise ProfileError(problems, profile.source)
    return updated


def file_text(profile: Profile, target: Path) -> str:
    """The TOML a save to `target` writes: only what differs from the defaults, paths
    relative to the target's folder. Never the token: the profile has no field for it.
    Saved over the file it was loaded from, that file's comments and layout are kept
    (toml_keep.merged)."""
    import tomli_w

    data = file_data(profile, target)
    plain = tomli_w.dumps(data)
    source = profile.source
    if source is None or not target.is_file() or Path(source).resolve() != target.resolve():
        return plain
    try:
        old = target.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return plain
    from .toml_keep import merged

    return merged(old, data, file_data(profile, target, minimal=False)) or plain


def file_data(profile: Profile, target: Path, minimal: bool = True) -> dict[str, Any]:
    """The profile as a save to `target` writes it (see file_text); with `minimal` False,
    every key, defaults included."""
    data = profiles.to_dict(profile, minimal=minimal)
    folder = target.parent.resolve()
    # Always written: an empty workdir means runs/<name> in whatever folder a later run
    # starts from, not the run directory this session showed and used.
    data["workdir"] = os.path.relpath(profile.workdir_path(), folder)
    for section, table in data.items():
        if not isinstance(table, dict):
            continue
        specs = {f.name: f for f in dataclasses.fields(getattr(profile, section))}
        for key, value in table.items():
            local = section == "hub" and key == "dataset"
            if local and profile.dataset_source()[0] != "local":
                continue
            if (specs[key].metadata.get("file") or local) and value not in ("", "init"):
                table[key] = os.path.relpath(profile.resolve(value), folder)
    return data
