"""Data: the data set, the prompt CSVs (typed or picked), the columns they need and their
mapping (guessed from the CSV, editable), a preview of rows with what looks wrong in them,
and the validation report in a scrolling panel under a verdict that stays in sight.

No file may end the wizard: every handler that reads one shows an error in the screen."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, DataTable, Input, Label, Select, Static

from retclip_pipeline.errors import UserError
from retclip_pipeline.hub.client import Token
from retclip_pipeline.profile_edit import typed_path  # typed: from the current folder

from ..session import shown
from ..widgets.file_picker import FilePicker
from .base import Field, WizardScreen, dotted_key, field_id, set_error

COLUMNS = ("index_column", "label_column", "text_column", "left_text_column", "right_text_column")
PAIRED_ONLY = ("left_text_column", "right_text_column")
VERDICT_CHARS = 150  # two lines of the verdict at 80 columns


def brief(said: str) -> str:
    """A verdict that fits its two lines at 80x24, saying where the rest is when cut."""
    if len(said) <= VERDICT_CHARS:
        return said
    return said[: VERDICT_CHARS - 28].rstrip() + "… (all of it in the report)"


NOT_VALIDATED = "not validated yet: ctrl+g checks the CSVs and the data set"
CHANGED = "changed since the last check: ctrl+g checks again"
SCROLL_HINT = "validation report: Tab here, then PgUp/PgDn or arrows to scroll"
BAD_ROW = "data.on_bad_row"
BAD_ROW_CHOICES = (  # the profile's choices, worded as its help says them
    ("error: a bad CSV row stops the run", "error"),
    ("skip: bad CSV rows are left out, reported", "skip"),
)


class DataScreen(WizardScreen):
    STEP = "data"
    HELP = """The data set (a hub id or a local folder) and the prompt CSVs that index it: one
row per image, with its class and its text. The columns are guessed from the train CSV; fix
them if wrong. ctrl+f picks a CSV in a file tree (for the test CSV when its field has the focus).
ctrl+g validates the CSVs against the data set before anything is converted."""
    BINDINGS = [
        Binding("ctrl+g", "validate", "Validate"),
        Binding("ctrl+r", "validate", "Validate", show=False),
        # priority: before textual 8.2.7 a focused Input took ctrl+f (delete right word)
        Binding("ctrl+f", "browse", "Pick CSV", show=False, priority=True),
    ]
    # The verdict docks at the bottom of the scrolling body: always in sight at 80x24.
    DEFAULT_CSS = """
    #verdict { dock: bottom; height: auto; max-height: 2; background: $panel; }
    #columns-guide { color: $text-muted; }
    #preview-note { height: auto; max-height: 3; padding-left: 16; }
    #report-panel { height: auto; max-height: 12; border: round $primary-darken-2; }
    #report-panel:focus { border: round $primary; }
    """

    def body(self) -> ComposeResult:
        p = self.session.profile
        yield Field("hub.dataset", "data set", p.hub.dataset)
        yield Field("data.train_csv", "train CSV", p.data.train_csv)
        note = Static("", id="preview-note")  # what the preview finds, in sight as typed
        note.display = False
        yield note
        # Under the field it previews: its header and rows in sight at 80x24 as it is typed.
        yield DataTable(id="preview", zebra_stripes=True)
        yield Field("data.test_csv", "test CSV", p.data.test_csv)
        yield Field("data.eyes", "eyes", p.data.eyes)
        with Vertical(classes="field"):
            with Horizontal(classes="field-row"):
                yield Label("bad rows", classes="field-label")
                yield Select(
                    BAD_ROW_CHOICES,
                    value=p.data.on_bad_row,
                    allow_blank=False,
                    compact=True,
                    id=field_id(BAD_ROW),
                )
            yield Static("", classes="field-error", id="e-" + field_id(BAD_ROW))
        yield Label("Columns (guessed from the train CSV; edit if wrong):", classes="heading")
        yield Static("", id="columns-guide")
        for key in COLUMNS:
            field = Field(f"data.{key}", column_label(key), getattr(p.data, key))
            field.display = key not in PAIRED_ONLY or p.data.eyes == "paired"
            yield field
        with Horizontal(classes="buttons"):
            yield Button("Pick CSV (ctrl+f)", id="browse", compact=True)
            yield Button("Validate (ctrl+g)", id="validate", variant="success", compact=True)
        with VerticalScroll(id="report-panel") as panel:
            panel.border_title = SCROLL_HINT
            panel.display = False
            yield Static("", id="report")
        yield Static(Text(NOT_VALIDATED, "dim"), id="verdict")

    validated = False  # a report is shown: edits make it stale
    report_errors: set[str] = set()  # the fields whose error line the last check wrote

    def on_mount(self) -> None:
        self.show_guide()
        self.show_preview(guess=False)
        self.query_one("#" + field_id("hub.dataset"), Input).focus()

    def value(self, dotted: str) -> str:
        return self.query_one("#" + field_id(dotted), Input).value

    def csv_path(self, key: str = "data.train_csv") -> Path | None:
        """The typed CSV path, if it names a file (any path at all: never an error here)."""
        try:
            value = self.value(key).strip()
            path = typed_path(value) if value else None
            return path if path is not None and path.is_file() else None
        except Exception:  # noqa: BLE001 - a path the OS refuses is no file to preview
            return None

    def on_input_changed(self, event: Input.Changed) -> None:
        key = dotted_key(event.input.id or "")
        if key == "data.train_csv":
            self.show_preview(guess=True)
        elif key in ("data.eyes", "data.label_column"):
            self.show_guide()
        if self.validated:
            self.set_verdict(Text(CHANGED, "yellow"))
            self.drop_report_errors()

    def on_select_changed(self, event: Select.Changed) -> None:
        if self.validated:
            self.set_verdict(Text(CHANGED, "yellow"))
            self.drop_report_errors()

    def drop_report_errors(self) -> None:
        """The last check's errors at the fields are of what the fields held then: gone
        once one changes (the verdict says to check again)."""
        for key in self.report_errors:
            if key not in self.problems:  # a field's own error stays until it is fixed
                for error in self.query("#e-" + field_id(key)):
                    set_error(error, "")
        self.report_errors = set()

    def field_values(self) -> dict[str, str]:
        """The inputs, and the choice of what bad CSV rows do."""
        choice = self.query_one("#" + field_id(BAD_ROW), Select).value
        return super().field_values() | {BAD_ROW: str(choice)}

    def show_guide(self) -> None:
        """The columns the CSV needs, worded by the profile's own help (see column_guide)."""
        from retclip_pipeline.preflight.inspect import EXAMPLE_CSV, column_guide

        data = dataclasses.replace(
            self.session.profile.data,
            eyes=self.value("data.eyes").strip(),
            label_column=self.value("data.label_column").strip(),
        )
        for field in self.query(Field):
            if field.dotted.removeprefix("data.") in PAIRED_ONLY:
                field.display = data.eyes == "paired"
        text = Text("The CSV: a header line, then one row per prompt, with these columns:\n")
        for key, said, needed in column_guide(data):
            text.append(f"  {column_label(key):<18}", "bold")
            text.append(("" if needed else "optional: ") + said + "\n")
        if EXAMPLE_CSV.is_file():
            text.append(f"Example: {shown(EXAMPLE_CSV)}")
        self.query_one("#columns-guide", Static).update(text)

    def show_preview(self, guess: bool) -> None:
        """The train CSV's first rows and what looks wrong in them; with `guess`, the column
        fields that do not name one of its columns take the guessed ones."""
        table = self.query_one("#preview", DataTable)
        note = self.query_one("#preview-note", Static)
        with self.guarded("previewing the train CSV"):
            table.clear(columns=True)
            set_note(note, Text())
            value = self.value("data.train_csv").strip()
            path = typed_path(value) if value else None
            if path is None:
                return
            if not path.exists() and not path.is_symlink():  # as it is being typed
                set_note(note, Text(f"no file at {relative(str(path))} yet", "dim"))
            elif path.exists() and not path.is_file() and not path.is_dir():
                set_note(note, Text("not a regular file: name a CSV file", "red"))  # a pipe blocks
            else:  # a file, or a folder or dangling link that glance names as such
                self.preview_into(table, note, path, guess)

    def preview_into(self, table: DataTable, note: Static, path: Path, guess: bool) -> None:
        from retclip_pipeline.preflight.inspect import glance, guess_columns

        try:
            seen = glance(path, 4, self.session.profile.data)
            guessed = guess_columns(path) if guess else {}
        except UserError as exc:
            set_note(note, Text(relative(str(exc)), "red"))
            return
        table.add_columns(*[cell_text(name) for name in seen.header])
        for row in seen.rows:
            table.add_row(*[cell_text(cell) for cell in row])
        if seen.notes:
            set_note(note, Text("\n".join(relative(line) for line in seen.notes), "yellow"))
        for key, column in guessed.items():
            field = self.query_one("#" + field_id(f"data.{key}"), Input)
            if field.value not in seen.header:
                field.value = column

    @on(Button.Pressed, "#browse")
    def action_browse(self) -> None:
        focused = self.focused
        key = "data.test_csv" if focused and focused.id == field_id("data.test_csv") else None
        key = key or "data.train_csv"
        current = self.csv_path(key)
        start = current.parent if current else self.session.profile.base_dir

        def picked(path: Path | None) -> None:
            if path is not None:
                with self.guarded("taking the picked file"):
                    field = self.query_one("#" + field_id(key), Input)
                    field.value = str(path)
                    field.focus()  # in sight, with what the preview says under it

        self.app.push_screen(FilePicker(start, f"Pick the {key.split('.')[1]}"), picked)

    @on(Button.Pressed, "#validate")
    def action_validate(self) -> None:
        if not self.apply_fields():
            self.set_verdict(Text("not validated: the fields marked in red come first", "red"))
            return
        profile = self.session.profile
        typed = self.session.token
        token = Token(typed, "the token typed on the Token screen") if typed else None

        def validate():
            from retclip_pipeline.preflight.inspect import data_report

            return data_report(profile, token=token)

        self.query_one("#report-panel").display = True
        self.set_verdict(Text("checking the CSVs and the data set...", "dim"))
        self.show_later(
            "#report", validate, "checking...", show=self.show_report, what="validating the data"
        )

    def show_report(self, result) -> None:
        """A data report into the panel and its verdict into sight; or an error's red line."""
        from retclip_pipeline.preflight.inspect import Report

        if isinstance(result, Report):  # problems first: in sight without scrolling
            text = Text()
            for line, style in (
                *[(line, "bold red") for line in result.problems],
                *[(line, "yellow") for line in result.warnings],
                *[(line, "") for line in result.lines],
            ):
                text.append(relative(line) + "\n", style)
            text.rstrip()
            said = brief(relative(result.verdict()))
            verdict = Text(said, "bold green" if result.ok else "bold red")
        else:
            lines = result.plain.strip().splitlines() or ["the check failed"]
            text = Text("\n".join(relative(line) for line in lines), "bold red")
            verdict = Text(brief(relative(lines[0])), "bold red")
        self.query_one("#report", Static).update(text)
        self.set_verdict(verdict)
        self.report_errors = set(getattr(result, "at", {}))
        for key, message in getattr(result, "at", {}).items():  # the fix, at its field
            found = self.query("#e-" + field_id(key))
            if found:
                set_error(found.first(Static), relative(message))
        self.drop_repeated_note()
        self.validated = True
        self.query_one("#report-panel", VerticalScroll).scroll_home(animate=False)
        self.call_after_refresh(self.keep_in_sight)  # once the report is laid out

    def keep_in_sight(self) -> None:
        """The report as far into sight as the focused widget allows: the focus stays where
        the user was, and in sight (at 80x24 the report would push a field off screen)."""
        body = self.query_one("#body", VerticalScroll)
        panel = self.query_one("#report-panel", VerticalScroll)
        body.scroll_to_widget(panel, top=True, animate=False, immediate=True)
        if self.focused is not None and self.focused is not panel:
            self.focused.scroll_visible(animate=False, immediate=True)

    def apply_fields(self, extra=None) -> bool:
        ok = super().apply_fields(extra)
        self.drop_repeated_note()
        return ok

    def drop_repeated_note(self) -> None:
        """The preview's note, once the train CSV's error line says the same, or more (a
        bad row's whole message), or that the file is not found."""
        note = str(self.query_one("#preview-note", Static).render())
        error = str(self.query_one("#e-" + field_id("data.train_csv"), Static).render())
        said = error and all(line in error for line in note.splitlines())
        if note == error or said or (error and note.startswith("no file at ")):
            set_note(self.query_one("#preview-note", Static), Text())

    def set_verdict(self, verdict: Text) -> None:
        self.query_one("#verdict", Static).update(verdict)

    def commit(self) -> bool:
        """The fields, then the CSVs' columns and rows as the conversion reads them: a
        missing column or (with data.on_bad_row = "error") a bad row blocks Next, said at
        the field to fix."""
        from retclip_pipeline.preflight.inspect import csv_problems

        if not self.apply_fields({"data.train_csv": self.value("data.train_csv")}):
            return False
        with self.guarded("checking the CSV columns"):
            problems = csv_problems(self.session.profile)
            for key, message in problems.items():
                set_error(self.query_one("#e-" + field_id(key), Static), relative(message))
            self.drop_repeated_note()
            if problems:
                self.show_error("fix the fields marked in red")
                first = self.query_one("#e-" + field_id(next(iter(problems))), Static)
                field = first.parent or first  # the whole field: its input and its error
                self.call_after_refresh(field.scroll_visible, animate=False)
            return not problems
        return False


def set_note(note: Static, text: Text) -> None:
    note.update(text)
    note.display = bool(text.plain)


def column_label(key: str) -> str:
    return key.removesuffix("_column").replace("_", " ") + " column"


def cell_text(value: str) -> Text:
    """A CSV cell for the table: one line, short, and never read as markup."""
    return Text(" ".join(value.split())[:40])


def relative(line: str) -> str:
    """Paths under the current folder shown relative, as everywhere on screen; a line cut
    short (a message may quote a whole file)."""
    return line.replace(str(Path.cwd().resolve()) + os.sep, "")[:600]
