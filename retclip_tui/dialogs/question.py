"""A question with a few answers, each on a key; Enter takes the default, Escape cancels.
Dismissed with the chosen answer's id (None when cancelled)."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class Question(ModalScreen[str | None]):
    def __init__(self, text: str, answers: list[tuple[str, str, str]], default: str):
        """`answers`: (id, label, key) each; `default`: the id Enter chooses."""
        super().__init__()
        self.text, self.answers, self.default = text, answers, default

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self.text)
            with Horizontal(classes="buttons"):
                for answer, label, key in self.answers:
                    variant = "primary" if answer == self.default else "default"
                    yield Button(f"{label} ({key})", id=answer, variant=variant, compact=True)

    def on_mount(self) -> None:
        self.query_one(f"#{self.default}", Button).focus()

    def on_key(self, event) -> None:
        chosen = next((answer for answer, _, key in self.answers if key == event.key), None)
        if chosen:
            event.stop()
            self.dismiss(chosen)

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id)

    def action_choose(self, answer: str) -> None:
        self.dismiss(answer or None)

    BINDINGS = [Binding("escape", "choose('')", "Cancel", show=False)]
