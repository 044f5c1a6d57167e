"""Convert and LMDB: the data becomes TSV/JSONL, then the LMDB training reads."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from retclip_pipeline.layout import RunLayout

from ..session import field_text, shown
from ..widgets.run_panel import RunLog
from .running import RunningScreen


class PrepareScreen(RunningScreen):
    STEP = "prepare"
    STAGES = ("convert", "lmdb")
    HELP = """Converts the data set and the CSVs into the run directory (images and texts), then
builds the LMDB that training reads. ctrl+g starts it, or resumes it where it stopped; ctrl+y
stops it cleanly. The run is a process of its own: it goes on if you leave the wizard, and
the Start screen (or retclip-tui --attach) follows it again."""

    def body(self) -> ComposeResult:
        yield Static("", id="what")
        yield RunLog()

    def show_folder(self) -> None:
        """The run folder in use (a new one once chosen) and what goes into it."""
        p = self.session.profile
        self.query_one("#what", Static).update(
            Text.assemble(
                ("run folder: ", "bold"),
                f"{shown(self.session.workdir)}   data set: ",
                f"{field_text(p, 'hub.dataset', p.hub.dataset)}, sizing {p.sizing.mode}. ",
                "The run goes on if you leave; ctrl+g starts or resumes it.",
            )
        )

    def on_run_panel_finished(self, message) -> None:
        if message.ok:
            report = RunLayout.of(self.session.profile, self.session.workdir).convert_report_text
            self.query_one("#what", Static).update(
                Text(f"done: the conversion report is {shown(report)}")
            )
