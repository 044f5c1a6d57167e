"""The one way the TUI runs long work: a detached pipeline process, followed through its
events.jsonl and state.json. Progress bars with rate and ETA, a live log, start / stop /
resume, a stalled flag, and a failed stage's one-line reason."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Label, ProgressBar, RichLog, Static

from retclip_pipeline import runs
from retclip_pipeline.errors import UserError
from retclip_pipeline.events import Event

MAX_BARS = 2  # the latest tasks; older ones are finished or in the log


def human(value: float, unit: str | None) -> str:
    if unit in ("B", "bytes"):
        for scale, suffix in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
            if value >= scale:
                return f"{value / scale:.1f} {suffix}"
        return f"{value:.0f} B"
    return f"{value:,.0f} {unit or ''}".strip()


class TaskBar(Horizontal):
    def __init__(self, key: str):
        self.bar = ProgressBar(show_eta=True, classes="task-bar")
        self.detail = Label("", classes="task-detail")
        super().__init__(Label(key[:22], classes="task-name"), self.bar, self.detail)
        self.add_class("taskbar")
        self.key = key
        self.first: tuple[float, int] | None = None

    def show(self, event: Event) -> None:
        done = event.done or 0
        if self.first is None:
            self.first = (event.time, done)
        # From the events' own times, so a replayed history shows the rate it had.
        elapsed = event.time - self.first[0]
        rate = (done - self.first[1]) / elapsed if elapsed > 0 else 0
        self.bar.update(total=event.total, progress=done)
        detail = f"{human(rate, event.unit)}/s" if rate > 0 else human(done, event.unit)
        if event.message:
            detail = event.message
        self.detail.update(detail[:30])


class RunPanel(Vertical):
    """Runs `stages` of the session's profile in the session's run directory."""

    class Followed(Message):
        """Every event of the run, for the screen's own views (curves, tables)."""

        def __init__(self, event: Event):
            super().__init__()
            self.event = event

    class Finished(Message):
        def __init__(self, ok: bool):
            super().__init__()
            self.ok = ok

    def __init__(self, stages: list[str], **kwargs):
        super().__init__(**kwargs)
        self.stages = stages
        self.follower: runs.EventFollower | None = None
        self.bars: dict[str, TaskBar] = {}
        self.ended: bool | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="run-status")
        yield Vertical(id="bars")
        yield RichLog(id="run-log", max_lines=400, wrap=True, markup=False)
        with Horizontal(classes="buttons"):
            yield Button("Start", id="run-start", variant="success", compact=True)
            yield Button("Stop", id="run-stop", variant="error", compact=True)

    @property
    def session(self):
        return self.app.session

    def on_mount(self) -> None:
        self.follower = runs.EventFollower(self.session.workdir)
        self.poll()
        self.set_interval(0.5, self.poll)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        # Start bubbles up: the screen applies its settings first (RunningScreen).
        if event.button.id == "run-stop":
            event.stop()
            self.stop()

    def start(self, restart: bool = False) -> None:
        session = self.session
        try:
            profile_path = session.write_run_profile()
            session.pid = runs.start_detached(
                profile_path, session.workdir, self.stages, restart, env=session.env()
            )
        except (UserError, OSError) as exc:
            self.query_one("#run-status", Static).update(Text(f"cannot start: {exc}", "red"))
            return
        self.ended = None
        self.query_one(RichLog).write(f"started {', '.join(self.stages)} (pid {session.pid})")
        self.poll()

    def stop(self) -> None:
        if runs.stop(self.session.workdir):
            self.query_one(RichLog).write("stopping: the stage ends cleanly; Start resumes it")

    def poll(self) -> None:
        assert self.follower is not None
        for event in self.follower.poll():
            self._show(event)
            self.post_message(self.Followed(event))
        self._status()

    def _show(self, event: Event) -> None:
        if event.kind == "run_finished":
            self.ended = event.level == "info"
        if event.stage not in self.stages and event.level != "error":
            return  # another step's stages: their own screen shows them
        if event.kind == "progress":
            key = f"{event.stage}: {event.task}"
            if key not in self.bars:
                bar = TaskBar(key)
                self.bars[key] = bar
                self.query_one("#bars").mount(bar)
                for old in list(self.bars)[:-MAX_BARS]:
                    self.bars.pop(old).remove()
            self.bars[key].show(event)
            return
        if event.message:
            style = {"warning": "yellow", "error": "bold red"}.get(event.level)
            self.query_one(RichLog).write(Text(f"[{event.stage}] {event.message}", style or ""))

    def _status(self) -> None:
        info = runs.run_info(self.session.workdir)
        mine = {s: info.stages.get(s, "to run") for s in self.stages}
        text = Text("  ".join(f"{s}: {status}" for s, status in mine.items()))
        if info.running:
            text.append(f"   running (pid {info.pid})", "green")
            if info.stalled:
                text.append("  STALLED: no event for 5 min; check pipeline.log", "bold red")
        else:
            for stage, status in mine.items():
                if status in ("failed", "interrupted"):
                    reason = info.errors.get(stage, "stopped")
                    text.append(f"\n{stage} {status}: {reason}. Fix it, then Start resumes.", "red")
                    break
        self.query_one("#run-status", Static).update(text)
        self.query_one("#run-start", Button).disabled = info.running
        self.query_one("#run-stop", Button).disabled = not info.running
        all_done = all(status == "done" for status in mine.values())
        self.query_one("#run-start", Button).label = (
            "Run again"
            if all_done
            else "Resume"
            if any(v != "to run" for v in mine.values())
            else "Start"
        )
        if not info.running and self.ended is not None:
            ok, self.ended = self.ended and all_done, None
            self.post_message(self.Finished(ok))

    @property
    def done(self) -> bool:
        info = runs.run_info(self.session.workdir)
        return not info.running and all(info.stages.get(s) == "done" for s in self.stages)
