"""What a user sees before converting: a CSV's first rows and what looks wrong in them, its
likely column mapping, the columns the profile needs, and a validation report (counts, texts
per image, classes, prompt lengths against the context, the data set's own check, a hub set's
access and row counts). The TUI's Data screen shows these; they never change a file."""

from __future__ import annotations

import dataclasses
import io
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..checks import FAIL, OK, SKIP, WARN, Check, passed
from ..data.join import things
from ..data.prompts import (
    columns_said,
    csv_records,
    needed_columns,
    read_prompts,
    read_start,
    row_problem,
    separator_hint,
)
from ..errors import UserError
from ..profile import DataSection, Profile

INDEX_NAMES = ("dataset_index", "index", "idx", "image_index", "row", "patient_id", "id")
LABEL_NAMES = ("label", "class", "diagnosis", "category", "labels")
TEXT_NAMES = ("prompt", "text", "caption", "report", "description", "prompt_patient")
PREVIEW_BYTES = 1 << 20  # a glance reads at most this much of a file, however big
EXAMPLE_CSV = Path(__file__).resolve().parents[2] / "prompts" / "example_prompts.csv"
UNCHECKED = "data set {} not checked; it is checked when you convert or run --check online"


@dataclass
class Glance:
    """A CSV's header and first rows (each cut or padded to the header's width, so that a
    ragged row never breaks a table view), and what looks wrong in them."""

    header: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)


def glance(path: Path, rows: int = 5, data: DataSection | None = None) -> Glance:
    """The first rows of a CSV, from its first megabyte only; a file that is not CSV text at
    all (missing, a folder, not UTF-8, empty, a first line over a megabyte) is a UserError."""
    text, more = read_start(path, PREVIEW_BYTES)
    lines = list(io.StringIO(text, newline=""))
    if more:
        lines = lines[:-1]  # it may be cut
        if not lines:
            raise UserError(
                f"{path}: its first line is over {PREVIEW_BYTES >> 20} MB: not a prompt CSV "
                "(one starts with a header line of column names)"
            )
    records = csv_records(path, lines)
    first = next(records, None)
    if first is None:
        raise UserError(f"{path} is empty: a prompt CSV starts with a header line of column names")
    header = first[2]
    width = len(header)
    index = (data or DataSection()).index_column
    index_at = header.index(index) if index in header else 0
    seen = Glance(header, [], _header_notes(header))
    try:
        for line, end, fields in records:
            if len(seen.rows) >= rows:
                break
            problem = row_problem(lines, line, end, fields, width, index_at)
            if problem and len(seen.notes) < 2:
                seen.notes.append(f"line {line}: {problem}")
            seen.rows.append((fields + [""] * width)[:width])
    except UserError as exc:  # a CSV error below the header: the rows so far, and why
        seen.notes.append(str(exc))
    if not seen.rows and rows and not more:
        seen.notes.append("a header and no rows: add one row per prompt")
    return seen


def _header_notes(header: list[str]) -> list[str]:
    notes = []
    if len(header) == 1:
        notes.append("one column only: " + separator_hint(header))
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        notes.append(f"column {repeated[0]!r} appears {header.count(repeated[0])} times")
    return notes


def preview(path: Path, rows: int = 5) -> tuple[list[str], list[list[str]]]:
    """The header and the first rows of a CSV (see glance)."""
    seen = glance(path, rows)
    return seen.header, seen.rows


def guess_columns(path: Path) -> dict[str, str]:
    """The profile's data.*_column keys for a CSV, guessed from its header and first rows:
    known names first, else the all-integer column for the index and the longest text.
    Nothing for a file of one column (it is no prompt CSV: a guess would be noise)."""
    header, rows = preview(path, 20)
    if len(header) < 2:
        return {}
    lower = {name.lower(): name for name in header if len(name) <= 100}

    def named(candidates) -> str | None:
        return next((lower[c] for c in candidates if c in lower), None)

    def column(name: str) -> list[str]:
        k = header.index(name)
        return [row[k] for row in rows if k < len(row)]

    usable = [h for h in header if h and len(h) <= 100]
    index = named(INDEX_NAMES) or next(
        (h for h in usable if column(h) and all(v.strip().isdigit() for v in column(h))), None
    )
    text = named(TEXT_NAMES) or max(
        (h for h in usable if h != index),
        key=lambda h: sum(len(v) for v in column(h)),
        default=None,
    )
    label = named(LABEL_NAMES)
    guess = {"index_column": index, "text_column": text, "label_column": label}
    return {key: value for key, value in guess.items() if value}


def column_guide(data: DataSection) -> list[tuple[str, str, bool]]:
    """(profile key, what its CSV column holds, needed) for each column the profile reads,
    worded by the profile's own help strings so that the screen never drifts from them."""
    helps = {spec.name: spec.metadata["help"] for spec in dataclasses.fields(DataSection)}
    keys = needed_columns(dataclasses.replace(data, label_column=data.label_column or "label"))
    order = ("index_column", "label_column", "text_column")
    out = []
    for key in sorted(keys, key=lambda k: order.index(k) if k in order else len(order)):
        said = helps[key].removeprefix("paired: ").removeprefix("CSV column with ")
        out.append((key, said, key != "label_column"))
    return out


def column_problems(profile: Profile) -> dict[str, str]:
    """What is wrong with the prompt CSVs' headers, by the profile key to fix ("data.text_column"
    for a missing column; "data.train_csv" for a file that is no CSV text). A path that is no
    file is left to the profile's own checks. Reads a megabyte of each CSV at most."""
    problems: dict[str, str] = {}
    for name, key in (("train", "train_csv"), ("test", "test_csv")):
        value = getattr(profile.data, key)
        if not value:
            continue
        path = profile.resolve(value)
        try:
            header = glance(path, 0, profile.data).header
        except UserError as exc:
            if path.exists():
                problems.setdefault(f"data.{key}", str(exc))
            continue
        for column_key, column in needed_columns(profile.data).items():
            if column not in header:
                message = f"{column!r} is not in the {name} CSV: {columns_said(header)}"
            elif header.count(column) > 1:
                message = f"{column!r} appears {header.count(column)} times in the {name} CSV"
            else:
                continue
            problems.setdefault(f"data.{column_key}", message)
    return problems


def csv_problems(profile: Profile) -> dict[str, str]:
    """What stops the prompt CSVs from being read as the conversion reads them, by the
    profile key to fix: the columns first (see column_problems), then each CSV's rows (a bad
    row with data.on_bad_row = "error", no usable row) at its data.*_csv key."""
    problems = column_problems(profile)
    if problems:
        return problems
    for key in ("train_csv", "test_csv"):
        value = getattr(profile.data, key)
        if not value:
            continue
        try:
            read_prompts(profile.resolve(value), profile.data, None)
        except UserError as exc:
            problems[f"data.{key}"] = str(exc)
    return problems


@dataclass
class Report:
    """The data report: its checks in order (one with no name is a line that only says what
    was found) and a verdict. lines, problems and warnings: the texts of the ok, failed and
    warned checks."""

    checks: list[Check] = field(default_factory=list)
    at: dict[str, str] = field(default_factory=dict)  # a problem by the profile key to fix

    def add(self, line: str) -> None:
        self.checks.append(Check("", OK, line))

    def fail(self, line: str) -> None:
        self.checks.append(Check("", FAIL, line))

    def warn(self, line: str) -> None:
        self.checks.append(Check("", WARN, line))

    @property
    def ok(self) -> bool:
        return passed(self.checks)

    def _texts(self, state: str) -> list[str]:
        return [check.text for check in self.checks if check.state == state]

    @property
    def lines(self) -> list[str]:
        return self._texts(OK)

    @property
    def problems(self) -> list[str]:
        return self._texts(FAIL)

    @property
    def warnings(self) -> list[str]:  # passes, with something to look at
        return self._texts(WARN)

    def verdict(self) -> str:
        """One line a screen keeps in sight: the first problem, or ready (with a warning)."""
        if not self.ok:
            return self.problems[0]
        return "; ".join(["ready to convert", *self.warnings[:1]])


def data_report(profile: Profile, tokens: bool = True, token=None) -> Report:
    """Check the CSVs against the profile, and the data set: a local one's splits, a hub
    one's access and row counts; `token`: a hub.Token, else the profile's. The hub is asked
    once first whether it answers (when the data set or the text tower is on it); when it
    does not, the report says so, the hub set is not checked, and the tokenizer comes from
    the cache only (no minute of silent retries)."""
    from ..hub.reach import hub_or_cache, not_reached
    from ..model.sources import hub_ids

    kind, _ = profile.dataset_source()
    towers = bool(tokens and hub_ids([profile.model.text]))
    with hub_or_cache(kind == "hub" or towers) as reason:
        report = _data_report(profile, tokens, token, reason)
        if reason is not None and kind != "hub":  # a hub set's own line says it
            report.warn(not_reached(reason, "using cached files"))
        return report


def _data_report(profile: Profile, tokens: bool, token, reason: str | None) -> Report:
    from ..data.sampling import plan_counts, split_plan

    report = Report(at=column_problems(profile))
    tables = {}
    for name, csv_key, _ in split_plan(profile):
        try:
            table = read_prompts(profile.resolve(csv_key), profile.data, None)
        except UserError as exc:
            report.fail(str(exc))
            if not report.at:  # a missing column is said at its own field
                report.at[f"data.{name}_csv"] = str(exc)
            continue
        tables[name] = table
        groups = table.by_index()
        several = sum(1 for rows in groups.values() if len(rows) > 1)
        texts = Counter(row.text for row in table.rows)
        repeated = sum(count - 1 for count in texts.values() if count > 1)
        report.add(
            f"{name}: {table.rows_read} rows, {len(groups)} distinct {things(profile.data)}, "
            f"{several} with several texts, {repeated} repeated prompts, "
            f"{len(table.skipped)} rows skipped"
        )
        for line, skipped in table.skipped[:3]:
            report.add(f"  line {line}: {skipped}")
        classes = Counter(rows[0].label for rows in groups.values())
        shown = ", ".join(f"{label} {count}" for label, count in classes.most_common())
        report.add(f"  {len(classes)} classes: {shown}")
    # The CSVs failed: the data set's access still said (a misspelt id, or not checked
    # offline); its rows are counted against the CSVs only once they read.
    csv_ok = report.ok
    if csv_ok or profile.dataset_source()[0] == "hub":
        report.checks += dataset_items(profile, token, reason, rows=csv_ok)
    if csv_ok:
        counts = plan_counts(profile)
        report.add(
            "sizing "
            + profile.sizing.mode
            + ": "
            + ", ".join(f"{n} {c['sampled']} of {c['images']}" for n, c in counts.items())
        )
    if tokens and tables:
        for line in _token_lines(profile, tables):
            report.add(line)
    return report


def dataset_items(
    profile: Profile, token=None, reason: str | None = None, rows=True
) -> list[Check]:
    """The data set's check items: a hub set is asked first whether it exists and can be
    read (a misspelt id is named as hub.dataset), then (with `rows`) its splits' row counts
    against the CSV indices. `reason`: why the hub did not answer the caller's probe (see hub.reach);
    then one warning that the id was not checked, and why."""
    from .check import dataset_checks

    kind, where = profile.dataset_source()
    if kind == "hub":
        from ..hub.reach import not_reached

        if reason is not None:
            said = not_reached(reason, UNCHECKED.format(where))
            return [Check.of("hub.dataset", True, said, warning=True)]
        from ..hub.access import check
        from ..hub.client import resolve_token

        token = token or resolve_token(profile)
        findings = check(token, where, None, probed=True)
        # Not checked: a warning here (the report's verdict stays usable offline).
        unchecked = [Check(f.name, WARN, f.detail) for f in findings if f.state == SKIP]
        failed = [f for f in findings if f.state == FAIL]
        if failed or unchecked:  # no rows can be counted without access
            return failed + unchecked
        found = [findings[-1]]
        return found + (dataset_checks(profile, token) if rows else [])
    return dataset_checks(profile)


def _token_lines(profile: Profile, tables) -> list[str]:
    from ..data.report import fit_lines, measure_tokens, prompt_fit

    return fit_lines(prompt_fit(profile, tables, measure_tokens(profile.model.text, tables)))
