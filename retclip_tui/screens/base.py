"""What every wizard screen shares: the step line, Back and Next (buttons and keys), fields
bound to profile keys with their errors shown in place."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, Select, Static
from textual.worker import get_current_worker

from retclip_pipeline.errors import UserError
from retclip_pipeline.profile import ProfileError

from .. import errlog
from ..keys import BROWSER_KEYS  # noqa: F401 - the screens' rule, named where they look
from ..widgets.plan_line import PlanLine

STEPS = ("start", "token", "data", "sizing", "prepare", "train", "evaluate", "save")
TITLES = {
    "start": "Start",
    "token": "Token",
    "data": "Data",
    "sizing": "Sizing",
    "prepare": "Prepare",
    "train": "Train",
    "evaluate": "Evaluate",
    "save": "Save",
}


def set_error(widget: Static, message: str) -> None:
    """An error line under a field: shown only while there is something to say."""
    widget.update(Text(message, "red") if message else "")
    widget.set_class(bool(message), "shown")


def field_id(dotted: str) -> str:
    return "f-" + dotted.replace(".", "--")


def dotted_key(widget_id: str) -> str:
    return widget_id.removeprefix("f-").replace("--", ".")


class Field(Vertical):
    """A label, an input bound to a profile key, and the key's error under it; or, with
    `error_below` False (fields side by side), the label red and the error in the screen's
    error line, named by the label: nothing moves, nothing goes out of sight."""

    def __init__(
        self,
        dotted: str,
        label: str,
        value: Any,
        password: bool = False,
        error_below: bool = True,
        choices: tuple[str, ...] = (),
        **kw,
    ):
        super().__init__(classes="field", **kw)
        self.dotted, self.label, self.value, self.password = dotted, label, value, password
        self.error_below = error_below
        self.choices = choices  # a list to choose from (a Select), not text to type

    def compose(self) -> ComposeResult:
        from ..session import field_text

        with Horizontal(classes="field-row"):
            yield Label(self.label, classes="field-label")
            if self.choices:
                yield Select(
                    [(choice, choice) for choice in self.choices],
                    value=self.value,
                    allow_blank=False,
                    compact=True,
                    id=field_id(self.dotted),
                )
            else:
                yield Input(
                    field_text(self.app.session.profile, self.dotted, self.value),
                    id=field_id(self.dotted),
                    password=self.password,
                    compact=True,
                )
        if self.error_below:
            yield Static("", classes="field-error", id="e-" + field_id(self.dotted))


class WizardScreen(Screen):
    STEP = "start"
    HELP = ""  # what this step does, for the help screen (F1)
    # The footer lists keys in this order and cuts off what passes 80 columns, so Quit comes
    # before anything optional. ctrl+g (the step's own action) and ctrl+y (Stop) hold their
    # place here; a screen that has them binds the same key again, which keeps the place.
    BINDINGS = [
        Binding("f1", "help", "Help"),
        Binding("question_mark", "help", "Help", show=False),  # not priority: "?" types in fields
        Binding("f3", "back", "Back"),
        Binding("ctrl+o,escape", "back", "Back", show=False),
        Binding("f4", "next", "Next"),
        Binding("ctrl+n", "next", "Next", show=False),  # over SSH; a browser keeps it
        Binding("ctrl+g", "step_action", "", show=False),
        Binding("ctrl+y", "stop_run", "", show=False),
        Binding("f10", "app.leave", "Quit"),
        Binding("f2,ctrl+s", "save_profile", "Save profile", show=False),
    ]

    def compose(self) -> ComposeResult:
        number = STEPS.index(self.STEP) + 1
        steps = " > ".join(f"[{TITLES[s]}]" if s == self.STEP else TITLES[s] for s in STEPS[1:])
        yield Static(
            Text.assemble((f" retclip  {number}/{len(STEPS)} ", "bold reverse"), " ", steps),
            id="steps",
        )
        yield PlanLine(id="plan")
        with VerticalScroll(id="body"):
            yield from self.body()
        yield from self.docked()
        yield Static("", id="error")
        with Horizontal(id="nav"):
            yield Button("Back (F3)", id="back", compact=True)
            yield Button("Next (F4)", id="next", variant="primary", compact=True)
        yield Footer()

    def body(self) -> ComposeResult:
        yield from ()

    def docked(self) -> ComposeResult:
        """Widgets kept in view under the scrolling body (a run's state and bars)."""
        yield from ()

    def refresh_plan(self) -> None:
        self.query_one(PlanLine).refresh_plan()

    @property
    def session(self):
        return self.app.session

    @on(Button.Pressed, "#next")
    def next_pressed(self) -> None:
        self.action_next()

    @on(Button.Pressed, "#back")
    def back_pressed(self) -> None:
        self.action_back()

    def action_next(self) -> None:
        if self.commit():
            self.app.goto(STEPS[min(STEPS.index(self.STEP) + 1, len(STEPS) - 1)])

    def action_back(self) -> None:
        if self.STEP != "start":
            self.keep_valid_fields()  # going back is never blocked, and loses no valid edit
            self.app.goto(STEPS[STEPS.index(self.STEP) - 1])

    def keep_valid_fields(self) -> None:
        """Apply every field that is valid on its own; a bad one keeps the earlier value."""
        values = self.field_values()
        try:
            self.session.update(values)
        except ProfileError as exc:
            bad = {problem.key for problem in exc.problems}
            good = {key: value for key, value in values.items() if key not in bad}
            try:
                self.session.update(good)
            except ProfileError:
                for key, value in good.items():  # a rule between keys: one at a time
                    try:
                        self.session.update({key: value})
                    except ProfileError:
                        continue

    def on_descendant_focus(self, event) -> None:
        """The focused widget is always in view: Tab, a click, or focus set by the code;
        a field's label is marked while its input has the focus (CSS: .field.focused)."""
        event.widget.scroll_visible(animate=False)
        self.mark_focused_field(event.widget)

    def on_descendant_blur(self, event) -> None:
        self.mark_focused_field(self.focused)

    def mark_focused_field(self, widget) -> None:
        for field in self.query(Field):
            field.set_class(widget is not None and field in widget.ancestors, "focused")

    def action_stop_run(self) -> None:
        """ctrl+y on a step that runs nothing: the session's run, stopped or said absent."""
        from retclip_pipeline import watch

        from ..session import shown

        where = shown(self.session.workdir)
        if watch.stop(self.session.workdir):
            self.app.notify(f"stopping the run in {where} after the step under way")
        else:
            self.app.notify(f"nothing to stop: no run is going on in {where}", severity="warning")

    def action_help(self) -> None:
        from .help import HelpScreen

        self.app.push_screen(HelpScreen(self))

    def action_save_profile(self) -> None:
        """From any step: this screen's settings, then the Save screen."""
        if self.STEP != "save" and self.apply_fields():
            self.app.goto("save")

    def commit(self) -> bool:
        """Apply this screen's fields to the profile; False (errors shown) if they are bad."""
        return self.apply_fields()

    def field_values(self) -> dict[str, Any]:
        """The profile keys this screen sets: its fields' inputs and its other controls."""
        typed = {
            dotted_key(i.id): i.value for i in self.query(Input) if i.id and i.id.startswith("f-")
        }
        chosen = {
            dotted_key(s.id): str(s.value)
            for s in self.query(Select)
            if s.id and s.id.startswith("f-") and s.value is not Select.NULL
        }
        return typed | chosen | self.control_values()

    def control_values(self) -> dict[str, Any]:
        """Keys set by a control that is no field (a list, a checkbox): the screen's own."""
        return {}

    problems: dict[str, str] = {}  # the field errors shown: key -> message

    def apply_fields(self, extra: dict[str, Any] | None = None) -> bool:
        for error in self.query(".field-error"):
            set_error(error, "")
        self.show_error("")
        self.problems = {}
        try:
            self.session.update(self.field_values() | (extra or {}))
        except ProfileError as exc:
            self.problems = {problem.key: problem.message for problem in exc.problems}
            self.show_problems()
            return False
        except Exception as exc:  # noqa: BLE001 - a path no check foresaw: said, not fatal
            self.show_failure("checking the settings", exc)
            return False
        self.show_problems()
        self.refresh_plan()  # the stages' states follow every setting
        return True

    def show_problems(self) -> None:
        """The field errors: under the fields that have an error line; the others' in the
        error line, by their labels (their labels red), with any key no field shows."""
        fields = {field.dotted: field for field in self.query(Field)}
        inline = []
        for key, field in fields.items():
            message = self.problems.get(key, "")
            field.set_class(bool(message), "bad")
            if field.error_below:
                set_error(self.query_one("#e-" + field_id(key), Static), message)
            elif message:
                inline.append(f"{field.label}: {message}")
        inline += [
            f"{key}: {message}" for key, message in self.problems.items() if key not in fields
        ]
        if self.problems:
            self.show_error("; ".join(inline) or "fix the fields marked in red")

    def on_input_changed(self, event: Input.Changed) -> None:
        """A field marked bad that now holds a valid value loses its error at once; the
        stage line follows what the fields hold (a setting typed, not yet applied)."""
        key = dotted_key(event.input.id or "")
        if (event.input.id or "").startswith("f-") and self.query(PlanLine):
            self.preview_plan()
        if key not in self.problems:
            return
        try:
            type(self.session)(self.session.profile).update({key: event.value})
        except ProfileError as exc:  # still bad: the error says what the field holds now
            said = [p.message for p in exc.problems if p.key == key]
            if said and said[0] != self.problems[key]:
                self.problems[key] = said[0]
                self.show_problems()
            return
        except Exception:  # noqa: BLE001 - unknown: the error stays
            return
        del self.problems[key]
        self.show_problems()
        if not self.problems:
            self.show_error("")

    def preview_plan(self) -> None:
        """The stage line for the settings on screen, when they are valid (a half-typed
        value keeps the line as it was)."""
        from retclip_pipeline.profile_edit import set_fields

        try:
            trial = set_fields(self.session.profile, self.field_values())
        except Exception:  # noqa: BLE001 - half-typed or bad: the fields say why on apply
            return
        self.query_one(PlanLine).refresh_plan(trial)

    def show_later(
        self,
        selector: str,
        compute: Callable[[], Any],
        waiting: str = "",
        show: Callable[[Any], None] | None = None,
        what: str = "",
    ) -> None:
        """Run `compute` off the UI thread (it may import torch, ask the network or read a
        user's file) and show what it returns in the Static `selector`, or pass it to `show`
        (on the UI thread). A user error shows as its one red line; any other error as the
        error panel (see show_failure), its red line in `selector` too: never the app's end."""
        target = self.query_one(selector, Static)
        what = what or "the work for " + selector.lstrip("#")
        if waiting:
            target.update(waiting)

        def display(shown: Any) -> None:
            if isinstance(shown, str):  # plain text: a path with "[" is no markup
                shown = Text(shown)
            (show or target.update)(shown)

        def work() -> None:
            worker = get_current_worker()  # cancelled: a newer run or the screen left
            try:
                try:
                    shown = compute()
                except UserError as exc:
                    shown = Text(str(exc), "bold red")
                if not worker.is_cancelled:
                    self.app.call_from_thread(display, shown)
            except Exception as exc:  # noqa: BLE001 - whatever it was, the wizard stays
                message = errlog.report(what, exc, self.session)
                if not worker.is_cancelled:
                    self.app.call_from_thread(self.show_failed, message, display)

        self.run_worker(work, thread=True, exclusive=True, group=selector, exit_on_error=False)

    def show_failed(self, message: str, display: Callable[[Any], None] | None = None) -> None:
        """The error panel: `message` (errlog's two lines) under the body, its first line in
        the place the work's result would have gone."""
        self.show_error(message)
        if display is not None:
            with suppress(Exception):  # the panel above already says it
                display(Text(message.splitlines()[0], "bold red"))

    def show_failure(self, what: str, exc: BaseException) -> None:
        """An unexpected error on the UI thread: logged (no token), said in the error panel."""
        self.show_failed(errlog.report(what, exc, self.session))

    @contextmanager
    def guarded(self, what: str) -> Iterator[None]:
        """For a handler that touches user files: any error becomes the error panel."""
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - no file may end the wizard
            self.show_failure(what, exc)

    def show_error(self, message: str) -> None:
        self.query_one("#error", Static).update(Text(message, "bold red") if message else "")
