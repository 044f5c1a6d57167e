"""The one event stream: stages emit events; the CLI prints them and the TUI renders them.

Every event is also appended to `<workdir>/events.jsonl`, one JSON object a line, so that a
detached run can be followed by another process.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from .profile_values import redact

EventKind = Literal[
    "run_started",
    "stage_started",
    "stage_skipped",
    "progress",
    "log",
    "metric",
    "stage_finished",
    "stage_failed",
    "run_finished",
]


@dataclass
class Event:
    stage: str
    kind: EventKind
    message: str = ""
    done: int | None = None
    total: int | None = None
    unit: str | None = None
    task: str | None = None  # sub-task of a stage, e.g. "train images"; one progress bar each
    metrics: dict[str, Any] | None = None
    level: str = "info"
    time: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        # Every line the console prints and the events file keeps passes here: a value
        # quoted in a message never shows a token.
        self.message = redact(self.message)

    def to_json(self) -> str:
        data = {k: v for k, v in asdict(self).items() if v is not None}
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> Event:
        return cls(**json.loads(line))

    @classmethod
    def from_line(cls, raw: bytes) -> Event | None:
        """The event of one line of events.jsonl, or None for a line that is not one. A
        writer killed mid-line leaves a torn start that the next run's first event
        continues on the same line: that event is kept."""
        text = raw.decode("utf-8", errors="replace").strip()
        for start in dict.fromkeys([0, text.rfind('{"stage"')]):
            if start < 0:
                continue
            try:
                data = json.loads(text[start:])
                return cls(**data) if isinstance(data, dict) else None
            except (ValueError, TypeError):
                continue
        return None


EventSink = Callable[[Event], None]


class Emitter:
    """What a stage holds: small helpers over a sink, bound to the stage's name."""

    def __init__(self, sink: EventSink, stage: str):
        self.sink = sink
        self.stage = stage

    def log(self, message: str, level: str = "info") -> None:
        self.sink(Event(self.stage, "log", message, level=level))

    def warn(self, message: str) -> None:
        self.log(message, level="warning")

    def progress(
        self, task: str, done: int, total: int | None, unit: str = "items", note: str = ""
    ) -> None:
        """`note`: a passing state shown on the progress line (e.g. a wait for the hub)."""
        self.sink(Event(self.stage, "progress", note, task=task, done=done, total=total, unit=unit))

    def metric(self, message: str, **metrics: Any) -> None:
        self.sink(Event(self.stage, "metric", message, metrics=metrics))


class JsonlEventWriter:
    """Appends events to a file, flushing each line so followers see it at once."""

    def __init__(self, path: Path):
        from . import ownership

        path.parent.mkdir(parents=True, exist_ok=True)
        ownership.claim(path)
        self._handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def __call__(self, event: Event) -> None:
        self._handle.write(event.to_json() + "\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


def fan_out(*sinks: EventSink) -> EventSink:
    def sink(event: Event) -> None:
        for each in sinks:
            each(event)

    return sink


def read_events(path: Path) -> Iterator[Event]:
    """Events of a run so far; a half-written last line (a killed writer) is skipped."""
    if not path.exists():
        return
    with open(path, "rb") as handle:
        for line in handle:
            event = Event.from_line(line) if line.endswith(b"\n") else None
            if event is not None:
                yield event
