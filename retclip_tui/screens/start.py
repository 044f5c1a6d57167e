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

from ..session import DRIVE, field_text, new_profile, profile_files, run_labels, run_roots, shown
from .base import WizardScreen, set_error


class StartScreen(WizardScreen):
    STEP = "start"
    HELP = """Pick the profile to work from (those in ./profiles, if this folder has one),
type a profile's path (relative to this folder), or start a new one with the defaults: Next
goes on with the path typed, else the profile highlighted. The runs found are listed below
(the same name twice: by folder): Enter on one attaches to it, history included. In Colab,
tick "keep the run on Google Drive" so that the run outlives a recycled runtime."""

    def body(self) -> ComposeResult:
        files = profile_files()
        source = self.session.profile.source
        if source and not any(p.resolve() == Path(source).resolve() for p in files):
            files.insert(0, Path(source))  # the one loaded (--profile): listed, highlighted
        heading = "Profile (arrows, Enter picks one):"
        if not files:  # no ./profiles here, none loaded: nothing to point at
            heading = "Profile: none in this folder; start a new one, or type a profile's path:"
        yield Label(heading, classes="heading")
        options = [Option(f"{p.stem}  ({shown(p)})", id=str(p)) for p in files]
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
        for info, label in zip(self.runs, run_labels(self.runs), strict=True):
            table.add_row(Text(label), info.sizing, info.summary(), shown(info.workdir))
        if not self.runs:
            table.add_row("(none yet)", "", "", "")
        options = self.query_one("#profiles", OptionList)
        options.highlighted = self.option_index(self.session.profile.source)
        options.focus()

    def option_index(self, source: Path | None) -> int | None:
        """The list's row for a profile file (None: not listed), or "new" for none."""
        options = self.query_one("#profiles", OptionList)
        wanted = str(source.resolve()) if source else "new"
        for index in range(options.option_count):
            option_id = options.get_option_at_index(index).id or ""
            if (option_id if option_id == "new" else str(Path(option_id).resolve())) == wanted:
                return index
        return None

    def show_current(self) -> None:
        p = self.session.profile
        where = shown(p.source) if p.source else "new profile: nothing saved yet; F2 saves it"
        self.query_one("#current", Static).update(
            Text.assemble(
                ("profile: ", "bold"),
                f"{p.name} ({where})\n",
                ("data set: ", "bold"),
                f"{field_text(p, 'hub.dataset', p.hub.dataset)}   ",
                ("run directory: ", "bold"),
                shown(p.workdir_path()),
            )
        )

    def load(self, path: Path | None) -> bool:
        """The profile at `path` (None: a new one) becomes the session's; False (the error
        at the path field) when it cannot be read."""
        error = self.query_one("#profile-error", Static)
        try:
            loaded = profiles.load(path, check_files=False) if path else new_profile()
        except UserError as exc:
            set_error(error, str(exc))
            return False
        except Exception as exc:  # noqa: BLE001 - no file may end the wizard
            set_error(error, "")
            self.show_failure(f"loading {path}", exc)
            return False
        set_error(error, "")
        self.session.profile = loaded
        self.session.run_dir = None
        self.show_current()
        return True

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        option_id = event.option.id
        if self.load(None if option_id == "new" else Path(option_id)):
            self.query_one("#profile-path", Input).value = ""  # the list's choice is the one

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "profile-path" and event.value.strip():
            self.load_typed()

    def load_typed(self) -> bool:
        """The typed path, loaded; the list then highlights it (or nothing, not listed)."""
        path = Path(self.query_one("#profile-path", Input).value.strip()).expanduser()
        if not self.load(path):
            return False
        self.query_one("#profiles", OptionList).highlighted = self.option_index(
            self.session.profile.source
        )
        return True

    def take_shown(self) -> bool:
        """What Next goes on with: the path typed (Enter or not), else the profile
        highlighted. The profile in use is kept, edits and all, when it is that one."""
        source = self.session.profile.source
        if self.query_one("#profile-path", Input).value.strip():
            typed = Path(self.query_one("#profile-path", Input).value.strip()).expanduser()
            if source and typed.resolve() == source.resolve():
                return True
            return self.load_typed()
        options = self.query_one("#profiles", OptionList)
        if options.highlighted is None or options.highlighted == self.option_index(source):
            return True
        option_id = options.get_option_at_index(options.highlighted).id
        return self.load(None if option_id == "new" else Path(option_id or ""))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if self.runs and event.cursor_row < len(self.runs):
            self.app.attach(self.runs[event.cursor_row].workdir)

    def commit(self) -> bool:
        if not self.take_shown():
            return False
        drive = self.query("#drive")
        if drive and drive.first().value:
            self.session.profile.workdir = str(DRIVE / "retclip-runs" / self.session.profile.name)
        return True
