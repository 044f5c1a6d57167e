"""The one way the TUI runs long work: a detached pipeline process, followed through its
events.jsonl and state.json. Progress bars with rate and ETA, start / stop / resume, a
stalled flag, and a failed stage's one-line reason, kept in view under the screen's body;
the live log goes to the screen's RunLog."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Label, ProgressBar, RichLog, Static

from retclip_pipeline import units, watch
from retclip_pipeline.errors import UserError
from retclip_pipeline.events import Event

from ..session import shown

MAX_BARS = 2  # the latest tasks; older ones are finished or in the log


def human(value: float, unit: str | None) -> str:
    return units.amount(value, unit)


class RunLog(RichLog):
    """The run's log lines, in the scrolling body of the screen that runs it."""

    def __init__(self, **kwargs):
        # min_width: lines wrap at the log's own width (RichLog's default, 78, is wider than
        # the log at 80 columns: a line's end went under the scrollbar)
        super().__init__(
            id="run-log", max_lines=400, wrap=True, markup=False, min_width=20, **kwargs
        )


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
        detail = units.rate(rate, event.unit) if rate > 0 else human(done, event.unit)
        if rate > 0 and event.total and done < event.total:
            detail += f", ETA {units.duration((event.total - done) / rate)}"
        if event.message:
            detail = event.message
        self.detail.update(Text(detail[:30]))  # a note from the hub is text, not markup


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
        self.follower: watch.EventFollower | None = None
        self.bars: dict[str, TaskBar] = {}
        self.ended: bool | None = None
        self.started: int | None = None  # the pid of the last start, until it has ended
        self.failure = ""  # why that start failed, in view until the user acts
        self.failed_with = None  # the settings it failed with: new ones clear it
        # Whether the run's own error reached the log: a failure before its first event (a
        # refused work directory) is written there too, whole, as the status cuts it at 80x24.
        self.error_logged = False
        self.seen: tuple | None = None  # the run's state last shown: a change refreshes all
        self.replaying = True  # the next poll reads the folder's history, not new events
        self.replayed_end = False  # the end last read was in that history

    def compose(self) -> ComposeResult:
        yield Static("", id="run-status")
        yield Vertical(id="bars")
        with Horizontal(classes="buttons"):
            yield Button("Start (ctrl+g)", id="run-start", variant="success", compact=True)
            yield Button("Stop (ctrl+y)", id="run-stop", variant="error", compact=True)

    @property
    def session(self):
        return self.app.session

    def log_line(self, text) -> None:
        for log in self.screen.query(RunLog):
            log.write(text)

    def on_mount(self) -> None:
        self.follower = watch.EventFollower(self.session.workdir)
        self.poll()
        self.set_interval(0.5, self.poll)

    # Start bubbles up: the screen applies its settings first (RunningScreen).
    @on(Button.Pressed, "#run-stop")
    def stop_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.stop()

    def start(self, restart: bool = False, stages: list[str] | None = None) -> None:
        """Start the pipeline on this panel's stages (or `stages`), detached."""
        session = self.session
        self.failure, self.started, self.error_logged = "", None, False
        self._follow_workdir()
        try:
            profile_path = session.write_run_profile()
            session.pid = watch.start_detached(
                profile_path, session.workdir, stages or self.stages, restart, env=session.env()
            )
        except (UserError, OSError) as exc:
            self.failure, self.failed_with = f"cannot start: {exc}", session.profile
            self.log_line(Text(self.failure, "bold red"))
            self._status()
            return
        self.ended, self.started = None, session.pid
        self._clear_bars()
        self.log_line(f"started {', '.join(stages or self.stages)} (pid {session.pid})")
        self.poll()

    def stop(self) -> None:
        self.failure, self.started = "", None  # stopped on purpose: no failure to tell
        if watch.stop(self.session.workdir):
            self.log_line("stopping after the step under way: Start resumes from there")
        else:  # said, not silent: ctrl+y with no run going on
            self.app.notify(
                f"nothing to stop: no run is going on in {shown(self.session.workdir)}",
                severity="warning",
            )
        self._status()

    def _follow_workdir(self) -> None:
        """Another run folder (a new one, or one attached to): its own events and bars."""
        workdir = self.session.workdir
        if self.follower is None or self.follower.path.parent != workdir:
            self.follower = watch.EventFollower(workdir)
            self.replaying = True
            self._clear_bars()

    def _clear_bars(self) -> None:
        for bar in self.bars.values():
            bar.remove()
        self.bars.clear()

    def poll(self) -> None:
        watch.reap()  # a pipeline started here that ended leaves no zombie
        if not self.query("#run-status"):
            return  # being taken down with its screen
        self._follow_workdir()
        assert self.follower is not None
        turns = False
        events, replay = self.follower.poll(), self.replaying
        self.replaying = False
        # A history read when the screen opens: the log and bars show its last run only,
        # and a failure only while the plan still calls the stage failed (the screen's own
        # views, the curves, get it all: a resumed training's curves go on from before).
        last = max((i for i, e in enumerate(events) if e.kind == "run_started"), default=0)
        for index, event in enumerate(events):
            if not replay or (index >= last and not self._fixed_since(event)):
                self._show(event)
                self.replayed_end = replay and event.kind == "run_finished"
            self.post_message(self.Followed(event))
            turns = turns or event.kind in ("stage_started", "stage_finished", "stage_failed")
        info = watch.run_info(self.session.workdir)
        seen = (info.running, tuple(sorted(info.stages.items())))
        if seen != self.seen and self.seen is not None:
            turns = True  # the run ended, or its folder was deleted or remade
            if not info.running and any(info.stages.get(s) != "done" for s in self.stages):
                self._clear_bars()  # stopped or failed: no bar animates on, no ETA stays
        self.seen = seen
        if self.started is not None and not info.running:
            ended = watch.ended(self.started)
            if ended is not None:
                code, why = ended
                self.started = None
                if code and why:
                    self.failure = f"the run failed (exit {code}): {why}"
                    self.failed_with = self.session.profile
                    if not self.error_logged:
                        self.log_line(Text(self.failure, "bold red"))
        if turns:  # a stage began or ended: the plan line says so
            from ..widgets.plan_line import PlanLine

            for line in self.screen.query(PlanLine):
                line.refresh_plan()
        self._status(info)

    def _fixed_since(self, event: Event) -> bool:
        """An error of a history read at opening that the plan no longer shows: of a stage
        not failed now (run again since, or its settings changed)."""
        if event.level != "error":
            return False
        plan = self.plan()
        stages = [event.stage] if event.stage in self.stages else list(self.stages)
        return not any(plan[s].status == "failed" for s in stages if s in plan)

    def _show(self, event: Event) -> None:
        if event.kind == "run_finished":
            self.ended = event.level == "info"
            if not self.ended:
                self._clear_bars()
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
            self.error_logged = self.error_logged or event.level == "error"
            self.log_line(Text(f"[{event.stage}] {event.message}", style or ""))

    def plan(self) -> dict:
        """This panel's stages as the plan sees them (the screen's plan line computes it off
        the UI thread; until it has, from the state file alone)."""
        from ..widgets.plan_line import PlanLine

        lines = self.screen.query(PlanLine)
        states = lines.first().states if lines else []
        if not states:
            info = watch.run_info(self.session.workdir)
            return {s: watch.StageState(s, info.stages.get(s, "to run")) for s in self.stages}
        return {s.stage: s for s in states if s.stage in self.stages}

    def _status(self, info: watch.RunInfo | None = None) -> None:
        info = info or watch.run_info(self.session.workdir)
        if self.failure and self.session.profile is not self.failed_with:
            self.failure = ""  # the settings were changed since (a field fixed): said no more
        plan = self.plan()
        states = {
            stage: (
                "running"
                if info.running and info.stages.get(stage) == "running"
                else plan[stage].status
                if stage in plan
                else "to run"
            )
            for stage in self.stages
        }
        text = Text("  ".join(f"{s}: {status}" for s, status in states.items()))
        if info.running:
            text.append(f"   running (pid {info.pid}): leave it, it goes on", "green")
            if info.stalled:
                text.append("  STALLED: no event for 5 min; check pipeline.log", "bold red")
            if self.failure:  # a second start refused: said until the user acts
                text.append(f"\n{self.failure}", "bold red")
        elif self.failure:  # in view until the user starts or stops again
            text.append(f"\n{self.failure}", "bold red")
        else:
            for stage, state in plan.items():
                again = "starts it afresh" if state.afresh else "resumes"  # as the plan says
                if state.status == "failed":
                    reason = info.errors.get(stage) or state.reason or "see pipeline.log"
                    text.append(f"\n{stage} failed: {reason}", "red")
                    text.append(f". Fix it, then ctrl+g {again}.", "red")
                    break
                if state.status == "interrupted":  # ctrl+y, or the process was ended
                    text.append(f"\n{stage} was stopped before it finished: ctrl+g ", "yellow")
                    text.append(
                        "starts it afresh (nothing was saved)."
                        if state.afresh
                        else "resumes it from its last saved step.",
                        "yellow",
                    )
                    break
                if state.status == "stale":
                    text.append(f"\n{stage}: {state.reason}: ctrl+g runs it again", "yellow")
                    break
        self.query_one("#run-status", Static).update(text)
        self.query_one("#run-start", Button).disabled = info.running
        self.query_one("#run-stop", Button).disabled = not info.running
        values = set(states.values())
        resumes = any(  # the plan's word: a stage that failed before saving starts afresh
            states[s] == "resume"
            or (states[s] in ("failed", "interrupted") and s in plan and not plan[s].afresh)
            for s in self.stages
        )
        label = (
            "Check again"  # done stages are skipped: it runs only what a change made stale
            if values == {"done"}
            else "Resume"
            if resumes
            else "Start"
        )
        start = self.query_one("#run-start", Button)
        if str(start.label) != f"{label} (ctrl+g)":
            start.label = f"{label} (ctrl+g)"
            start.refresh(layout=True)  # a longer label needs a wider button
        if not info.running and self.ended is not None:
            # From the state file, read now: the plan shown may still be the one from before
            # the run ended (it is computed off the UI thread).
            finished = all(info.stages.get(stage) == "done" for stage in self.stages)
            if finished and self.replayed_end:  # an end read from the history: done is
                finished = self.done  # said only while the plan calls it done (no change since)
            ok, self.ended, self.replayed_end = self.ended and finished, None, False
            self.post_message(self.Finished(ok))

    @property
    def done(self) -> bool:
        info = watch.run_info(self.session.workdir)
        plan = watch.stage_states(self.session.profile, self.session.workdir)
        mine = [s for s in plan if s.stage in self.stages]
        return not info.running and all(s.status == "done" for s in mine)

    def blocked(self) -> str:
        """Why Next may not go on: the first stage of this step the plan does not call done."""
        for state in watch.stage_states(self.session.profile, self.session.workdir):
            if state.stage in self.stages and state.status == "running":
                return f"{state.stage} is running: Next once it is done (ctrl+y stops it)"
            if state.stage in self.stages and state.status != "done":
                why = f" ({state.reason})" if state.reason else ""
                return f"{said(state.stage, state.status)}{why}: ctrl+g runs it"
        return ""


def said(stage: str, status: str) -> str:
    """A stage's state as a sentence: "convert failed", not "convert is failed"."""
    return {
        "failed": f"{stage} failed",
        "interrupted": f"{stage} was stopped before it finished",
        "to run": f"{stage} has not run yet",
        "resume": f"{stage} is part done",
        "stale": f"{stage} is out of date",
    }.get(status, f"{stage} is {status}")
