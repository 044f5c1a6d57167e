"""One line under the step line: each stage's state from the core's plan (what `--dry-run`
prints: done, stale, resume, to run; and running, failed, interrupted while a run goes),
for the profile as the screens have set it."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

STYLES = {
    "done": "green",
    "running": "bold cyan",
    "resume": "yellow",
    "stale": "bold yellow",
    "failed": "bold red",
    "interrupted": "yellow",
    "to run": "",
}


def plan_text(states) -> Text:
    text = Text(" ")
    for number, state in enumerate(states):
        if number:
            text.append("  ")
        text.append(f"{state.stage}: ")
        text.append(state.status, STYLES.get(state.status, ""))
    return text


class PlanLine(Static):
    """Recomputed off the UI thread (the plan reads the CSVs' digests and the state file)."""

    def on_mount(self) -> None:
        self.states: list = []
        self.refresh_plan()

    def refresh_plan(self, profile=None) -> None:
        """The plan for the session's profile, or for `profile`: settings on screen not yet
        applied (a sizing chosen is shown at once, not on Next)."""
        session = self.app.session
        profile, workdir = profile or session.profile, session.workdir

        def compute() -> None:
            from retclip_pipeline.watch import stage_states

            try:
                states = stage_states(profile, workdir)
            except Exception:  # a half-typed profile: the screens show its errors
                return
            self.app.call_from_thread(self._show, states)

        self.run_worker(compute, thread=True, exclusive=True, group="plan", exit_on_error=False)

    def _show(self, states) -> None:
        self.states = states
        self.update(plan_text(states))

    def state(self, stage: str):
        return next((s for s in self.states if s.stage == stage), None)
