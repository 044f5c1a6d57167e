"""A hand-written profile saved again with its comments and layout kept: each key line stays
where it was with its comment, a changed value is written in its place, a key no longer set
goes, a new key joins the end of its table (a new table, the end of the file). Profiles are
flat tables of plain keys; a file laid out otherwise is written afresh (merged returns None).
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

HEADER = re.compile(r"^\s*\[([A-Za-z0-9_-]+)\]\s*(#.*)?$")
KEY = re.compile(r"^(\s*)([A-Za-z0-9_-]+)(\s*=\s*)")
MAX_VALUE_LINES = 200  # a multi-line array or string longer than this: written afresh


def merged(old: str, wanted: dict[str, Any], full: dict[str, Any]) -> str | None:
    """`old` holding the values of `wanted` (the keys a save writes: those not at their
    defaults), or None when its layout is not one kept here. `full` holds every key's value
    (defaults included): a key the old file sets to its current value stays as written, a
    default included."""
    import tomli_w

    try:
        tomllib.loads(old)
    except tomllib.TOMLDecodeError:
        return None
    lines = old.splitlines()
    out: list[str] = []
    seen: set[tuple[str, str]] = set()
    ends: dict[str, int] = {}  # table ("" for the top) -> where in `out` its keys end
    section, index = "", 0
    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            out.append(line)
            index += 1
            continue
        header = HEADER.match(line)
        if header:
            section = header.group(1)
            if not isinstance(full.get(section), dict):
                return None  # a table no profile has
            out.append(line)
            ends[section] = len(out)
            index += 1
            continue
        found = KEY.match(line)
        if not found or stripped.startswith("["):
            return None  # [[arrays]], [a.b], dotted keys: not a profile's layout
        last, value = _extent(lines, index, found.group(2))
        if last is None:
            return None
        key, table = found.group(2), _table(full, section)
        if table is None:
            return None
        if key in table and value == table[key]:
            out.extend(lines[index : last + 1])  # as written: comments, spacing and all
        elif key in table:
            try:
                text = tomli_w.dumps({key: table[key]}).rstrip("\n").split(" = ", 1)[1]
            except (TypeError, IndexError):
                return None
            start = f"{found.group(1)}{key}{found.group(3)}{text}"
            comment = _comment(lines, index, last).lstrip()
            if comment and "\n" not in text:  # at its column, where the value leaves room
                column = len(lines[last]) - len(comment)
                comment = " " * max(1, column - len(start)) + comment
            elif comment:
                comment = " " + comment
            out.append(start + comment)
        seen.add((section, key))  # a key no longer set (back to its default) goes
        ends[section] = len(out)
        index = last + 1
    _add_missing(out, wanted, seen, ends)
    text = "\n".join(out) + "\n"
    return text if _holds(text, wanted, full) else None


def _table(data: dict[str, Any], section: str) -> dict[str, Any] | None:
    if not section:
        return {k: v for k, v in data.items() if not isinstance(v, dict)}
    table = data.get(section)
    return table if isinstance(table, dict) else None


def _extent(lines: list[str], first: int, key: str) -> tuple[int | None, Any]:
    """The last line of the value that starts at line `first`, and the value."""
    for last in range(first, min(first + MAX_VALUE_LINES, len(lines))):
        try:
            parsed = tomllib.loads("\n".join(lines[first : last + 1]))
        except tomllib.TOMLDecodeError:
            continue
        return last, parsed.get(key)
    return None, None


def _comment(lines: list[str], first: int, last: int) -> str:
    """The comment after a value on its last line, with the spaces before it ("" if none)."""
    line = lines[last]
    for at in [i for i, char in enumerate(line) if char == "#"]:
        try:
            tomllib.loads("\n".join([*lines[first:last], line[:at]]))
        except tomllib.TOMLDecodeError:
            continue  # a "#" inside a string
        before = line[:at]
        return before[len(before.rstrip()) :] + line[at:]
    return ""


def _add_missing(
    out: list[str], wanted: dict[str, Any], seen: set[tuple[str, str]], ends: dict[str, int]
) -> None:
    """The keys `wanted` sets that the old file lacks: at the end of their table's keys."""
    import tomli_w

    inserts: list[tuple[int, list[str]]] = []
    appended: list[str] = []
    for section in ["", *[k for k, v in wanted.items() if isinstance(v, dict)]]:
        table = _table(wanted, section) or {}
        missing = {k: v for k, v in table.items() if (section, k) not in seen}
        if not missing:
            continue
        text = tomli_w.dumps(missing).rstrip("\n").splitlines()
        if section in ends:
            inserts.append((ends[section], text))
        elif not section:  # the top keys before the first table
            first = next((i for i, line in enumerate(out) if HEADER.match(line)), len(out))
            inserts.append((first, text))
        else:
            appended += ["", f"[{section}]", *text]
    for where, text in sorted(inserts, key=lambda item: item[0], reverse=True):
        out[where:where] = text
    out.extend(appended)


def _holds(text: str, wanted: dict[str, Any], full: dict[str, Any]) -> bool:
    """The merged text says what `wanted` says, and nothing that `full` does not."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return False
    for section in ["", *[k for k, v in data.items() if isinstance(v, dict)]]:
        table, every = _table(data, section) or {}, _table(full, section) or {}
        if any(key not in every or every[key] != value for key, value in table.items()):
            return False
    for section in ["", *[k for k, v in wanted.items() if isinstance(v, dict)]]:
        table, written = _table(wanted, section) or {}, _table(data, section) or {}
        if any(written.get(key) != value for key, value in table.items()):
            return False
    return True


def comments(text: str) -> list[str]:
    """The comments in a TOML text, as written (a "#" inside a string is none)."""
    found = []
    for number, line in enumerate(text.splitlines()):
        for at in [i for i, char in enumerate(line) if char == "#"]:
            try:
                tomllib.loads("\n".join([*text.splitlines()[:number], line[:at]]))
            except tomllib.TOMLDecodeError:
                continue
            found.append(line[at:].strip())
            break
    return found
