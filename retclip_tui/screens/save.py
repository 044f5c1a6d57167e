"""Save: the TOML that will be written, shown first; never the token (no profile key holds
one). The saved profile runs headless as it is."""

from __future__ import annotations

from pathlib import Path

from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, Input, Static

from retclip_pipeline.errors import UserError

from .base import WizardScreen


class SaveScreen(WizardScreen):
    STEP = "save"
    BINDINGS = [*WizardScreen.BINDINGS, Binding("ctrl+g", "save", "Save")]

    def body(self) -> ComposeResult:
        p = self.session.profile
        default = p.source or Path.cwd() / "profiles" / f"{p.name}.toml"
        yield Static("Save the profile to:")
        yield Input(str(default), id="target", compact=True)
        yield Static("", id="toml")
        with Horizontal(classes="buttons"):
            yield Button("Save (ctrl+g)", id="save", variant="success", compact=True)
        yield Static("", id="saved")

    def on_mount(self) -> None:
        self.preview()
        self.query_one("#target", Input).focus()

    def target(self) -> Path:
        return Path(self.query_one("#target", Input).value.strip()).expanduser().resolve()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.preview()

    def preview(self) -> None:
        text = self.session.save_text(self.target())
        self.query_one("#toml", Static).update(Syntax(text, "toml", theme="ansi_dark"))

    def on_button_pressed(self, event) -> None:
        if event.button.id == "save":
            self.action_save()

    def action_save(self) -> None:
        target = self.target()
        if target.suffix != ".toml":
            self.show_error(f"{target}: a profile file ends in .toml")
            return
        try:
            self.session.save(target)
        except (UserError, OSError) as exc:
            self.show_error(f"cannot save {target}: {exc}")
            return
        self.query_one("#saved", Static).update(
            Text(
                f"saved. Run it headless:\n  python -m retclip_pipeline --profile {target}", "green"
            )
        )

    def action_next(self) -> None:
        self.action_save()
