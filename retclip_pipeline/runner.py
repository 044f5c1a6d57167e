"""Runs the stages in order: skips what is done and current, resumes what was cut off, redoes
what a changed setting made stale, and records it all in state.json and events.jsonl."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import ownership
from . import profile as profiles
from .atomic import write_text
from .errors import DamagedOutput, StageInterrupted, UserError, as_user_error, one_line
from .events import Emitter, Event, EventSink, JsonlEventWriter, fan_out
from .fingerprint import fingerprint, material, output_stamps, pick
from .layout import EVENTS_FILE, RESOLVED_PROFILE, RunLayout, check_workdir
from .lock import run_lock
from .quiet import library_messages
from .stage import Stage, StageContext
from .state import RunState

HEARTBEAT_EVERY_S = 2.0


def all_stages() -> list[Stage]:
    from .stages import all_stages as stages

    return stages()


def stage_names() -> list[str]:
    return [s.name for s in all_stages()]


def fingerprints(profile: profiles.Profile, earlier: bool = False) -> dict[str, str]:
    """Each stage's fingerprint: its profile sections, extra material, and its upstream's;
    `earlier`: as made before inputs were named by what they are (fingerprint.material)."""
    data = material(profile, earlier)
    prints: dict[str, str] = {}
    for stage in all_stages():
        prints[stage.name] = fingerprint(
            {
                "sections": {name: pick(data, name) for name in stage.sections},
                "extra": stage.extra_fingerprint(profile),
                "upstream": {name: prints[name] for name in stage.needs},
            }
        )
    return prints


NOTHING_SAVED = "nothing saved to go on from: starts afresh"


@dataclass
class PlanRow:
    stage: Stage
    status: str  # done | stale | resume | to run
    fingerprint: str
    reason: str = ""
    selected: bool = True


def plan(
    profile: profiles.Profile, workdir: Path, selected: list[str] | None = None
) -> list[PlanRow]:
    state = RunState.load(workdir)
    prints = fingerprints(profile)
    earlier = _earlier(state, profile, prints)
    rows = []
    for stage in all_stages():
        entry = state.stages.get(stage.name, {})
        current = prints[stage.name]
        if entry and entry.get("fingerprint") == earlier.get(stage.name):
            entry = dict(entry, fingerprint=current)  # taken over when it runs
        outputs_there = all(p.exists() for p in stage.outputs(profile, workdir))
        if entry.get("status") == "done" and entry.get("fingerprint") == current:
            status, reason = ("done", "") if outputs_there else ("to run", "outputs missing")
        elif entry.get("status") == "done":
            status, reason = "stale", "settings changed since it ran"
        elif (
            entry
            and (entry.get("fingerprint") == current or stage.resumes_by_settings)
            and stage.resumable(profile, workdir)
        ):
            status, reason = "resume", f"was {entry.get('status')}"
        elif entry and entry.get("fingerprint") == current:
            status, reason = "to run", f"was {entry.get('status')}; {NOTHING_SAVED}"
        elif entry:
            status, reason = "to run", "cut-off work used other settings: starts afresh"
        else:
            status, reason = "to run", ""
        if status == "done":  # what it read will change: it is stale with it
            upstream = next(
                (r for r in rows if r.status != "done" and _reads(stage, r, profile, workdir)), None
            )
            if upstream is not None:
                status, reason = (
                    "stale",
                    f"{upstream.stage.name} is {upstream.status}: {_replaced(upstream)}",
                )
        chosen = selected is None or stage.name in selected
        rows.append(PlanRow(stage, status, current, reason, chosen))
    return rows


def _earlier(state: RunState, profile: profiles.Profile, prints: dict[str, str]) -> dict:
    """Fingerprints as an earlier version made them, when a stage's record differs."""
    said = {name: entry.get("fingerprint") for name, entry in state.stages.items()}
    return {} if said.items() <= prints.items() else fingerprints(profile, earlier=True)


def _reads(stage: Stage, row: PlanRow, profile: profiles.Profile, workdir: Path) -> bool:
    """Whether `stage` reads what `row`'s stage writes (evaluate reads the training's
    checkpoint unless it evaluates another one)."""
    if row.stage.name in stage.needs:
        return True
    written = row.stage.outputs(profile, workdir)
    # An input beside an output is written there too (best.pt next to epoch_latest.pt).
    folders = {str(path.parent) for path in written}
    read = stage.inputs(profile, workdir)
    return bool({str(path) for path in written} & set(read)) or any(
        str(Path(path).parent) in folders for path in read
    )


def _replaced(row: PlanRow) -> str:
    return (
        "the model it evaluated is replaced" if row.stage.name == "train" else "its input is redone"
    )


class _Heartbeat:
    """An event sink that keeps state.json's heartbeat fresh without rewriting it per event."""

    def __init__(self, state: RunState):
        self.state = state
        self.last = 0.0

    def __call__(self, event: Event) -> None:
        now = time.monotonic()
        if now - self.last >= HEARTBEAT_EVERY_S:
            self.last = now
            # Best effort: a full disk must not turn the event that reports it into a crash.
            with contextlib.suppress(OSError):
                self.state.beat(event.stage)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """A kill (SIGTERM) stops like Ctrl-C: the current stage records where it was."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _needs_met(stage: Stage, rows: dict[str, PlanRow], selected: list[str]) -> None:
    for need in stage.needs:
        row = rows[need]
        if need in selected:
            continue
        if row.status != "done":
            raise UserError(
                f"stage {stage.name} needs {need}, which is {row.status}: "
                f"run it first (--stages {need},{stage.name})"
            )


def refusals(profile: profiles.Profile, selected: list[str] | None = None) -> list[str]:
    """What rules a selected stage out from the start (Stage.refuses)."""
    chosen = selected or stage_names()
    return [text for s in all_stages() if s.name in chosen and (text := s.refuses(profile))]


def run(
    profile: profiles.Profile,
    workdir: Path,
    sink: EventSink,
    selected: list[str] | None = None,
    restart: bool = False,
) -> dict[str, Any]:
    """Run the selected stages (all by default). Returns each stage's summary."""
    selected = selected or stage_names()
    check_workdir(workdir, profile)
    # One pipeline per run directory, whoever started it; what it writes is claimed.
    try:
        with ownership.recording(workdir), run_lock(workdir):
            return _run_locked(profile, workdir, sink, selected, restart)
    except OSError as exc:  # the run's own bookkeeping (state, events, profile copy)
        user = as_user_error(exc, str(workdir))
        if user is None:
            raise
        raise user from None


def _run_locked(profile, workdir, sink, selected, restart) -> dict[str, Any]:
    state = RunState.load(workdir)
    ownership.list_whole([p for s in all_stages() for p in s.touched(profile, workdir)])
    if restart:
        chosen = [stage for stage in all_stages() if stage.name in selected]
        ownership.refuse_inside([p for s in chosen for p in s.touched(profile, workdir)])
        for stage in chosen:  # what the pipeline wrote there goes; a user's own files stay
            for path in stage.touched(profile, workdir):
                ownership.remove(path)
            state.forget(stage.name)
        state.save()
    taken = state.take_over(prints := fingerprints(profile), _earlier(state, profile, prints))
    write_text(workdir / RESOLVED_PROFILE, profiles.dumps(profile, minimal=False, resolved=True))
    writer = JsonlEventWriter(workdir / EVENTS_FILE)
    emit_all = fan_out(writer, _Heartbeat(state), sink)
    rows = {row.stage.name: row for row in plan(profile, workdir, selected)}
    summaries: dict[str, Any] = {}
    emit_all(
        Event(
            "run", "run_started", f"run {profile.name} in {workdir}", metrics={"stages": selected}
        )
    )
    if state.rebuilt:
        done = [name for name, entry in state.stages.items() if entry.get("status") == "done"]
        emit_all(
            Event(
                "run",
                "log",
                f"{state.rebuilt}: the stages' state is rebuilt from their receipts "
                f"({', '.join(done) or 'none'} done); nothing was deleted",
                level="warning",
            )
        )
    if taken:
        emit_all(Event("run", "log", f"{', '.join(taken)}: records brought up to date"))
    current = ["run"]  # the stage a library warning is shown under

    def library_warning(text: str) -> None:
        emit_all(Event(current[0], "log", text, level="warning"))

    try:
        with _sigterm_as_interrupt(), library_messages(library_warning):
            if problems := refusals(profile, selected):
                raise UserError(problems[0])
            redone = [r.stage for r in rows.values() if r.selected and r.status != "done"]
            ownership.refuse_inside([p for s in redone for p in s.touched(profile, workdir)])
            for stage in all_stages():
                if stage.name not in selected:
                    continue
                current[0] = stage.name
                _needs_met(stage, rows, selected)
                row = rows[stage.name]
                if row.status == "done":
                    # Judged again now: a stage run earlier in this call may have changed
                    # what this one's fingerprint covers (a new checkpoint to evaluate).
                    row = {r.stage.name: r for r in plan(profile, workdir)}[stage.name]
                if row.status == "done":
                    emit_all(Event(stage.name, "stage_skipped", "done and current"))
                    summaries[stage.name] = state.stages[stage.name].get("summary", {})
                    continue
                _writes_inside(stage, profile, workdir)
                summaries[stage.name] = _run_stage(stage, row, profile, workdir, state, emit_all)
                for later in rows.values():  # a redone stage makes what reads it run again
                    if later.status == "done" and _reads(later.stage, row, profile, workdir):
                        later.status = "stale"
        if profile.sizing.mode == "smoke" and "evaluate" in selected:
            from .preflight.smoke import announce

            announce(RunLayout.of(profile, workdir), emit_all)
        emit_all(Event("run", "run_finished", "all stages done"))
    except StageInterrupted:
        emit_all(Event("run", "run_finished", "interrupted: rerun to resume", level="warning"))
        raise
    except UserError as exc:  # followers of events.jsonl learn that the run has ended
        emit_all(Event("run", "run_finished", f"failed: {exc}", level="error"))
        raise
    finally:
        writer.close()
    return summaries


def _writes_inside(stage: Stage, profile: profiles.Profile, workdir: Path) -> None:
    """A run writes only inside its own folder: data another folder holds (a sweep's shared
    conversion, profile key data_dir) is prepared there, never from here. Nor over a user's
    file: an output already there that the pipeline did not write stops the stage first."""
    root = Path(os.path.abspath(workdir))
    outputs = stage.outputs(profile, workdir)
    for path in outputs:
        if not Path(os.path.abspath(path)).is_relative_to(root):
            raise UserError(
                f"stage {stage.name} would write {path}, outside this run folder (data_dir = "
                f"{profile.data_dir}): rerun the sweep that shares that data, or clear data_dir"
            )
    ownership.refuse_foreign(outputs)
    ownership.refuse_inside(stage.scratch(profile, workdir))


def _run_stage(
    stage: Stage,
    row: PlanRow,
    profile: profiles.Profile,
    workdir: Path,
    state: RunState,
    sink: EventSink,
) -> dict[str, Any]:
    try:
        stage.ready(profile, workdir)
    except UserError as exc:
        sink(Event(stage.name, "stage_failed", one_line(exc), level="error"))
        raise
    if row.status in ("stale", "to run") and row.reason != "outputs missing" and not stage.precious:
        for path in stage.scratch(profile, workdir):
            ownership.remove(path)  # what the pipeline wrote; a user's own files stay
    # Taken now, not at planning: earlier stages of this call may have changed its inputs.
    row.fingerprint = fingerprints(profile)[stage.name]
    finished = dict(state.stages.get(stage.name, {}))
    before = (
        output_stamps(stage.outputs(profile, workdir)) if finished.get("status") == "done" else None
    )
    state.mark(stage.name, "running", row.fingerprint)
    note = " (resuming)" if row.status == "resume" else ""
    sink(Event(stage.name, "stage_started", f"{stage.description}{note}"))
    started = time.time()
    context = StageContext(profile, workdir, Emitter(sink, stage.name), row.fingerprint)
    try:
        summary = stage.run(context)
    except KeyboardInterrupt:
        _record_failure(state, stage.name, row.fingerprint, "interrupted", "")
        sink(Event(stage.name, "stage_failed", "interrupted: rerun to resume", level="warning"))
        raise StageInterrupted(f"{stage.name} interrupted; rerun to resume") from None
    except Exception as exc:
        user = exc if isinstance(exc, UserError) else _user_error(exc, stage, profile, workdir)
        if user is None:
            raise
        if isinstance(exc, UserError) and "Original Traceback" in str(exc):
            user = type(exc)(one_line(exc))  # raised in a DataLoader worker
        message = one_line(user)
        if before is not None and output_stamps(stage.outputs(profile, workdir)) == before:
            # It failed before touching what it had finished (a tower that will not load):
            # that finished run still stands, for the settings it was made with.
            kept = {
                k: v
                for k, v in finished.items()
                if k not in ("status", "fingerprint", "updated_at")
            }
            with contextlib.suppress(OSError):
                state.mark(stage.name, "done", finished["fingerprint"], **kept)
        else:
            _record_failure(state, stage.name, row.fingerprint, "failed", message)
        if isinstance(user, DamagedOutput) and user.stage != stage.name:
            state.forget(user.stage)  # rebuilt by the next run
            with contextlib.suppress(OSError):
                state.save()
        sink(Event(stage.name, "stage_failed", message, level="error"))
        if user is exc:
            raise
        raise user from None
    seconds = time.time() - started
    state.mark(stage.name, "done", row.fingerprint, summary=summary, seconds=round(seconds, 2))
    sink(Event(stage.name, "stage_finished", f"done in {seconds:.1f} s", metrics=summary))
    return summary


def _user_error(exc: Exception, stage: Stage, profile, workdir: Path) -> UserError | None:
    """A full disk or a read-only folder as one line, with the space the stage needs."""
    user = as_user_error(exc, str(workdir))
    if user is not None and "disk full" in str(user):
        from .preflight.check import space_needed

        user = as_user_error(exc, str(workdir), space_needed(profile, stage.name))
    return user


def _record_failure(state: RunState, stage: str, fingerprint: str, status: str, error: str) -> None:
    """Best effort: the state file may be what the full disk or read-only folder refuses."""
    with contextlib.suppress(OSError):
        state.mark(stage, status, fingerprint, **({"error": error} if error else {}))
