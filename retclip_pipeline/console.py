"""Console output of the event stream: rich progress bars with rate and ETA on a terminal,
plain lines otherwise (logs, CI, a detached run's output file)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from .events import Event


def _human(value: float, unit: str | None) -> str:
    if unit == "bytes":
        for suffix in ("B", "KB", "MB", "GB"):
            if abs(value) < 1024 or suffix == "GB":
                return f"{value:.0f} {suffix}" if suffix == "B" else f"{value:.1f} {suffix}"
            value /= 1024
    return f"{int(value)}"


class PlainRenderer:
    """One line per event; progress at most every few seconds per task, and at its end."""

    def __init__(self, stream: TextIO | None = None, every_s: float = 5.0):
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self.started: dict[str, tuple[float, int]] = {}
        self.last: dict[str, float] = {}
        self.notes: dict[str, str] = {}  # the note each task's line shows now

    def __call__(self, event: Event) -> None:
        if event.kind == "progress":
            self._progress(event)
            return
        prefix = f"[{event.stage}]"
        if event.level in ("warning", "error"):
            prefix += f" {event.level}:"
        if event.message:
            print(f"{prefix} {event.message}", file=self.stream, flush=True)

    def _progress(self, event: Event) -> None:
        key = f"{event.stage}/{event.task}"
        now = time.monotonic()
        done, total = event.done or 0, event.total
        if key not in self.started:
            self.started[key] = (now, done)
        finished = total is not None and done >= total
        noted = event.message != self.notes.get(key, "")
        self.notes[key] = event.message
        if not finished and not noted and now - self.last.get(key, 0.0) < self.every_s:
            return
        self.last[key] = now
        start, first = self.started[key]
        rate = (done - first) / (now - start) if now > start else 0.0
        text = f"[{event.stage}] {event.task}: {_human(done, event.unit)}"
        if total:
            text += f"/{_human(total, event.unit)} ({done / total:.0%})"
        if rate > 0:
            text += f", {_human(rate, event.unit)}/s"
            if total and not finished:
                text += f", ETA {int((total - done) / rate)} s"
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
        if event.message:
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
        detail = (
            f"{_human(done, event.unit)}/{_human(event.total or 0, event.unit)}"
            f"  {_human(rate, event.unit)}/s"
        )
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
