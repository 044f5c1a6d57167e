"""The TOML profile: one file per experiment, typed sections with defaults.

`load` reports every problem at once, each with its key path and line; `save` writes only
what differs from the defaults. Relative paths in a profile are relative to the profile's
own folder, so a profile works from any current directory. The Hugging Face token is never a
profile field: the profile only names where to find it.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG
from typing import Any

from . import profile_values as rules
from .errors import UserError
from .layout import valid_name
from .profile_schema import (  # noqa: F401 - the schema, read through this module
    DEFAULT_TEMPLATES,
    GPU_CHOICES,
    HUB_ID,
    SECTION_CLASSES,
    SMOKE_SAMPLES,
    DataSection,
    EvalSection,
    HubSection,
    ModelSection,
    Profile,
    SizingSection,
    TrainSection,
    file_keys,
    neutral_keys,
    opt,
    train_batch_size,
)


@dataclass
class Problem:
    key: str
    message: str
    line: int | None = None

    def __post_init__(self) -> None:
        # A message may quote a value; a token pasted into the profile must not be shown.
        self.key, self.message = rules.redact(self.key), rules.redact(self.message)

    def format(self, source: Path | None) -> str:
        where = str(source) if source else "profile"
        if self.line:
            where += f":{self.line}"
        return f"{where}: {self.key}: {self.message}"


class ProfileError(UserError):
    def __init__(self, problems: list[Problem], source: Path | None):
        self.problems = problems
        self.source = source
        super().__init__("\n".join(p.format(source) for p in problems))


def _key_line(text: str, section: str | None, key: str) -> int | None:
    """Line number of `key` in `[section]` (or at the top level) of a TOML text."""
    current: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        header = re.match(r"^\[\s*([^\]]+?)\s*\]", line)
        if header:
            current = header.group(1).strip('"')
            if section is not None and key == "" and current == section:
                return number
            if section is None and current == key:  # a whole [table] that is the problem
                return number
            continue
        if current == section and re.match(rf'^"?{re.escape(key)}"?\s*=', line):
            return number
    return None


def _text_line(text: str, needle: str) -> int | None:
    """Line number of the first line of a TOML text that holds `needle`."""
    return next((n for n, line in enumerate(text.splitlines(), 1) if needle in line), None)


def _type_name(kind: type) -> str:
    return {
        str: "a string",
        int: "an integer",
        bool: "true or false",
        float: "a number",
        list: "a list of strings",
        dict: "a table of strings",
    }[kind]


KINDS = {
    "str": str,
    "int": int,
    "bool": bool,
    "float": float,
    "list[str]": list,
    "dict[str, str]": dict,
}


def _check_value(key: str, value: Any, spec: dataclasses.Field) -> str | None:
    kind = KINDS[spec.type] if isinstance(spec.type, str) else spec.type
    if kind is list and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        return f"expected {_type_name(kind)}, got {value!r}"
    if kind is dict and not (
        isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    ):
        return f"expected {_type_name(kind)}, got {value!r}"
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        return f"expected {_type_name(kind)}, got {value!r}"
    if kind is float and not math.isfinite(value):
        return rules.finite(value)
    meta = spec.metadata
    if meta.get("choices") and value not in meta["choices"]:
        return f"expected one of {', '.join(map(repr, meta['choices']))}, got {value!r}"
    if meta.get("min") is not None and value < meta["min"]:
        return f"must be at least {meta['min']}, got {value}"
    if meta.get("max") is not None and value > meta["max"]:
        return f"must be at most {meta['max']}, got {value}"
    return meta["rule"](value) if meta.get("rule") else None


def _unknown(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key.split(".")[-1], known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
    return "unknown key" + hint


def from_dict(
    raw: dict[str, Any],
    source: Path | None = None,
    text: str = "",
    check_files: bool = True,
    cross: bool = True,
) -> Profile:
    """Build a Profile from parsed TOML, collecting every problem before raising.
    `cross` False leaves out the rules between keys (a wizard fills them in over screens)."""
    problems: list[Problem] = []
    flagged = set()  # keys holding a token: their other problems would only repeat it
    for where, token in rules.tokens(raw):
        names = [part for part in where if isinstance(part, str)]
        flagged.add(".".join(names[:2] if names[0] in SECTION_CLASSES else names[:1]))
        table, last = ".".join(names[:-1]) or None, names[-1]
        line = _key_line(text, table, token if last == "<a key>" else last)
        problems.append(
            Problem(rules.dotted(where), rules.TOKEN_MESSAGE, line or _text_line(text, token))
        )
    profile = Profile(source=source)
    top_fields = {f.name: f for f in dataclasses.fields(Profile) if f.name != "source"}
    for key, value in raw.items():
        if key in flagged:
            continue
        if key not in top_fields:
            problems.append(
                Problem(key, _unknown(key, list(top_fields)), _key_line(text, None, key))
            )
        elif key in SECTION_CLASSES:
            if not isinstance(value, dict):
                problems.append(
                    Problem(key, f"expected a [{key}] table", _key_line(text, None, key))
                )
                continue
            section = getattr(profile, key)
            specs = {f.name: f for f in dataclasses.fields(section)}
            for sub, sub_value in value.items():
                path = f"{key}.{sub}"
                line = _key_line(text, key, sub)
                if path in flagged:
                    continue
                if sub not in specs:
                    problems.append(Problem(path, _unknown(sub, list(specs)), line))
                    continue
                error = _check_value(path, sub_value, specs[sub])
                if error:
                    problems.append(Problem(path, error, line))
                else:
                    setattr(section, sub, sub_value)
        else:
            error = _check_value(key, value, top_fields[key])
            if error:
                problems.append(Problem(key, error, _key_line(text, None, key)))
            else:
                setattr(profile, key, value)
    if cross and not flagged:  # a key set aside would read as missing
        problems += cross_checks(profile, text, check_files)
    if problems:
        raise ProfileError(problems, source)
    return profile


def cross_checks(profile: Profile, text: str, check_files: bool) -> list[Problem]:
    problems = []

    def add(section: str, key: str, message: str) -> None:
        problems.append(Problem(f"{section}.{key}", message, _key_line(text, section, key)))

    data = profile.data
    if not profile.hub.dataset.strip():  # else "" reads as the profile's own folder
        add("hub", "dataset", "required: a hub id (owner/name) or the path of a local folder")
    if not data.train_csv:
        add("data", "train_csv", "required: the path of your train prompt CSV")
    if data.eyes == "paired":
        for key in ("left_text_column", "right_text_column"):
            if not getattr(data, key):
                add("data", key, 'required when data.eyes = "paired"')
    for key in join_keys(data):
        if not getattr(data, key):
            add("data", key, f'required when data.join = "{data.join}"')
    if data.join == "file" and profile.dataset_source()[0] == "hub":
        add("hub", "dataset", 'data.join = "file" reads image files: name a local folder')
    roles = {"text_column": data.text_column, "label_column": data.label_column}
    roles = ({"index_column": data.index_column} if data.join == "index" else {}) | roles
    seen: dict[str, str] = {}
    for key, column in roles.items():  # the prompt read as the label, or the index as text
        if column in seen:
            add("data", key, f"names column {column!r} as data.{seen[column]} does: name its own")
        elif column:
            seen[column] = key
    train = profile.train
    if train.early_stop and train.best_metric and train.early_stop != train.best_metric:
        add(
            "train",
            "early_stop",
            f"{train.early_stop!r} is not train.best_metric = {train.best_metric!r}: early "
            "stopping watches the figure best.pt is kept by; name the same one",
        )
    for key in ("best_metric", "early_stop"):
        if "class" in getattr(train, key) and not data.label_column:
            add(
                "train",
                key,
                f"{getattr(train, key)!r} needs class labels and data.label_column is empty: "
                'name val_loss, val_i2t or val_t2i, or leave it empty ("" chooses)',
            )
    if not valid_name(profile.name):
        problems.append(
            Problem(
                "name",
                f"{profile.name!r}: use letters, digits, '.', '_' or '-' only, not starting "
                "with '.'",
                _key_line(text, None, "name"),
            )
        )
    if check_files:
        for key in ("train_csv", "test_csv"):
            value = getattr(data, key)
            if value and not profile.resolve(value).is_file():
                add("data", key, f"file not found: {profile.resolve(value)}")
        kind, where = profile.dataset_source()
        if kind == "local" and profile.hub.dataset.strip() and not Path(where).exists():
            add("hub", "dataset", f"not a hub id (owner/name) and no such folder: {where}")
        problem = init_problem(profile)
        if problem:  # said at once, not after the conversion, and naming the key
            add("model", "init", problem)
    return problems


def init_problem(profile: Profile) -> str | None:
    """Why model.init names no checkpoint file, or None."""
    path = profile.resolve(profile.model.init) if profile.model.init else None
    if path is None or path.is_file():
        return None
    what = "a folder" if path.is_dir() else "not found"
    return f"{path} is {what}: name a RET-CLIP or Chinese-CLIP checkpoint file, or leave it empty"


def join_keys(data: DataSection) -> tuple[str, ...]:
    """The data keys that data.join needs set."""
    if data.join == "key":
        return ("key_column", "dataset_key_column")
    if data.join == "file":
        return (
            ("left_file_column", "right_file_column") if data.eyes == "paired" else ("file_column",)
        )
    return ()


# A profile is a few kilobytes; a bigger file is something else named by mistake.
MAX_PROFILE_BYTES = 1 << 20


def _read_profile(given: str | Path) -> tuple[Path, str]:
    """The profile's absolute path and text, or one line saying why it cannot be read: a
    folder, a device or a pipe (which would never end, /dev/zero), a link loop, no
    permission, not UTF-8 or over a megabyte. A UTF-8 byte-order mark is dropped."""
    try:
        path = Path(given).expanduser().resolve()
    except (RuntimeError, OSError) as exc:  # a symlink loop
        raise UserError(f"cannot read the profile {given}: {exc}: give its TOML file") from None
    try:
        # Before opening: opening a pipe waits for a writer.
        if path.exists() and not path.is_dir() and not S_ISREG(path.stat().st_mode):
            raise UserError(
                f"{path} is not a regular file (a device, a pipe or a socket): give the "
                f"profile's TOML file"
            )
        with path.open("rb") as file:
            data = file.read(MAX_PROFILE_BYTES + 1)
    except FileNotFoundError:
        examples = Path("profiles")  # named only where there is such a folder to look in
        hint = " (see profiles/ for examples)" if examples.is_dir() else ""
        raise UserError(f"profile not found: {path}{hint}") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a folder: give the profile's TOML file") from None
    except PermissionError:
        raise UserError(f"no permission to read the profile {path}") from None
    except OSError as exc:
        raise UserError(f"cannot read the profile {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_PROFILE_BYTES:
        raise UserError(
            f"{path} is over {MAX_PROFILE_BYTES >> 20} MB: not a profile; give the run's TOML file"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"profile {path} is not UTF-8 text: save it as UTF-8") from None
    return path, text.removeprefix("\ufeff")


def load(path: str | Path, check_files: bool = True) -> Profile:
    path, text = _read_profile(path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        twice = "Cannot overwrite" in message or "twice" in message
        hint = ": a key or table is given twice; keep one" if twice else ": fix it at that line"
        raise UserError(f"{path}: not valid TOML: {rules.redact(message)}{hint}") from None
    return from_dict(raw, source=path, text=text, check_files=check_files)


def to_dict(profile: Profile, minimal: bool = False, resolved: bool = False) -> dict[str, Any]:
    """The profile as TOML-ready data: only non-defaults when `minimal`; absolute paths when
    `resolved` (every default filled in, for the copy kept in the run directory)."""
    defaults = Profile()
    out: dict[str, Any] = {}
    for spec in dataclasses.fields(Profile):
        if spec.name == "source":
            continue
        value = getattr(profile, spec.name)
        if spec.name in SECTION_CLASSES:
            table = {}
            for sub in dataclasses.fields(value):
                sub_value = getattr(value, sub.name)
                if resolved and sub.metadata.get("file") and sub_value not in ("", "init"):
                    sub_value = str(profile.resolve(sub_value))
                if not minimal or sub_value != getattr(getattr(defaults, spec.name), sub.name):
                    table[sub.name] = sub_value
            if resolved and spec.name == "hub":
                kind, where = profile.dataset_source()
                table["dataset"] = where
            if table:
                out[spec.name] = table
        else:
            if resolved and spec.name == "workdir":
                value = str(profile.workdir_path())
            if resolved and spec.name == "data_dir" and value:
                value = str(profile.data_dir_path())
            if not minimal or value != getattr(defaults, spec.name):
                out[spec.name] = value
    return out


def dumps(profile: Profile, minimal: bool = True, resolved: bool = False) -> str:
    import tomli_w

    return tomli_w.dumps(to_dict(profile, minimal=minimal, resolved=resolved))


def save(profile: Profile, path: str | Path) -> None:
    from .atomic import write_text

    write_text(path, dumps(profile, minimal=True))
