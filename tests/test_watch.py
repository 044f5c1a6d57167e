"""Runs as other processes see them: the lock, following events, finding runs, stalls."""

from __future__ import annotations

import json
import sys
import time

import pytest

from retclip_pipeline import watch
from retclip_pipeline.errors import UserError
from retclip_pipeline.events import Event
from retclip_pipeline.ownership import Manifest
from retclip_pipeline.state import RunState


def test_one_pipeline_per_run_directory(tmp_path):
    assert watch.lock_holder(tmp_path) is None
    with watch.run_lock(tmp_path):
        assert watch.lock_holder(tmp_path) > 0
        with (
            pytest.raises(UserError, match="already being run by process"),
            watch.run_lock(tmp_path),
        ):
            pass
        with pytest.raises(UserError, match="already being run"):
            watch.start_detached(tmp_path / "p.toml", tmp_path)
    assert watch.lock_holder(tmp_path) is None  # released, and no stale lock file matters


def test_follower_waits_for_a_whole_line(tmp_path):
    path = tmp_path / watch.EVENTS_FILE
    follower = watch.EventFollower(tmp_path)
    assert follower.poll() == []
    first = Event("convert", "log", "one").to_json()
    second = Event("convert", "log", "two").to_json()
    path.write_text(first + "\n" + second[:10], encoding="utf-8")
    assert [e.message for e in follower.poll()] == ["one"]
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(second[10:] + "\n")
    assert [e.message for e in follower.poll()] == ["two"]
    assert follower.poll() == []


def test_runs_are_found_with_their_state_and_a_silent_run_is_stalled(tmp_path, monkeypatch):
    workdir = tmp_path / "runs" / "a"
    workdir.mkdir(parents=True)
    state = RunState.load(workdir)
    state.mark("convert", "done", "f")
    state.mark("lmdb", "failed", "f", error="disk full")
    (workdir / watch.RESOLVED_PROFILE).write_text('name = "a"\n[sizing]\nmode = "smoke"\n')
    old = Event("lmdb", "log", "x", time=time.time() - 2 * watch.STALL_S).to_json()
    (workdir / watch.EVENTS_FILE).write_text(old + "\n")
    (info,) = watch.find_runs(tmp_path / "runs")
    assert (info.name, info.sizing, info.running) == ("a", "smoke", False)
    assert info.summary() == "failed at lmdb"
    assert not info.stalled  # not running: nothing to stall
    with watch.run_lock(workdir):
        info = watch.run_info(workdir)
        assert info.running and info.stalled and "stalled" in info.summary()
    assert json.loads((workdir / "state.json").read_text())["stages"]["convert"]["status"] == "done"


def _sleeper(tmp_path, seconds: float = 120.0):
    """A stand-in pipeline: a script that only sleeps (it never takes the run's lock)."""
    script = tmp_path / "sleeper.py"
    script.write_text(f"import time\ntime.sleep({seconds})\n", encoding="utf-8")
    return script


def test_a_started_pipeline_runs_before_it_takes_the_lock_and_is_reaped(tmp_path, monkeypatch):
    import os

    workdir = tmp_path / "run"
    script = _sleeper(tmp_path)
    monkeypatch.setattr(watch, "pipeline_command", lambda *a, **k: [sys.executable, str(script)])
    pid = watch.start_detached(tmp_path / "p.toml", workdir)
    assert watch.lock_holder(workdir) is None  # no lock yet, as in a pipeline's first second
    assert watch.running_pid(workdir) == pid
    assert watch.run_info(workdir).running
    with pytest.raises(UserError, match=f"already being run by process {pid}"):
        watch.start_detached(tmp_path / "p.toml", workdir)  # one start at most
    assert watch.stop(workdir)  # a start not yet locked is stopped all the same
    deadline = time.monotonic() + 60
    while watch.running_pid(workdir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert watch.running_pid(workdir) is None
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped: no zombie left behind


def test_follower_starts_over_when_the_run_folder_is_remade(tmp_path):
    import shutil

    workdir = tmp_path / "run"
    workdir.mkdir()
    path = workdir / watch.EVENTS_FILE
    follower = watch.EventFollower(workdir)
    lines = [Event("convert", "log", f"old {n}").to_json() for n in range(5)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert len(follower.poll()) == 5
    shutil.rmtree(workdir)
    assert follower.poll() == []
    workdir.mkdir()
    path.write_text(Event("convert", "log", "new").to_json() + "\n", encoding="utf-8")
    assert [e.message for e in follower.poll()] == ["new"]


def test_a_start_that_fails_at_once_says_why_from_its_own_log_lines(tmp_path, monkeypatch):
    workdir = tmp_path / "run"
    workdir.mkdir()
    Manifest(workdir).claim(workdir / watch.LOG_FILE)  # an older start's log, as it wrote it
    (workdir / watch.LOG_FILE).write_text("error: an older run's failure\n", encoding="utf-8")
    script = tmp_path / "bad.py"
    script.write_text(
        "import sys\nprint('reading the profile')\n"
        "print('error: profile p.toml: [train] lr: expected a number', file=sys.stderr)\n"
        "sys.exit(2)\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(watch, "pipeline_command", lambda *a, **k: [sys.executable, str(script)])
    pid = watch.start_detached(tmp_path / "p.toml", workdir)
    deadline = time.monotonic() + 60
    while watch.ended(pid) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert watch.ended(pid) == (2, "error: profile p.toml: [train] lr: expected a number")
    assert watch.running_pid(workdir) is None
    assert watch.last_error(workdir) == "error: profile p.toml: [train] lr: expected a number"
    assert watch.last_error(tmp_path / "none") == ""


def test_a_started_pipeline_whose_run_is_over_is_not_running_while_it_ends(tmp_path, monkeypatch):
    from .conftest import ROOT

    workdir = tmp_path / "run"
    script = tmp_path / "ending.py"
    script.write_text(
        f"import sys, time\nfrom pathlib import Path\nsys.path.insert(0, {str(ROOT)!r})\n"
        "from retclip_pipeline.lock import run_lock\n"
        f"with run_lock(Path({str(workdir)!r})):\n    print('ran', flush=True)\n"
        "time.sleep(120)  # a slow teardown after the run\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(watch, "pipeline_command", lambda *a, **k: [sys.executable, str(script)])
    pid = watch.start_detached(tmp_path / "p.toml", workdir)
    log = workdir / watch.LOG_FILE
    deadline = time.monotonic() + 60
    while "ran" not in log.read_text(encoding="utf-8") and time.monotonic() < deadline:
        time.sleep(0.1)
    while watch.lock_holder(workdir) and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        assert watch.ended(pid) is None  # still alive
        assert watch.running_pid(workdir) is None  # but its run is over: a new one may start
    finally:
        watch._CHILDREN[pid].process.kill()
        watch._CHILDREN[pid].process.wait()


def test_a_run_whose_state_file_is_a_folder_is_listed_without_a_crash(tmp_path):
    (tmp_path / "run" / "state.json").mkdir(parents=True)
    assert watch.run_info(tmp_path / "run").stages == {}


def test_a_run_with_torn_foreign_or_non_utf8_lines_is_listed(tmp_path):
    """Attaching reads the last event's time and the profile copy: lines that are JSON but
    no event, a null time, bytes that are not UTF-8, or a damaged profile copy are passed
    over, never a crash."""
    workdir = tmp_path / "runs" / "a"
    workdir.mkdir(parents=True)
    RunState.load(workdir).mark("convert", "done", "f")
    good = Event("convert", "log", "x", time=1234.0).to_json()
    torn = ["[1]", "123", "null", '{"time": null}', '{"stage": "x", "ti', "\udcff"]
    text = good + "\n" + "\n".join(torn) + "\n"
    (workdir / watch.EVENTS_FILE).write_bytes(text.encode("utf-8", "surrogateescape"))
    (workdir / watch.RESOLVED_PROFILE).write_bytes(b'name = "\xff"\n')
    (info,) = watch.find_runs(tmp_path / "runs")
    assert info.last_event == 1234.0 and info.name == "a"
    (workdir / watch.RESOLVED_PROFILE).write_text('name = "b"\nsizing = 3\n')
    assert watch.run_info(workdir).name == "b"
