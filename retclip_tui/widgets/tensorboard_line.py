"""One line on the Train screen when train.report_to has tensorboard: the command that shows
the run's curves in TensorBoard. Hidden otherwise."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.widgets import Static


class TensorBoardLine(Static):
    def on_mount(self) -> None:
        self.refresh_line()

    def refresh_line(self) -> None:
        from retclip_pipeline.training.tracking import tensorboard_line

        session = self.app.session
        line = tensorboard_line(session.profile, Path.cwd(), session.workdir)
        self.update(Text(line))
        self.display = bool(line)
