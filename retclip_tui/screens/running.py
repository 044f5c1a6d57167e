"""A wizard step that runs stages: the run panel in view under the body, its keys, Next only
once the plan calls its stages done, and a question before work would be set aside."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Button

from retclip_pipeline import watch

from ..dialogs import Question
from ..session import shown
from ..widgets.run_panel import RunPanel
from .base import WizardScreen


class RunningScreen(WizardScreen):
    STAGES: tuple[str, ...] = ()  # what this step shows
    RUNS: tuple[str, ...] | None = None  # what its start runs (default: STAGES)
    BINDINGS = [  # in the places WizardScreen keeps for them in the footer
        Binding("ctrl+g", "start_run", "Start/Resume"),
        Binding("ctrl+y", "stop_run", "Stop"),
    ]

    def on_mount(self) -> None:
        self.show_folder()
        if self.session.autostart:
            self.session.autostart = False
            self.call_after_refresh(self.action_start_run)

    def docked(self) -> ComposeResult:
        yield RunPanel(list(self.RUNS or self.STAGES), id="panel")

    def already_running(self) -> bool:
        """A run goes on in this folder (one just started included): said, not started again."""
        pid = watch.running_pid(self.session.workdir)
        if not pid:
            return False
        process = f" (pid {pid})" if pid > 0 else ""
        self.show_error(f"a run is going on in this folder{process}: ctrl+y stops it")
        return True

    def action_start_run(self) -> None:
        if self.already_running() or not self.before_start():
            return
        at_risk = watch.trained_outputs(self.session.profile, self.session.workdir)
        if at_risk is None:
            self.confirmed_start()
            return
        question = (
            f"These settings differ from those that trained the model in "
            f"{shown(self.session.workdir)} ({at_risk.describe()}). Running them there sets "
            f"it aside, and deletes it once the new training writes its first checkpoint.\n\n"
            f"Start in a new run folder, {shown(next_free(self.session.workdir))}, instead "
            f"(the model stays where it is)?"
        )
        answers = [("new", "New run folder", "n"), ("here", "Set it aside", "s")]
        answers.append(("cancel", "Cancel", "c"))
        self.app.push_screen(Question(question, answers, "new"), self._answered)

    def _answered(self, answer: str | None) -> None:
        if answer == "new":  # a fresh folder: every stage up to this step's runs there
            folder = next_free(self.session.workdir)
            self.session.profile.workdir = str(folder)
            self.session.run_dir = None
            self.app.notify(f"new run folder: {shown(folder)}")
            from retclip_pipeline.runner import stage_names

            names = stage_names()
            last = max(names.index(stage) for stage in self.RUNS or self.STAGES)
            self.confirmed_start(names[: last + 1])
        elif answer == "here":
            self.confirmed_start()

    def confirmed_start(self, stages: list[str] | None = None) -> None:
        if self.already_running():  # started meanwhile, while a question was open
            return
        self.query_one(RunPanel).start(stages=stages)
        self.show_folder()  # a new run folder, once chosen, is the one named
        self.refresh_plan()

    def show_folder(self) -> None:
        """Name the run folder in use on the screen (a step that shows it says how)."""

    def action_stop_run(self) -> None:
        self.query_one(RunPanel).stop()

    def before_start(self) -> bool:
        """Apply this screen's settings before the pipeline reads them."""
        return self.apply_fields()

    @on(Button.Pressed, "#run-start")
    def start_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_start_run()

    def on_run_panel_finished(self, message) -> None:
        self.refresh_plan()

    def commit(self) -> bool:
        if not self.apply_fields():
            return False
        blocked = self.query_one(RunPanel).blocked()
        if blocked:
            self.show_error(blocked)
            return False
        return True


def next_free(workdir: Path) -> Path:
    """runs/full -> runs/full-2 (or -3, ...): a run folder nothing is in yet."""
    number = 2
    while workdir.with_name(f"{workdir.name}-{number}").exists():
        number += 1
    return workdir.with_name(f"{workdir.name}-{number}")
