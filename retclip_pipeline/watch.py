"""Runs as other processes see them: the lock that keeps one pipeline per run directory,
starting a run detached from the terminal, finding runs and their state, following a run's
events. Used by the TUI; nothing here imports Textual or torch."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError
from .events import Event
from .layout import EVENTS_FILE, LOCK_FILE, LOG_FILE, RESOLVED_PROFILE, STATE_FILE, RunLayout  # noqa: F401
from .lock import lock_holder, run_lock  # noqa: F401 - what a watcher asks
from .state import RunState

STALL_S = 300.0  # a running stage silent this long is flagged as stalled


@dataclass
class _Child:
    process: subprocess.Popen
    workdir: Path  # resolved
    log_from: int  # the log's size when it started: what it wrote comes after


# Pipelines this process started, until they end and are reaped: one that has not taken
# its run's lock yet is running all the same. Those that ended: pid -> (exit code, why).
_CHILDREN: dict[int, _Child] = {}
_ENDED: dict[int, tuple[int, str]] = {}


def reap() -> None:
    """Collect the pipelines this process started that have ended (no zombie stays), with
    why one that failed did; never waits."""
    for pid, child in list(_CHILDREN.items()):
        code = child.process.poll()
        if code is not None:
            _CHILDREN.pop(pid, None)
            _ENDED[pid] = (code, last_error(child.workdir, child.log_from) if code else "")


def ended(pid: int) -> tuple[int, str] | None:
    """(exit code, the last error line of its log) of a pipeline this process started that
    has ended; None while it runs (or when this process did not start it)."""
    reap()
    return _ENDED.get(pid)


def last_error(workdir: Path, since: int = 0) -> str:
    """The last error line the pipelines wrote to the run's log after byte `since` (else its
    last line): why a run that ended at once (a bad profile, a busy lock) did."""
    try:
        with open(RunLayout(workdir).pipeline_log, "rb") as handle:
            handle.seek(since)
            data = handle.read()[-65536:]
    except OSError:
        return ""
    lines = [line.strip() for line in data.decode("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line]
    errors = [line for line in lines if line.lower().startswith(("error", "failed"))]
    return (errors or lines or [""])[-1]


def running_pid(workdir: Path) -> int | None:
    """The pid running this run directory: the lock's holder, or a pipeline this process
    started there that has not taken the lock yet; None when none is (-1: held, pid unknown)."""
    holder = lock_holder(workdir)
    if holder and holder > 0:
        return holder
    reap()
    where = workdir.resolve()
    started = next((pid for pid, c in list(_CHILDREN.items()) if c.workdir == where), None)
    if started and not holder and _released_by(workdir, started):
        return None  # its run is over: it is only ending (the interpreter's teardown)
    return started or holder


def _released_by(workdir: Path, pid: int) -> bool:
    """The free lock names `pid`: that pipeline took the run's lock and let it go."""
    try:
        return RunLayout(workdir).lock.read_text(encoding="utf-8").strip() == str(pid)
    except OSError:
        return False


def pipeline_command(
    profile: Path, workdir: Path, stages: list[str] | None = None, restart: bool = False
) -> list[str]:
    command = [sys.executable, "-m", "retclip_pipeline", "--profile", str(profile)]
    command += ["--workdir", str(workdir)]
    if stages:
        command += ["--stages", ",".join(stages)]
    if restart:
        command.append("--restart")
    return command


def start_detached(
    profile: Path,
    workdir: Path,
    stages: list[str] | None = None,
    restart: bool = False,
    env: dict[str, str] | None = None,
) -> int:
    """Start the pipeline in its own session, so that closing the terminal (or the TUI)
    does not end it. `env` adds variables (a token typed in the TUI travels this way, never
    through a file). Returns its pid."""
    from .ownership import Manifest

    holder = running_pid(workdir)
    if holder:
        process = f"process {holder}" if holder > 0 else "another process"
        raise UserError(f"{workdir} is already being run by {process}: attach to it")
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = RunLayout(workdir).pipeline_log
    Manifest(workdir).claim(log_path)
    with open(log_path, "ab") as log:
        log_from = log.tell()
        process = subprocess.Popen(
            pipeline_command(profile, workdir, stages, restart),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "NO_COLOR": "1", **(env or {})},
        )
    _CHILDREN[process.pid] = _Child(process, workdir.resolve(), log_from)
    return process.pid


def stop(workdir: Path) -> bool:
    """Ask the run to stop as Ctrl-C would: the stage ends cleanly and resumes next time.
    A pipeline this process started that has not taken the lock yet simply ends."""
    pid = running_pid(workdir)
    if not pid or pid < 0:
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


class EventFollower:
    """New events of a run since the last call; a half-written line waits for its end."""

    def __init__(self, workdir: Path):
        self.path = workdir / EVENTS_FILE
        self.offset = 0
        self.identity: tuple[int, int] | None = None  # the file read, as (inode, device)
        self.last_time: float | None = None

    def poll(self) -> list[Event]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            stat = None
        identity = (stat.st_ino, stat.st_dev) if stat else None
        if identity != self.identity or (stat and stat.st_size < self.offset):
            self.offset, self.identity = 0, identity  # deleted or remade: a new history
        if not stat:
            return []
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        events = [e for e in map(Event.from_line, data[:end].splitlines()) if e is not None]
        if events:
            self.last_time = events[-1].time
        return events


@dataclass
class RunInfo:
    workdir: Path
    name: str
    stages: dict[str, str] = field(default_factory=dict)  # stage -> status
    pid: int | None = None  # the running pipeline, if any
    last_event: float | None = None
    stage_running: str | None = None
    sizing: str = ""
    errors: dict[str, str] = field(default_factory=dict)  # stage -> why it failed

    @property
    def running(self) -> bool:
        return bool(self.pid)

    @property
    def stalled(self) -> bool:
        return (
            self.running and self.last_event is not None and time.time() - self.last_event > STALL_S
        )

    def summary(self) -> str:
        if self.running:
            state = f"running {self.stage_running or ''}".strip()
            return state + (" (stalled: no event for 5 min)" if self.stalled else "")
        done = [s for s, status in self.stages.items() if status == "done"]
        failed = [s for s, status in self.stages.items() if status in ("failed", "interrupted")]
        if failed:
            return f"{self.stages[failed[0]]} at {failed[0]}"
        return f"done: {', '.join(done)}" if done else "not started"


def run_info(workdir: Path) -> RunInfo:
    try:
        state = RunState.load(workdir)
    except UserError:  # a state.json that cannot be read (a folder): the run says so when run
        state = RunState(workdir / STATE_FILE)
    name, sizing = workdir.name, ""
    resolved = workdir / RESOLVED_PROFILE
    if resolved.exists():
        import tomllib

        try:
            data = tomllib.loads(resolved.read_text(encoding="utf-8"))
            name = data.get("name", name)
            sizing = str(data.get("sizing", {}).get("mode", ""))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, AttributeError, OSError):
            pass  # a damaged copy of the profile: the folder's name stands
    statuses = {stage: entry.get("status", "?") for stage, entry in state.stages.items()}
    running = next((s for s, status in statuses.items() if status == "running"), None)
    return RunInfo(
        workdir,
        name,
        statuses,
        running_pid(workdir),
        _last_event_time(workdir / EVENTS_FILE) or state.heartbeat.get("time"),
        running,
        sizing,
        {stage: entry["error"] for stage, entry in state.stages.items() if entry.get("error")},
    )


def _last_event_time(path: Path) -> float | None:
    if not path.exists():
        return None
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - 4096))
        lines = [line for line in handle.read().split(b"\n") if line.strip()]
    for line in reversed(lines):  # a torn, foreign or non-UTF-8 line is passed over
        event = Event.from_line(line)
        if event is not None and math.isfinite(event.time):
            return event.time
    return None


def find_runs(*roots: Path) -> list[RunInfo]:
    """Run directories (those with a state file) directly under each root, newest first."""
    found = {}
    for root in roots:
        if not root.is_dir():
            continue
        for state in root.glob(f"*/{STATE_FILE}"):
            found[state.parent.resolve()] = state.stat().st_mtime
    return [run_info(path) for path in sorted(found, key=found.get, reverse=True)]


@dataclass
class StageState:
    """A stage as the plan and the run's state see it: done, stale, resume, to run, or,
    while a run goes or after it stopped, running, failed or interrupted."""

    stage: str
    status: str
    reason: str = ""
    afresh: bool = False  # failed or interrupted with nothing saved: a start begins anew


def stage_states(profile, workdir: Path) -> list[StageState]:
    """The plan of `--dry-run` for the profile's settings, with what the run is doing."""
    from .runner import NOTHING_SAVED, plan

    info = run_info(workdir)
    states = []
    for row in plan(profile, workdir):
        name, status, reason = row.stage.name, row.status, row.reason
        live = info.stages.get(name)
        afresh = status == "to run" and reason.endswith(NOTHING_SAVED)
        if info.running and live == "running":
            status, reason, afresh = "running", "", False
        elif live in ("failed", "interrupted") and (status == "resume" or afresh):
            status, reason = live, info.errors.get(name, "")
        states.append(StageState(name, status, reason, afresh))
    return states


@dataclass
class TrainedOutputs:
    """Checkpoints in a run's training folder, as a question about them names them."""

    checkpoints: int
    size: int  # bytes
    epoch: int  # epochs the metrics record
    epochs: int | None  # epochs the run was set to, when its profile says

    def describe(self) -> str:
        from .units import size

        of = f" of {self.epochs}" if self.epochs else ""
        return (
            f"epoch {self.epoch}{of}, {self.checkpoints} checkpoint"
            f"{'s' if self.checkpoints != 1 else ''}, {size(self.size)}"
        )


def trained_outputs(profile, workdir: Path) -> TrainedOutputs | None:
    """What a run with these settings would set aside: the training folder's checkpoints,
    unless the training is current (done, or to resume with these settings)."""
    states = {s.stage: s.status for s in stage_states(profile, workdir)}
    if states.get("train") in ("done", "resume", "running", "failed", "interrupted"):
        return None
    return trained_outputs_any(profile, workdir)


def _describe_trained(layout: RunLayout) -> TrainedOutputs:
    checkpoints = sorted(layout.checkpoints.glob("*.pt"))
    epoch = 0
    metrics = layout.metrics
    if metrics.is_file():
        lines = metrics.read_text(encoding="utf-8", errors="replace").splitlines()
        for line in reversed(lines):
            try:
                epoch = int(json.loads(line).get("epoch", 0))
                break
            except (ValueError, AttributeError, TypeError):
                continue
    epochs = None
    resolved = layout.resolved_profile
    if resolved.is_file():
        import tomllib

        try:
            epochs = tomllib.loads(resolved.read_text(encoding="utf-8"))["train"]["epochs"]
        except (tomllib.TOMLDecodeError, KeyError, TypeError):
            epochs = None
    total = sum(p.stat().st_size for p in checkpoints)
    return TrainedOutputs(len(checkpoints), total, epoch, epochs)


def trained_outputs_any(profile, workdir: Path) -> TrainedOutputs | None:
    """The training folder's checkpoints whatever the plan says (for a question about an
    unfinished training)."""
    layout = RunLayout.of(profile, workdir)
    if not list(layout.checkpoints.glob("*.pt")):
        return None
    return _describe_trained(layout)
