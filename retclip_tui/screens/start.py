"""Start: pick or load a profile, keep the run on Google Drive in Colab, or attach to a run."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Checkbox, DataTable, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from retclip_pipeline import profile as profiles
from retclip_pipeline import watch
from retclip_pipeline.errors import UserError

from ..session import DRIVE, new_profile, profile_files, run_roots, shown
from .base import WizardScreen, set_error


class StartScreen(WizardScreen):
    STEP = "start"
    HELP = """Pick the profile to work from (./profiles/*.toml), type a profile's path, or start
a new one with the defaults. The runs found are listed below: Enter on one attaches to it,
history included. In Colab, tick "keep the run on Google Drive" so that the run outlives a
recycled runtime."""

    def body(self) -> ComposeResult:
        yield Label("Profile (arrows, Enter picks one):", classes="heading")
        options = [Option(f"{p.stem}  ({shown(p)})", id=str(p)) for p in profile_files()]
        options.append(Option("new: defaults (Peacein/color-fundus-eye, full size)", id="new"))
        yield OptionList(*options, id="profiles")
        yield Input(placeholder="or a profile path, then Enter", id="profile-path", compact=True)
        yield Static("", id="profile-error", classes="field-error")
        yield Static("", id="current")
        if DRIVE.is_dir():
            yield Checkbox(
                f"keep the run on Google Drive ({DRIVE / 'retclip-runs'}): survives a "
                "recycled runtime",
                id="drive",
            )
        yield Label("Runs (Tab to the table, Enter attaches):", classes="heading")
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.show_current()
        table = self.query_one("#runs", DataTable)
        table.add_columns("run", "sizing", "state", "directory")
        self.runs = watch.find_runs(*run_roots(self.session))
        for info in self.runs:
            table.add_row(info.name, info.sizing, info.summary(), shown(info.workdir))
        if not self.runs:
            table.add_row("(none yet)", "", "", "")
        self.query_one("#profiles", OptionList).focus()

    def show_current(self) -> None:
        p = self.session.profile
        where = shown(p.source) if p.source else "new profile: nothing saved yet; F2 saves it"
        self.query_one("#current", Static).update(
            Text.assemble(
                ("profile: ", "bold"),
                f"{p.name} ({where})\n",
                ("data set: ", "bold"),
                f"{p.hub.dataset}   ",
                ("run directory: ", "bold"),
                shown(p.workdir_path()),
            )
        )

    def load(self, path: Path | None) -> None:
        error = self.query_one("#profile-error", Static)
        try:
            loaded = profiles.load(path, check_files=False) if path else new_profile()
        except UserError as exc:
            set_error(error, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - no file may end the wizard
            set_error(error, "")
            self.show_failure(f"loading {path}", exc)
            return
        set_error(error, "")
        self.session.profile = loaded
        self.session.run_dir = None
        self.show_current()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        option_id = event.option.id
        self.load(None if option_id == "new" else Path(option_id))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "profile-path" and event.value.strip():
            self.load(Path(event.value.strip()).expanduser())

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if self.runs and event.cursor_row < len(self.runs):
            self.app.attach(self.runs[event.cursor_row].workdir)

    def commit(self) -> bool:
        drive = self.query("#drive")
        if drive and drive.first().value:
            self.session.profile.workdir = str(DRIVE / "retclip-runs" / self.session.profile.name)
        return True
