"""The sweep's comparison table, read-only, on the Evaluate screen: shown when the run
folder has a sweep (`python -m retclip_pipeline sweep`), hidden otherwise."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Label

from retclip_pipeline.evaluation import sweep_table
from retclip_pipeline.layout import RunLayout


class SweepPanel(Vertical):
    DEFAULT_CSS = "SweepPanel { height: auto; }"

    def compose(self) -> ComposeResult:
        yield Label("Sweep (the variants compared)", classes="heading")
        yield DataTable(id="sweep-table", zebra_stripes=True, cursor_type="none")

    def on_mount(self) -> None:
        self.show(self.app.session.workdir)

    def show(self, workdir: Path) -> None:
        layout = RunLayout.of_folder(workdir)
        rows = sweep_table.load(layout)
        self.display = bool(rows)
        table = self.query_one(DataTable)
        table.clear(columns=True)
        if not rows:
            return
        for title in sweep_table.TITLES:
            width = max(len(title), *(len(cell(r.get(title))) for r in rows))
            table.add_column(title, width=min(width, 48))
        for row in rows:
            table.add_row(*[cell(row.get(title)) for title in sweep_table.TITLES])


def cell(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value or "")
