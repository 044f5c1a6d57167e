"""Reading the user's prompt CSVs, and the stratified sizing of a sample."""

from __future__ import annotations

import csv
import random
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError
from .profile import DataSection

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass
class PromptRow:
    line: int  # line number in the CSV file (the header is line 1)
    index: int  # row index into the data set split
    label: str | None
    text: str
    left_text: str | None = None
    right_text: str | None = None


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
    needed = {"index_column": data.index_column, "text_column": data.text_column}
    if data.label_column:
        needed["label_column"] = data.label_column
    if data.eyes == "paired":
        needed["left_text_column"] = data.left_text_column
        needed["right_text_column"] = data.right_text_column
    return needed


def read_header(path: Path) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return next(csv.reader(handle), [])
    except FileNotFoundError:
        raise UserError(f"CSV not found: {path}: check data.train_csv / data.test_csv") from None
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text: save the CSV as UTF-8") from None


def check_columns(path: Path, data: DataSection) -> None:
    header = read_header(path)
    for key, column in needed_columns(data).items():
        if column not in header:
            raise UserError(
                f"{path} has no column {column!r} (columns: {', '.join(header)}): "
                f"set data.{key} to the right column"
            )


def read_prompts(path: Path, data: DataSection, split_size: int | None) -> PromptTable:
    """All rows of a prompt CSV; bad rows stop the run or are skipped, per data.on_bad_row."""
    check_columns(path, data)
    rows: list[PromptRow] = []
    bad: list[tuple[int, str]] = []
    read = 0
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        for record in reader:
            read += 1
            line = reader.line_num
            raw_index = (record.get(data.index_column) or "").strip()
            try:
                index = int(raw_index)
            except ValueError:
                bad.append((line, f"{data.index_column} {raw_index!r} is not an integer"))
                continue
            if index < 0 or (split_size is not None and index >= split_size):
                bad.append(
                    (
                        line,
                        f"{data.index_column} {index} is outside the split "
                        f"(0..{(split_size or 1) - 1})",
                    )
                )
                continue
            texts = {"text": (record.get(data.text_column) or "").strip()}
            if data.eyes == "paired":
                texts["left_text"] = (record.get(data.left_text_column) or "").strip()
                texts["right_text"] = (record.get(data.right_text_column) or "").strip()
            empty = [name for name, value in texts.items() if not value]
            if empty:
                bad.append((line, f"empty prompt ({', '.join(empty)})"))
                continue
            label = (record.get(data.label_column) or "").strip() if data.label_column else None
            rows.append(PromptRow(line, index, label or None, **texts))
    if bad and data.on_bad_row == "error":
        shown = "; ".join(f"line {line}: {reason}" for line, reason in bad[:3])
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise UserError(
            f"{path}: {len(bad)} bad row(s): {shown}{more}; fix them, or set "
            f'data.on_bad_row = "skip" to leave them out'
        )
    if not rows:
        raise UserError(f"{path}: no usable rows: check the CSV and its column settings")
    return PromptTable(path, rows, read, bad)


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
