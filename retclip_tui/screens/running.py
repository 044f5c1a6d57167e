"""A wizard step that runs stages: the run panel, its keys, and Next only once they are done."""

from __future__ import annotations

from textual.binding import Binding

from ..widgets.run_panel import RunPanel
from .base import WizardScreen


class RunningScreen(WizardScreen):
    STAGES: tuple[str, ...] = ()
    BINDINGS = [  # in the places WizardScreen keeps for them in the footer
        Binding("ctrl+g", "start_run", "Start/Resume"),
        Binding("ctrl+y", "stop_run", "Stop"),
    ]

    def on_mount(self) -> None:
        if self.session.autostart:
            self.session.autostart = False
            self.call_after_refresh(self.action_start_run)

    def panel(self) -> RunPanel:
        return RunPanel(list(self.STAGES), id="panel")

    def action_start_run(self) -> None:
        if self.before_start():
            self.query_one(RunPanel).start()

    def action_stop_run(self) -> None:
        self.query_one(RunPanel).stop()

    def before_start(self) -> bool:
        """Apply this screen's settings before the pipeline reads them."""
        return self.apply_fields()

    def on_button_pressed(self, event) -> None:
        if event.button.id == "run-start":
            event.stop()
            self.action_start_run()

    def commit(self) -> bool:
        if not self.apply_fields():
            return False
        if not self.query_one(RunPanel).done:
            self.show_error(f"{' and '.join(self.STAGES)} must finish first: ctrl+g starts")
            return False
        return True
