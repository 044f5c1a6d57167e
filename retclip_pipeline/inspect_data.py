"""What a user sees before converting: a CSV's likely column mapping, its first rows, and a
validation report (counts, texts per image, classes, prompt lengths against the context,
the data set's own check). The TUI's Data screen shows these; they never change a file."""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError
from .profile import Profile
from .prompts import read_header, read_prompts

INDEX_NAMES = ("dataset_index", "index", "idx", "image_index", "row", "patient_id", "id")
LABEL_NAMES = ("label", "class", "diagnosis", "category", "labels")
TEXT_NAMES = ("prompt", "text", "caption", "report", "description", "prompt_patient")


def preview(path: Path, rows: int = 5) -> tuple[list[str], list[list[str]]]:
    """The header and the first rows of a CSV, each row cut or padded to the header's width
    (a ragged row must not break a table view; validating names it by its line)."""
    header = read_header(path)
    width = len(header)
    out = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            next(reader, None)
            for row in reader:
                if row:
                    out.append((row + [""] * width)[:width])
                if len(out) >= rows:
                    break
    except (UnicodeDecodeError, csv.Error):
        pass  # the rows read so far; validating reports the problem with its line
    return header, out


def guess_columns(path: Path) -> dict[str, str]:
    """The profile's data.*_column keys for a CSV, guessed from its header and first rows:
    known names first, else the all-integer column for the index and the longest text."""
    header, rows = preview(path, 20)
    lower = {name.lower(): name for name in header}

    def named(candidates) -> str | None:
        return next((lower[c] for c in candidates if c in lower), None)

    def column(name: str) -> list[str]:
        k = header.index(name)
        return [row[k] for row in rows if k < len(row)]

    index = named(INDEX_NAMES) or next(
        (h for h in header if column(h) and all(v.strip().isdigit() for v in column(h))), None
    )
    text = named(TEXT_NAMES) or max(
        (h for h in header if h != index),
        key=lambda h: sum(len(v) for v in column(h)),
        default=None,
    )
    label = named(LABEL_NAMES)
    guess = {"index_column": index, "text_column": text, "label_column": label}
    return {key: value for key, value in guess.items() if value}


@dataclass
class Report:
    ok: bool = True
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        self.lines.append(line)

    def fail(self, line: str) -> None:
        self.ok = False
        self.problems.append(line)


def data_report(profile: Profile, tokens: bool = True) -> Report:
    """Check the CSVs against the profile (and the data set, when it is local); summarise."""
    from .check import dataset_checks
    from .convert import plan_counts, split_plan

    report = Report()
    tables = {}
    for name, csv_key, _ in split_plan(profile):
        try:
            table = read_prompts(profile.resolve(csv_key), profile.data, None)
        except UserError as exc:
            report.fail(str(exc))
            continue
        tables[name] = table
        groups = table.by_index()
        several = sum(1 for rows in groups.values() if len(rows) > 1)
        texts = Counter(row.text for row in table.rows)
        repeated = sum(count - 1 for count in texts.values() if count > 1)
        report.add(
            f"{name}: {table.rows_read} rows, {len(groups)} distinct images, "
            f"{several} with several texts, {repeated} repeated prompts, "
            f"{len(table.skipped)} rows skipped"
        )
        for line, reason in table.skipped[:3]:
            report.add(f"  line {line}: {reason}")
        classes = Counter(rows[0].label for rows in groups.values())
        shown = ", ".join(f"{label} {count}" for label, count in classes.most_common())
        report.add(f"  {len(classes)} classes: {shown}")
    if report.ok:
        for item in dataset_checks(profile):
            (report.add if item.ok else report.fail)(f"{item.name}: {item.detail}")
        counts = plan_counts(profile)
        report.add(
            "sizing "
            + profile.sizing.mode
            + ": "
            + ", ".join(f"{n} {c['sampled']} of {c['images']}" for n, c in counts.items())
        )
    if tokens and tables:
        report.lines += _token_lines(profile, tables)
    return report


def _token_lines(profile: Profile, tables) -> list[str]:
    from .convert_report import fit_lines, measure_tokens, prompt_fit

    return fit_lines(prompt_fit(profile, tables, measure_tokens(profile.model.text, tables)))
