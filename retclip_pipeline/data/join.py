"""Joining prompt CSV rows to their images by something other than the row index: by key
(data.join = "key": the CSV's key_column matched against a data set column) or by file
name (data.join = "file": ODIR's sheet names `0_left.jpg` and `0_right.jpg` in a folder).

Conversion then sees a split as it always does: rows by integer index, each index one
patient (or image) of the CSV, numbered in CSV order. A key with no image is a bad row:
named with its count in one line, or left out under data.on_bad_row = "skip"."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import UserError
from ..profile import DataSection
from .prompts import PromptTable


@dataclass
class JoinedSplit:
    """A split as conversion reads it: by our index, the images that the CSV's key or file
    names found (`paths`), or the data set row the key matched (`rows` of `base`)."""

    name: str
    paths: dict[int, tuple[str, ...]] = field(default_factory=dict)
    base: object = None
    base_rows: dict[int, int] = field(default_factory=dict)
    label_column = None
    label_names = None

    def __len__(self) -> int:
        return len(self.paths) + len(self.base_rows)

    def rows(self, indices: list[int]) -> list[tuple[tuple[bytes | str, ...], str | None]]:
        if self.base is not None:
            return self.base.rows([self.base_rows[i] for i in indices])
        return [(self.paths[i], None) for i in indices]


def join_split(data: DataSection, table: PromptTable, source) -> tuple[JoinedSplit, dict]:
    """(the split by our indices, {index: why it has no image}) for data.join "key"/"file"."""
    first = {}
    for row in table.rows:
        first.setdefault(row.index, row)
    joined = JoinedSplit(source.name)
    unmatched: dict[int, str] = {}
    if data.join == "file":
        for index, row in first.items():
            found = [source.find(name) for name in row.files]
            problems = [f for f in found if isinstance(f, str)]
            if problems:
                unmatched[index] = "; ".join(problems)
            else:
                joined.paths[index] = tuple(str(path) for path in found)
        return joined, unmatched
    values = source.keys(data.dataset_key_column)
    if not values:
        raise UserError(
            f"data set split {source.name!r} has no column {data.dataset_key_column!r}: set "
            f"data.dataset_key_column to the column holding {data.key_column}'s ids"
        )
    rows: dict[str, list[int]] = {}
    for number, value in enumerate(values):
        rows.setdefault(str(value).strip(), []).append(number)
    joined.base = source
    for index, row in first.items():
        matches = rows.get(row.key, [])
        if len(matches) == 1:
            joined.base_rows[index] = matches[0]
        elif matches:
            unmatched[index] = (
                f"{len(matches)} data set rows have {data.dataset_key_column} {row.key!r}"
            )
        else:
            unmatched[index] = f"no data set row has {data.dataset_key_column} {row.key!r}"
    return joined, unmatched


def drop_unmatched(data: DataSection, table: PromptTable, unmatched: dict[int, str]) -> list[str]:
    """Leave out the rows whose images were not found (data.on_bad_row = "skip"; returns
    one warning for each), or stop with one line that counts and names them (error)."""
    if not unmatched:
        return []
    what = data.key_column or "file"
    lines = {}
    for row in table.rows:
        lines.setdefault(row.index, (row.line, row.key))
    patients = len(lines)
    shown = [
        f"{what} {lines[index][1]!r} (line {lines[index][0]}): {reason}"
        for index, reason in sorted(unmatched.items())
    ]
    if data.on_bad_row == "error":
        more = f" and {len(shown) - 3} more" if len(shown) > 3 else ""
        raise UserError(
            f"{table.path}: {len(unmatched)} of {patients} {things(data)} have no image: "
            f"{'; '.join(shown[:3])}{more}; fix the CSV or the images, or set "
            f'data.on_bad_row = "skip" to leave them out'
        )
    kept = [row for row in table.rows if row.index not in unmatched]
    table.skipped += [(row.line, "no image") for row in table.rows if row.index in unmatched]
    table.rows = kept
    if not kept:
        raise UserError(f"{table.path}: none of its {patients} {things(data)} has an image")
    return [
        f"{table.path.name}: skipped {len(unmatched)} of {patients} {things(data)} with no "
        f"image: {'; '.join(shown[:3])}" + (" ..." if len(shown) > 3 else "")
    ]


def things(data: DataSection) -> str:
    """What one index of the CSV is: a patient's two eyes, or one image."""
    return "patients" if data.eyes == "paired" else "images"
