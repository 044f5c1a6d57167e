"""Console output of the event stream: rich progress bars with rate and ETA on a terminal,
plain lines otherwise (logs, CI, a detached run's output file)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from . import units
from .events import Event


def said_by_the_command(event: Event) -> bool:
    """A failed or interrupted stage, and the run that ends with it: the command prints that
    once, as its own `error:` (or `interrupted:`) line, so the console leaves these events
    to the events file (where a follower of the run reads them)."""
    return event.kind in ("stage_failed", "run_finished") and event.level != "info"


class PlainRenderer:
    """One line per event, for a log file or a pipe. A task's progress prints when it starts,
    when its note changes (a wait for the hub), when it ends, and in between at most once
    per `every_s` seconds and per 5% of the task, with counts, rate and ETA in human units."""

    def __init__(self, stream: TextIO | None = None, every_s: float = 10.0, step: float = 0.05):
        self.stream = stream or sys.stderr
        self.every_s, self.step = every_s, step
        self.started: dict[str, tuple[float, int]] = {}
        self.last: dict[str, tuple[float, float]] = {}  # task -> (time, fraction) last shown
        self.notes: dict[str, str] = {}  # the note each task's line shows now

    def __call__(self, event: Event) -> None:
        if event.kind == "progress":
            self._progress(event)
            return
        if said_by_the_command(event):
            return
        prefix = f"[{event.stage}]"
        if event.level in ("warning", "error"):
            prefix += f" {event.level}:"
        if event.message:
            print(f"{prefix} {event.message}", file=self.stream, flush=True)

    def _due(self, key: str, now: float, fraction: float | None, finished: bool) -> bool:
        if key not in self.last or finished:
            return True
        then, shown = self.last[key]
        if now - then < self.every_s:
            return False
        return fraction is None or fraction - shown >= self.step

    def _progress(self, event: Event) -> None:
        key = f"{event.stage}/{event.task}"
        now = time.monotonic()
        done, total = event.done or 0, event.total
        self.started.setdefault(key, (now, done))
        finished = total is not None and done >= total
        fraction = done / total if total else None
        noted = event.message != self.notes.get(key, "")
        self.notes[key] = event.message
        if not (noted or self._due(key, now, fraction, finished)):
            return
        if finished and self.last.get(key, (0, None))[1] == 1.0:
            return  # the end was shown already
        self.last[key] = (now, 1.0 if finished else (fraction or 0.0))
        start, first = self.started[key]
        per_second = (done - first) / (now - start) if now > start else 0.0
        text = f"[{event.stage}] {event.task}: {units.amount(done, event.unit)}"
        if total:
            text += f" of {units.amount(total, event.unit)} ({done / total:.0%})"
        if per_second > 0:
            text += f", {units.rate(per_second, event.unit)}"
            if total and not finished:
                text += f", ETA {units.duration((total - done) / per_second)}"
        if event.message:
            text += f" ({event.message})"
        print(text, file=self.stream, flush=True)


class RichRenderer:
    """Progress bars (one per task) with rate and ETA, and log lines above them."""

    def __init__(self):
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )

        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.tasks: dict[str, tuple[int, float, int]] = {}
        self._started = False

    def __call__(self, event: Event) -> None:
        if event.kind == "progress":
            self._progress(event)
            return
        style = {"warning": "yellow", "error": "bold red"}.get(event.level, "")
        if event.kind in ("stage_started", "stage_finished", "stage_skipped"):
            style = style or "bold"
        if event.message and not said_by_the_command(event):
            self.console.print(
                f"[{event.stage}] {event.message}",
                style=style or None,
                markup=False,
                highlight=False,
            )
        if event.kind == "run_finished" and self._started:
            self.progress.stop()
            self._started = False

    def _progress(self, event: Event) -> None:
        if not self._started:
            self.progress.start()
            self._started = True
        key = f"{event.stage}/{event.task}"
        done = event.done or 0
        if key not in self.tasks:
            task_id = self.progress.add_task(
                f"{event.stage}: {event.task}", total=event.total, detail=""
            )
            self.tasks[key] = (task_id, time.monotonic(), done)
        task_id, start, first = self.tasks[key]
        elapsed = time.monotonic() - start
        rate = (done - first) / elapsed if elapsed > 0 else 0.0
        detail = f"{units.amount(done, event.unit)}/{units.amount(event.total or 0, event.unit)}"
        if rate > 0:
            detail += f"  {units.rate(rate, event.unit)}"
        if event.message:
            detail += f"  {event.message}"
        self.progress.update(task_id, completed=done, total=event.total, detail=detail)

    def close(self) -> None:
        if self._started:
            self.progress.stop()


def make_renderer(stream: TextIO | None = None):
    stream = stream or sys.stderr
    if stream.isatty():
        return RichRenderer()
    return PlainRenderer(stream)
