"""Convert and LMDB: the data becomes TSV/JSONL, then the LMDB training reads."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from retclip_pipeline.layout import RunLayout

from ..session import shown
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
        p = self.session.profile
        yield Static(
            Text(
                f"{p.hub.dataset} -> {shown(self.session.workdir)}/data, sizing "
                f"{p.sizing.mode}. The run goes on if you leave; ctrl+g starts or resumes it."
            ),
            id="what",
        )
        yield RunLog()

    def on_run_panel_finished(self, message) -> None:
        if message.ok:
            report = RunLayout.of(self.session.profile, self.session.workdir).convert_report_text
            self.query_one("#what", Static).update(
                Text(f"done: the conversion report is {shown(report)}")
            )
