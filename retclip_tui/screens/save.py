"""Save: the TOML that will be written, shown first; never the token (no profile key holds
one). The saved profile runs headless as it is."""

from __future__ import annotations

from pathlib import Path

from rich.syntax import Syntax
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, Input, Static

from retclip_pipeline.errors import UserError
from retclip_pipeline.toml_keep import comments

from ..session import save_target, shown
from .base import WizardScreen
from .confirm import ConfirmScreen


class SaveScreen(WizardScreen):
    STEP = "save"
    HELP = """Writes the profile as TOML: only what differs from the defaults, paths relative to
the file's folder (so that the folder can move), never the token. ctrl+g saves, asking first
before it replaces a file. The saved profile also runs headless:
python -m retclip_pipeline --profile FILE."""
    BINDINGS = [Binding("ctrl+g", "save", "Save")]

    def body(self) -> ComposeResult:
        default = save_target(self.session.profile)  # the quit question's file too
        yield Static("Save the profile to:")
        yield Input(shown(default), id="target", compact=True)
        # Button and outcome above the TOML, which can be longer than the screen: "saved."
        # must show at 80x24 without scrolling.
        with Horizontal(classes="buttons"):
            yield Button("Save (ctrl+g)", id="save", variant="success", compact=True)
        yield Static("", id="saved")
        yield Static("", id="comments")  # whether the file's own comments are kept
        yield Static("", id="toml")

    def on_mount(self) -> None:
        self.preview()
        self.query_one("#target", Input).focus()

    def target(self) -> Path:
        return Path(self.query_one("#target", Input).value.strip()).expanduser().resolve()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.preview()

    def preview(self) -> None:
        target = self.target()
        text = self.session.save_text(target)
        self.query_one("#toml", Static).update(Syntax(text, "toml", theme="ansi_dark"))
        old = self.old_text(target) if not target.is_dir() else None
        said = Text()
        if old and comments_lost(old, text):
            said = Text(
                f"{shown(target)} has comments that saving over it loses (they are kept "
                "only in the file the profile was loaded from): another name keeps them",
                "yellow",
            )
        elif old and comments(old):
            said = Text(f"the comments in {shown(target)} are kept", "dim")
        self.query_one("#comments", Static).update(said)
        self.query_one("#comments", Static).display = bool(said.plain)

    @on(Button.Pressed, "#save")
    def save_pressed(self) -> None:
        self.action_save()

    def action_save(self) -> None:
        target = self.target()
        self.query_one("#saved", Static).update("")
        if target.suffix != ".toml":
            self.show_error(f"{shown(target)}: a profile file ends in .toml")
            return
        if target.is_dir():  # asked about "overwriting" it, the answer could only fail
            self.show_error(f"cannot save {shown(target)}: it is a folder: type a file name")
            return
        # Ask, rather than switch to a new name: the file named is the one the user means
        # (often the profile loaded), and a silent new name would leave them running the old
        # one. Over the file it was loaded from, its comments are kept; over another file
        # that has some, they are lost: No is the default.
        old = self.old_text(target)
        if old is not None and old != self.session.save_text(target):
            new = self.session.save_text(target)
            question = f"Overwrite {shown(target)}?" + (
                " Its comments are lost." if comments_lost(old, new) else ""
            )

            def answered(overwrite: bool | None) -> None:
                if overwrite:
                    self.write(target)
                else:
                    self.show_error(f"not saved: {shown(target)} kept; type another file name")

            self.app.push_screen(ConfirmScreen(question, yes="Overwrite", no="Keep it"), answered)
            return
        self.write(target)

    @staticmethod
    def old_text(target: Path) -> str | None:
        """What `target` holds now (None: no file there)."""
        if not target.exists():
            return None
        try:
            return target.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""  # there but unreadable: asked about, and the write says why it fails

    def write(self, target: Path) -> None:
        try:
            self.session.save(target)
        except UserError as exc:  # names the file typed, never the temporary one
            self.show_error(str(exc))
            return
        self.show_error("")  # an earlier try's "cannot save" no longer holds
        self.query_one("#saved", Static).update(
            Text(
                f"saved. Run it headless:\n  python -m retclip_pipeline --profile {shown(target)}",
                "green",
            )
        )

    def action_next(self) -> None:
        self.action_save()


def comments_lost(old: str, new: str) -> bool:
    """Some comment of the file's text `old` is not in the text that replaces it."""
    kept = set(comments(new))
    return any(comment not in kept for comment in comments(old))
