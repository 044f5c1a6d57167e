"""F1 or ?: the keys of the screen it opens over, read from that screen's bindings so that
the list never goes stale, and a few lines on what the step does."""

from __future__ import annotations

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingsMap
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from ..keys import BROWSER_KEYS

NAMES = {"question_mark": "?", "escape": "Escape", "backspace": "Backspace"}
MOVING = (
    "Tab / shift+Tab: the next / previous field; arrows and Enter pick in lists and press "
    "buttons. In a field, letters (and ?) type."
)


def key_name(key: str) -> str:
    """A key as the README and the buttons write it: F4, ctrl+n, ?, Escape."""
    if key.startswith("f") and key[1:].isdigit():
        return key.upper()
    return NAMES.get(key, key)


def keys_of(screen: Screen) -> list[tuple[str, list[str]]]:
    """(what it does, its keys) for each action of the screen and the app that has a method
    behind it, in the screen's order; keys a browser keeps come last. Textual's own keys
    (Tab, copy) are left to the line on moving around."""
    builtin = {b.action for base in (Screen, App) for _, b in BindingsMap(base.BINDINGS)}
    found: dict[tuple[bool, str], tuple[str, list[str]]] = {}
    for node in (screen, screen.app):
        for key, bindings in node._bindings.key_to_bindings.items():
            for binding in bindings:
                target, _, name = binding.action.rpartition(".")
                owner = screen.app if target == "app" else node
                name = name.split("(")[0]
                if not binding.description or binding.action in builtin:
                    continue
                if getattr(owner, "action_" + name, None) is None:
                    continue  # a place kept in the footer order, with nothing behind it here
                description, keys = found.setdefault(
                    (owner is screen.app, name), (binding.description, [])
                )
                if key not in keys:
                    keys.append(key)
    return [
        (description, sorted(keys, key=lambda k: k in BROWSER_KEYS))
        for description, keys in found.values()
    ]


class HelpScreen(ModalScreen[None]):
    """The keys and the purpose of the screen below; Escape, F1 or q closes it."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    #help-dialog {
        width: 78; height: auto; max-height: 22; border: thick $primary; padding: 0 1;
        background: $surface;
    }
    #help-body { height: auto; max-height: 17; }
    #help-hint { color: $text-muted; }
    """
    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("f1,q", "close", "Close", show=False),
    ]

    def __init__(self, over: Screen):
        super().__init__()
        self.over = over

    def compose(self) -> ComposeResult:
        title = getattr(self.over, "STEP", "").capitalize() or "retclip"
        with Vertical(id="help-dialog"):
            yield Static(Text(f"Help: {title}", "bold"))
            with VerticalScroll(id="help-body"):
                yield Static(self.text())
            yield Static("arrows or PgUp/PgDn scroll; Escape, F1 or q closes", id="help-hint")

    def text(self) -> Text:
        text = Text()
        about = getattr(self.over, "HELP", "")
        if about:
            text.append(" ".join(about.split()) + "\n\n")  # one paragraph, wrapped to fit
        marked = False
        for description, keys in keys_of(self.over):
            shown = []
            for key in keys:
                marked |= key in BROWSER_KEYS
                shown.append(key_name(key) + ("*" if key in BROWSER_KEYS else ""))
            text.append(f"{', '.join(shown):<18}", "bold")
            text.append(f" {description}\n")
        text.append("\n" + MOVING)
        if marked:
            text.append("\n* a browser (Colab's terminal) keeps this key: use the other one.")
        return text

    def on_mount(self) -> None:
        self.query_one("#help-body").focus()

    def action_close(self) -> None:
        self.dismiss(None)
