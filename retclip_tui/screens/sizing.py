"""Sizing: a 100-sample smoke test, the full set, or N samples, with what each costs in
disk, fetching and conversion time."""

from __future__ import annotations

import dataclasses

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from retclip_pipeline.errors import UserError
from retclip_pipeline.profile import Profile, ProfileError
from retclip_pipeline.profile_schema import SizingSection

from ..widgets.plan_line import PlanLine
from .base import Field, WizardScreen, field_id

MODES = ("smoke", "full", "custom")


LABELS = {
    "smoke": "smoke: 100 samples, a check of every stage",
    "full": "full: every sample",
    "custom": "custom: the number of samples below",
}


class SizingScreen(WizardScreen):
    """The choice is marked in the text itself, "(•) full" against "( ) smoke", so that the
    highlighted row (where the arrows are) is never taken for the chosen one."""

    STEP = "sizing"
    HELP = """How much of the data set to use: smoke (100 samples: a quick check that every
stage works), full, or a number of your own. The estimate under the choice gives the disk,
the fetching and the conversion time it takes."""

    def body(self) -> ComposeResult:
        p = self.session.profile
        self.chosen = p.sizing.mode
        yield Static("Sizing (arrows move, Enter or Space chooses):", classes="heading")
        yield OptionList(*[Option("", id=mode) for mode in MODES], id="mode")
        samples = Field("sizing.samples", "samples", p.sizing.samples, id="samples")
        samples.display = self.chosen == "custom"  # smoke's size is fixed, full's is all
        yield samples
        yield Field("hub.fetch", "fetch", p.hub.fetch, choices=schema_choices("hub.fetch"))
        yield Static("", id="estimate")

    def on_mount(self) -> None:
        options = self.query_one("#mode", OptionList)
        options.highlighted = MODES.index(self.chosen)
        options.focus()
        self.show_choice()
        self.estimate()

    def show_choice(self) -> None:
        options = self.query_one("#mode", OptionList)
        for mode in MODES:
            mark = "(•)" if mode == self.chosen else "( )"
            options.replace_option_prompt(mode, f"{mark} {LABELS[mode]}")

    def mode(self) -> str:
        return self.chosen

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.chosen = event.option.id or self.chosen
        self.query_one("#samples", Field).display = self.chosen == "custom"
        self.show_choice()
        self.estimate()

    def key_space(self) -> None:
        options = self.query_one("#mode", OptionList)
        if options.has_focus and options.highlighted is not None:
            options.action_select()

    def on_select_changed(self) -> None:
        self.estimate()  # the fetch mode: what fetching costs

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == field_id("sizing.samples"):
            self.estimate()

    def estimate(self) -> None:
        from retclip_pipeline.preflight.costs import sizing_lines

        try:
            trial = self.session.__class__(self.session.profile).update(self.field_values())
            lines = sizing_lines(trial)
        except ProfileError as exc:  # by key: the profile file is not what is wrong
            said = "; ".join(f"{p.key}: {p.message}" for p in exc.problems)
            self.query_one("#estimate", Static).update(Text(f"no estimate yet: {said}"))
            return
        except UserError as exc:
            self.query_one("#estimate", Static).update(Text(f"no estimate yet: {exc}"))
            return
        self.query_one("#estimate", Static).update(Text("\n".join(lines)))  # paths: no markup
        self.query_one(PlanLine).refresh_plan(trial)  # the stages a new sizing makes stale

    def control_values(self) -> dict[str, str]:
        """The choice in the list: applied by Next, and kept by Back like the fields. The
        samples typed count only for custom: smoke and full keep (and save) no number of
        their own, so a custom size chosen before is not shown or saved as smoke's."""
        samples = self.query_one("#" + field_id("sizing.samples"), Input).value
        if self.mode() != "custom":
            samples = str(SizingSection.samples)  # the default: a save leaves it out
        return {"sizing.mode": self.mode(), "sizing.samples": samples}


def schema_choices(dotted: str) -> tuple[str, ...]:
    """The values a profile key allows, as the profile's schema lists them."""
    section, key = dotted.split(".")
    spec = next(f for f in dataclasses.fields(type(getattr(Profile(), section))) if f.name == key)
    return tuple(spec.metadata["choices"])
