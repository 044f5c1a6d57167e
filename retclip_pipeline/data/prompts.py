"""Reading the user's prompt CSVs, and the stratified sizing of a sample."""

from __future__ import annotations

import codecs
import csv
import functools
import io
import random
import re
import sys
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..profile import DataSection

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass
class PromptRow:
    line: int  # line number in the CSV file (the header is line 1)
    index: int  # row index into the data set split
    label: str | None
    text: str
    left_text: str | None = None
    right_text: str | None = None
    key: str | None = None  # join = key or file: the id the CSV gives the row's images
    files: tuple[str, ...] = ()  # join = file: the image file names, one per eye
    left_label: str | None = None
    right_label: str | None = None


@dataclass
class PromptTable:
    path: Path
    rows: list[PromptRow]
    rows_read: int
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)

    def by_index(self) -> dict[int, list[PromptRow]]:
        groups: dict[int, list[PromptRow]] = defaultdict(list)
        for row in self.rows:
            groups[row.index].append(row)
        return dict(groups)


def needed_columns(data: DataSection) -> dict[str, str]:
    """CSV column names the profile needs, by the profile key that names each."""
    needed = {"text_column": data.text_column}
    if data.join == "index":
        needed = {"index_column": data.index_column} | needed
    elif data.key_column or data.join == "key":
        needed = {"key_column": data.key_column} | needed
    if data.label_column:
        needed["label_column"] = data.label_column
    if data.eyes == "paired":
        needed["left_text_column"] = data.left_text_column
        needed["right_text_column"] = data.right_text_column
        for key in ("left_label_column", "right_label_column"):
            if getattr(data, key):
                needed[key] = getattr(data, key)
    needed |= {key: getattr(data, key) for key in file_keys(data)}
    return needed


def file_keys(data: DataSection) -> tuple[str, ...]:
    """join = file: the profile keys naming the CSV columns that hold image file names."""
    if data.join != "file":
        return ()
    return ("left_file_column", "right_file_column") if data.eyes == "paired" else ("file_column",)


def _anchor(data: DataSection) -> str:
    """The column a row starts with, for telling a swallowed row (see row_problem)."""
    if data.join == "index":
        return data.index_column
    return data.key_column or getattr(data, file_keys(data)[0])


def read_start(path: Path, limit: int) -> tuple[str, bool]:
    """The first `limit` bytes of a CSV as text (a byte-order mark dropped, a character cut
    at the end left out), and whether the file goes on: a preview never reads a huge file.
    One-line errors as read_header's; a byte that is not UTF-8 is named by its line."""
    with _reading(path), open(path, "rb") as handle:
        raw = handle.read(limit + 1)
    more = len(raw) > limit
    raw = raw[:limit].removeprefix(codecs.BOM_UTF8)
    try:
        return codecs.getincrementaldecoder("utf-8")().decode(raw, final=not more), more
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, raw, exc) from None


def read_header(path: Path) -> list[str]:
    """The column names on a CSV's first line; one-line errors for a file that is missing, a
    folder, unreadable, not UTF-8 or empty."""
    with _reading(path), open(path, newline="", encoding="utf-8-sig") as handle:
        return _header(path, next(csv.reader(handle), []))


def check_columns(path: Path, data: DataSection) -> list[str]:
    """The CSV's header, once it is known to hold each column the profile needs, once."""
    return _check_header(path, read_header(path), data)


def read_prompts(path: Path, data: DataSection, split_size: int | None) -> PromptTable:
    """All rows of a prompt CSV; bad rows stop the run or are skipped, per data.on_bad_row.
    A bad row is named by its first line; see `row_problem` for what makes a row bad."""
    lines = _read_lines(path)
    records = list(csv_records(path, lines))
    first = records.pop(0) if records else None
    header = _check_header(path, _header(path, first[2] if first else []), data)
    index_at = header.index(_anchor(data))
    starts = None  # join = index: a row starts with an integer; else with an id of its shape
    if data.join != "index":
        shapes = {_shape(f[index_at]) for a, b, f in records if a == b and len(f) > index_at}
        starts = functools.partial(_shaped, shapes - {""})
    keys: dict[str, int] = {}  # join = key or file: each id's image index, in CSV order
    rows: list[PromptRow] = []
    bad: list[tuple[int, str]] = []
    labelled: dict[int, tuple[str, int]] = {}  # each image's label, and the line giving it
    read = 0
    for line, end, fields in records:
        read += 1
        problem = row_problem(lines, line, end, fields, len(header), index_at, starts)
        if problem:
            bad.append((line, problem))
            continue
        record = dict(zip(header, fields, strict=True))
        joined = _join_fields(record, data)
        if isinstance(joined, str):
            bad.append((line, joined))
            continue
        key, files = joined
        if key is None:
            raw_index = record[data.index_column].strip()
            if not DIGITS.fullmatch(raw_index):  # int() would also take "1_4", "+1", "١"
                bad.append((line, f"{data.index_column} {raw_index!r} is not an integer"))
                continue
            index = int(raw_index)
            if split_size is not None and index >= split_size:
                bad.append(
                    (
                        line,
                        f"{data.index_column} {index} is outside the split (0..{split_size - 1})",
                    )
                )
                continue
        else:
            index = keys.setdefault(key, len(keys))
        texts = {"text": record[data.text_column].strip()}
        if data.eyes == "paired":
            texts["left_text"] = record[data.left_text_column].strip()
            texts["right_text"] = record[data.right_text_column].strip()
        empty = [name for name, value in texts.items() if not value]
        if empty:
            bad.append((line, f"empty prompt ({', '.join(empty)})"))
            continue
        label = record[data.label_column].strip() if data.label_column else None
        first = labelled.setdefault(index, (label, line)) if label else (label, line)
        if first[0] != label:  # the image's texts would stand for two classes
            said = f"{data.label_column} {label!r}, but line {first[1]} gives the same image"
            bad.append((line, f"{said} {first[0]!r}"))
            continue
        eye_labels = {
            f"{side}_label": record[column].strip() or None
            for side, column in (
                ("left", data.left_label_column),
                ("right", data.right_label_column),
            )
            if column and data.eyes == "paired"
        }
        rows.append(
            PromptRow(line, index, label or None, **texts, key=key, files=files, **eye_labels)
        )
    if bad and data.on_bad_row == "error":
        shown = "; ".join(f"line {line}: {reason}" for line, reason in bad[:3])
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise UserError(
            f"{path}: {len(bad)} bad row(s): {shown}{more}; fix them, or set "
            f'data.on_bad_row = "skip" to leave them out'
        )
    if not read:
        raise UserError(f"{path} has a header and no rows: add one row per prompt")
    if not rows:
        raise UserError(f"{path}: no usable rows: check the CSV and its column settings")
    return PromptTable(path, rows, read, bad)


DIGITS = re.compile(r"[0-9]+")


def _join_fields(record: dict[str, str], data: DataSection) -> tuple[str | None, tuple] | str:
    """(the row's key, its image file names) for data.join, or why the row has none."""
    if data.join == "index":
        return None, ()
    files = tuple(record[getattr(data, k)].strip() for k in file_keys(data))
    key = record[data.key_column].strip() if data.key_column else "|".join(files)
    if not key:
        return f"empty {data.key_column}"
    empty = [getattr(data, k) for k, name in zip(file_keys(data), files, strict=True) if not name]
    if empty:
        return f"no image file named ({', '.join(empty)} empty)"
    return key, files


def _shape(value: str) -> str:
    """An id's shape: letters a, digits 9, runs as one ("P0012_left.jpg" -> "a9_a.a")."""
    value = re.sub(r"[0-9]", "9", re.sub(r"[^\W\d_]", "a", value.strip()))
    return re.sub(r"([a9])\1+", r"\1", value)


def _shaped(shapes: set[str], value: str) -> bool:
    return bool(value.strip()) and " " not in value.strip() and _shape(value) in shapes


def row_problem(
    lines: list[str],
    line: int,
    end: int,
    fields: list[str],
    width: int,
    index_at: int,
    starts=None,
) -> str | None:
    """Why a record (physical lines `line`..`end`) cannot be read as a row, or None.

    An unclosed quote makes the csv module read on, newlines included, until the next quote
    character, so it swallows the rows below. A quoted prompt may legitimately span lines,
    so the rule is: a record over several lines is bad when one of its later lines reads, on
    its own, as a row (at least as many fields as the header, an integer in the index
    column's place, or with join = key or file an id shaped as the file's single-line rows'
    ids: `starts`). A quote that closes before the field ends ('"a" b') would be dropped
    from the prompt: bad. Then a field count against the header's: an unquoted comma gives
    more fields and cuts the prompt; fewer fields means some are missing."""
    for text in lines[line:end]:  # the record's lines after its first (`lines` is 0-based)
        alone = next(csv.reader([text]), [])
        if len(alone) < width:
            continue
        if starts(alone[index_at]) if starts else DIGITS.fullmatch(alone[index_at].strip()):
            swallowed = f"line {end}" if end == line + 1 else f"lines {line + 1}-{end}"
            return (
                f"a quote opens on this line and is not closed, so {swallowed} became part "
                'of this row: close the quote (write a quote inside a prompt as "")'
            )
    try:
        next(csv.reader(lines[line - 1 : end], strict=True), None)
    except csv.Error as exc:
        if "end of data" in str(exc):  # the file ends inside the quote
            return 'a quote opens on this line and is not closed: close the quote (write "")'
        return (
            "a quoted part is followed by more text in the same field, and its quotes would "
            'be lost: quote the whole field, writing a quote inside it as ""'
        )
    if len(fields) > width:
        return f"{len(fields)} fields, the header has {width}: an unquoted comma? quote the prompt"
    if len(fields) < width:
        return f"{len(fields)} field(s), the header has {width}: fields missing"
    return None


def columns_said(header: list[str]) -> str:
    """A header as a message names it: short, whatever the file holds (a binary file's
    "header" can be megabytes), with a hint when it is not comma-separated."""
    if len(header) == 1:
        return f"its only column is {header[0][:40]!r} ({separator_hint(header)})"
    names = ", ".join(name[:30] for name in header[:8])
    more = f" and {len(header) - 8} more" if len(header) > 8 else ""
    return f"its columns are {names}{more}"


def separator_hint(header: list[str]) -> str:
    """What a header of one column says about the file."""
    for mark, name in (("\t", "tab"), (";", "semicolon"), ("|", "bar")):
        if mark in header[0]:
            return f"the file looks {name}-separated; a prompt CSV is comma-separated"
    return "a prompt CSV has an index, a text and maybe a label column, comma-separated"


def _header(path: Path, header: list[str]) -> list[str]:
    """`header`, once there is one (an empty file, or one of blank lines, has none)."""
    if not header:
        raise UserError(f"{path} is empty: a prompt CSV starts with a header line of column names")
    return header


def _check_header(path: Path, header: list[str], data: DataSection) -> list[str]:
    """`header`, once each column the profile needs is in it exactly once (a repeated column
    would leave which one is read to chance: a whole-file problem, never a skipped row)."""
    for key, column in needed_columns(data).items():
        if column not in header:
            raise UserError(
                f"{path} has no column {column!r} ({columns_said(header)}): "
                f"set data.{key} to the right column"
            )
        if header.count(column) > 1:
            raise UserError(
                f"{path} line 1: column {column!r} appears {header.count(column)} times in "
                f"the header: rename or remove the extra one(s)"
            )
    return header


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Reading a CSV: what the user can fix ends in one line."""
    try:
        yield
    except FileNotFoundError:
        raise UserError(f"CSV not found: {path}: check data.train_csv / data.test_csv") from None
    except IsADirectoryError:
        raise UserError(
            f"{path} is a folder: data.train_csv / data.test_csv name a CSV file"
        ) from None
    except PermissionError:
        raise UserError(f"no permission to read {path}: make the CSV readable") from None
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text: save the CSV as UTF-8") from None
    except OSError as exc:  # a symlink loop, an I/O error: still one line
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None


def _read_lines(path: Path) -> list[str]:
    """The CSV's physical lines as the csv module counts them (newlines kept, a byte-order
    mark dropped); a byte that is not UTF-8 is named by its line."""
    with _reading(path):
        raw = path.read_bytes()
    raw = raw.removeprefix(codecs.BOM_UTF8)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, raw, exc) from None
    return list(io.StringIO(text, newline=""))


def _not_utf8(path: Path, raw: bytes, exc: UnicodeDecodeError) -> UserError:
    line = len(re.findall(rb"\r\n|\r|\n", raw[: exc.start])) + 1
    return UserError(f"{path} line {line} is not UTF-8 text: save the CSV as UTF-8")


def csv_records(path: Path, lines: list[str]) -> Iterator[tuple[int, int, list[str]]]:
    """(first line, last line, fields) of each record in a CSV's lines; blank lines left out."""
    reader = csv.reader(lines)
    end = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise UserError(f"{path} line {reader.line_num}: {exc}: fix the CSV") from None
        line, end = end + 1, reader.line_num
        if fields:
            yield line, end, fields


def stratified_sample(
    labels_by_index: dict[int, str | None], count: int, seed: int, runs: bool = False
) -> list[int]:
    """`count` indices, classes in proportion (each class at least one when count allows),
    the same for the same seed; sorted. `runs`: each class's share is one run of
    consecutive indices from a seeded start, so that a stream of a data set stored in
    index order reads a row group or two per class instead of one per row (smoke runs)."""
    if count >= len(labels_by_index):
        return sorted(labels_by_index)
    classes: dict[str, list[int]] = defaultdict(list)
    for index, label in sorted(labels_by_index.items()):
        classes[label or ""].append(index)
    total = len(labels_by_index)
    quotas = {c: count * len(members) / total for c, members in classes.items()}
    taken = {c: int(q) for c, q in quotas.items()}
    if count >= len(classes):
        for c in classes:
            taken[c] = max(taken[c], 1)
    # Hand out what is left by largest remainder; take back from the largest classes if the
    # one-per-class floor overshot.
    by_remainder = sorted(classes, key=lambda c: (-(quotas[c] - int(quotas[c])), c))
    while sum(taken.values()) < count:
        for c in by_remainder:
            if sum(taken.values()) < count and taken[c] < len(classes[c]):
                taken[c] += 1
    while sum(taken.values()) > count:
        largest = max(classes, key=lambda c: (taken[c], c))
        taken[largest] -= 1
    chosen: list[int] = []
    for c, members in classes.items():
        rng = random.Random(f"{seed}:{c}")
        if runs:
            start = rng.randrange(len(members) - taken[c] + 1)
            chosen += members[start : start + taken[c]]
        else:
            chosen += rng.sample(members, taken[c])
    return sorted(chosen)
