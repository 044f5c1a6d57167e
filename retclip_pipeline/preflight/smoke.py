"""The pass/fail checklist after a smoke run: each stage did the one thing that proves the
full run will work."""

from __future__ import annotations

import json
from pathlib import Path

from ..checks import Check
from ..events import EventSink
from ..layout import RunLayout
from ..state import RunState


def checklist(workdir: Path, layout: RunLayout | None = None) -> list[Check]:
    layout = layout or RunLayout.of_folder(workdir)
    state = RunState.load(workdir)

    def done(stage: str) -> bool:
        return state.status(stage) == "done"

    tsv = layout.imgs_tsv("train")
    rows = len(tsv.read_bytes().splitlines()) if tsv.is_file() else 0
    items = [Check.of("data readable", done("convert") and rows > 0, f"{rows} train images")]
    lmdb = _object(_object(state.stages.get("lmdb")).get("summary"))
    items.append(Check.of("LMDB keys match", done("lmdb"), _brief(lmdb) or "lmdb stage not done"))
    steps = 0
    if layout.metrics.is_file():  # this run's training, not another name's in logs/
        for line in reversed(layout.metrics.read_bytes().splitlines()):
            step = _object(_json(line)).get("step")
            if isinstance(step, int):  # a torn or edited line is passed over
                steps = step
                break
    items.append(Check.of("one optimizer step", steps >= 1, f"{steps} steps taken"))
    checkpoints = sorted(layout.checkpoints.glob("*.pt"))
    results_path = layout.results
    results = _object(_json(results_path.read_bytes())) if results_path.is_file() else {}
    used = str(results.get("checkpoint", ""))
    reloaded = any(str(c) in used or c.name in used for c in checkpoints)
    items.append(
        Check.of(
            "checkpoint written and reloaded",
            bool(checkpoints) and reloaded,
            f"{len(checkpoints)} written; evaluation loaded {Path(used.split(' ')[0]).name or 'none'}",
        )
    )
    items.append(Check.of("evaluation produced", bool(results), str(results_path)))
    return items


def _json(data: bytes):
    """JSON read back from the run's files, None where it is damaged or not UTF-8: the
    checklist then fails that item instead of a traceback."""
    try:
        return json.loads(data)
    except ValueError:
        return None


def _object(value) -> dict:
    return value if isinstance(value, dict) else {}


def _brief(summary: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in list(summary.items())[:4])


def announce(layout: RunLayout, sink: EventSink) -> None:
    """A finished smoke run says whether the full run can follow, and how."""
    from ..checks import SMOKE_MARKS, passed, render_line
    from ..events import Event

    items = checklist(layout.root, layout)
    for item in items:
        sink(Event("smoke", "log", render_line(item, SMOKE_MARKS)))
    if passed(items):
        message = (
            "smoke checklist passed: the same settings at full size with "
            f"`python -m retclip_pipeline promote --run {layout.root}`"
        )
        sink(Event("smoke", "log", message))
    else:
        sink(Event("smoke", "log", "smoke checklist failed: fix it first", level="warning"))
