"""Asked on quitting while a run goes on: leave it running, stop it, or stay."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class LeaveScreen(ModalScreen[str]):
    BINDINGS = [
        Binding("l", "choose('leave')", "Leave running"),
        Binding("s", "choose('stop')", "Stop run"),
        Binding("c", "choose('stay')", "Cancel"),
        Binding("escape", "choose('stay')", "Cancel", show=False),
    ]

    def __init__(self, run_dir: Path):
        super().__init__()
        self.run_dir = run_dir

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(
                Text(
                    f"A run is still going in {self.run_dir}.\n\nLeave it running (attach to "
                    "it later from the Start screen or with retclip-tui --attach), or stop it "
                    "(it resumes where it stopped)?"
                )
            )
            with Horizontal(classes="buttons"):
                yield Button("Leave running (l)", id="leave", variant="primary", compact=True)
                yield Button("Stop run (s)", id="stop", variant="error", compact=True)
                yield Button("Cancel (c)", id="stay", compact=True)

    @on(Button.Pressed, "#leave, #stop, #stay")
    def pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id)

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)
