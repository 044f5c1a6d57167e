"""Token: use the one found (environment or stored login) or type one, masked; check it
with the same questions as `token check`; store it through huggingface_hub on request."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, Input, Label, Static

from retclip_pipeline.errors import UserError
from retclip_pipeline.hub.client import Token, resolve_token

from ..session import shown
from .base import WizardScreen


class TokenScreen(WizardScreen):
    STEP = "token"
    HELP = """A Hugging Face token lets the pipeline read a gated or private data set. The one
found (HF_TOKEN, or a stored login) is used unless you type another here. A typed token stays
in memory and reaches the pipeline through its environment, never through a file. ctrl+g
checks it with the hub: valid, whose, and whether the data set is readable. "Store" keeps it
with huggingface_hub for later runs."""
    BINDINGS = [Binding("ctrl+g", "check", "Check")]

    def body(self) -> ComposeResult:
        yield Static("", id="token-source")
        yield Label("Type a token to use instead (hidden; kept in memory only):")
        yield Input(placeholder="hf_...", password=True, id="token-input", compact=True)
        with Horizontal(classes="buttons"):
            yield Button("Check (ctrl+g)", id="check", compact=True)
            yield Button("Store with huggingface_hub", id="store", compact=True)
        yield Static("", id="findings")

    def on_mount(self) -> None:
        self.show_source()
        self.query_one("#token-input", Input).focus()

    def current(self) -> Token:
        typed = self.query_one("#token-input", Input).value.strip()
        if typed:
            return Token(typed, "the token typed here")
        if self.session.token:
            return Token(self.session.token, "the token typed earlier")
        return resolve_token(self.session.profile)

    def show_source(self) -> None:
        token = self.current()
        kind, where = self.session.profile.dataset_source()
        if token.value is None:
            text = "No token found (HF_TOKEN unset, no stored login). Public sets still work."
        else:
            text = f"Token found: {token.origin}. It is never shown or written to a file."
        if kind == "local":
            text += f"\nThe data set is a local folder ({shown(where)}): no token is needed."
        self.query_one("#token-source", Static).update(text)

    @on(Button.Pressed, "#check")
    def action_check(self) -> None:
        token = self.current()
        kind, where = self.session.profile.dataset_source()

        def ask_hub() -> Text:
            from retclip_pipeline.hub.access import check

            try:  # an unreachable hub is its own finding: the token not checked
                findings = check(token, where if kind == "hub" else None)
                return findings_text([(f.mark, f.detail) for f in findings])
            except Exception as exc:  # noqa: BLE001 - any failure is shown, never the token
                return findings_text([("FAIL", f"check failed: {type(exc).__name__}")])

        self.show_later("#findings", ask_hub, "asking the hub...")

    @on(Button.Pressed, "#store")
    def store(self) -> None:
        typed = self.query_one("#token-input", Input).value.strip()
        if not typed:
            self.query_one("#findings", Static).update(
                findings_text([("FAIL", "type a token first")])
            )
            return

        def store() -> Text:
            from retclip_pipeline.hub.access import store_token

            try:  # offline: stored all the same, and said unchecked
                done = store_token(typed)
            except UserError as exc:
                return findings_text([("FAIL", str(exc))])
            return findings_text([(done.mark, done.detail)])

        self.show_later("#findings", store, "storing (asking the hub first)...")

    def commit(self) -> bool:
        typed = self.query_one("#token-input", Input).value.strip()
        if typed:
            self.session.token = typed
        return True


STYLES = {"ok": "bold green", "skip": "bold yellow", "FAIL": "bold red"}


def findings_text(findings: list[tuple[str, str]]) -> Text:
    """(mark, message) lines: ok, skip (the hub could not be asked: not checked) or FAIL."""
    text = Text()
    for mark, message in findings:
        text.append(f" {mark:<4} ", STYLES[mark])
        text.append(f" {message}\n")
    return text
