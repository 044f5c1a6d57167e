"""Data: the data set, the prompt CSVs (typed or picked), the column mapping (guessed from
the CSV, editable), a preview of rows, and the validation report."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, DataTable, Input, Label, Static

from retclip_pipeline.errors import UserError

from ..widgets.file_picker import FilePicker
from .base import Field, WizardScreen, field_id

COLUMNS = ("data.index_column", "data.label_column", "data.text_column")


class DataScreen(WizardScreen):
    STEP = "data"
    HELP = """The data set (a hub id or a local folder) and the prompt CSVs that index it: one
row per image, with its class and its text. The columns are guessed from the train CSV; fix
them if wrong. ctrl+f picks a CSV in a file tree (for the test CSV when its field has the focus).
ctrl+g validates the CSVs against the data set before anything is converted."""
    BINDINGS = [
        Binding("ctrl+g", "validate", "Validate"),
        Binding("ctrl+r", "validate", "Validate", show=False),
        Binding("ctrl+f", "browse", "Pick CSV", show=False),
    ]

    def body(self) -> ComposeResult:
        p = self.session.profile
        yield Field("hub.dataset", "data set", p.hub.dataset)
        yield Field("data.train_csv", "train CSV", p.data.train_csv)
        yield Field("data.test_csv", "test CSV", p.data.test_csv)
        yield Field("data.eyes", "eyes", p.data.eyes)
        yield Label("Columns (guessed from the train CSV; edit if wrong):", classes="heading")
        yield Field("data.index_column", "index column", p.data.index_column)
        yield Field("data.label_column", "label column", p.data.label_column)
        yield Field("data.text_column", "text column", p.data.text_column)
        with Horizontal(classes="buttons"):
            yield Button("Pick CSV (ctrl+f)", id="browse", compact=True)
            yield Button("Validate (ctrl+g)", id="validate", variant="success", compact=True)
        yield DataTable(id="preview", zebra_stripes=True)
        yield Static("", id="report")

    def on_mount(self) -> None:
        self.show_preview(guess=False)
        self.query_one("#" + field_id("hub.dataset"), Input).focus()

    def csv_path(self, key: str = "data.train_csv") -> Path | None:
        value = self.query_one("#" + field_id(key), Input).value.strip()
        if not value:
            return None
        path = self.session.profile.resolve(value)
        return path if path.is_file() else None

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == field_id("data.train_csv"):
            self.show_preview(guess=True)

    def show_preview(self, guess: bool) -> None:
        from retclip_pipeline.inspect_data import guess_columns, preview

        table = self.query_one("#preview", DataTable)
        table.clear(columns=True)
        path = self.csv_path()
        if path is None:
            return
        try:
            header, rows = preview(path, 4)
            guessed = guess_columns(path) if guess else {}
        except UserError as exc:
            self.query_one("#report", Static).update(Text(str(exc), "red"))
            return
        table.add_columns(*header)
        for row in rows:
            table.add_row(*[cell[:40] for cell in row + [""] * (len(header) - len(row))])
        for key, column in guessed.items():
            field = self.query_one("#" + field_id(f"data.{key}"), Input)
            if field.value not in header:
                field.value = column

    def on_button_pressed(self, event) -> None:
        if event.button.id == "browse":
            self.action_browse()
        elif event.button.id == "validate":
            self.action_validate()

    def action_browse(self) -> None:
        focused = self.focused
        key = "data.test_csv" if focused and focused.id == field_id("data.test_csv") else None
        key = key or "data.train_csv"
        current = self.csv_path(key)
        start = current.parent if current else self.session.profile.base_dir

        def picked(path: Path | None) -> None:
            if path is not None:
                self.query_one("#" + field_id(key), Input).value = str(path)

        self.app.push_screen(FilePicker(start, f"Pick the {key.split('.')[1]}"), picked)

    def action_validate(self) -> None:
        if not self.apply_fields():
            return
        profile = self.session.profile

        def validate() -> Text:
            from retclip_pipeline.inspect_data import data_report

            report = data_report(profile)
            text = Text("\n".join(report.lines))
            for problem in report.problems:
                text.append("\n" + problem, "bold red")
            if report.ok:
                text.append("\nready to convert", "bold green")
            return text

        self.show_later("#report", validate, "checking the CSVs and the data set...")

    def commit(self) -> bool:
        return self.apply_fields(
            {"data.train_csv": self.query_one("#" + field_id("data.train_csv"), Input).value}
        )
