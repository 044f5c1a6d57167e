"""Nothing lost under faults: a user's files in the work folder, a damaged state file,
changed settings, a kill just after an epoch's save, a killed pipeline's workers, a moved
run folder, a torn events file."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from retclip_pipeline import profile as profiles
from retclip_pipeline.errors import StageInterrupted
from retclip_pipeline.runner import run

from .conftest import PATIENCE_S, ROOT, demo_toml, write_profile

TRAIN = {"batch_size": 16, "epochs": 2, "lr": 0.0005, "warmup_steps": 2, "workers": 0}


def _profile(tmp_path, root, workdir: Path, train=None, name="p.toml") -> profiles.Profile:
    text = demo_toml(root, workdir=str(workdir), train=TRAIN | (train or {}))
    return profiles.load(write_profile(tmp_path, text, name))


def _events(profile, **kwargs) -> list:
    events = []
    run(profile, profile.workdir_path(), events.append, **kwargs)
    return events


def _messages(events) -> str:
    return "\n".join(e.message for e in events)


USER_FILES = ["lmdb/keep", "evaluation/notes.md", "logs/t/mine.txt", "data/own.csv", "x.txt"]


def test_a_users_files_in_the_work_folder_are_never_deleted(tmp_path, demo_root):
    workdir = tmp_path / "mine"
    for name in USER_FILES:
        (workdir / name).parent.mkdir(parents=True, exist_ok=True)
        (workdir / name).write_text("the user's own")
    profile = _profile(tmp_path, demo_root, workdir)
    _events(profile)
    _events(profile, restart=True)  # discards every stage's outputs
    profile.data.image_size = 24  # and a change that makes every stage stale
    profile.train.lr = 0.001
    _events(profile)
    for name in USER_FILES:
        assert (workdir / name).read_text() == "the user's own", name
    assert (workdir / "evaluation" / "evaluation_results.json").exists()


# Where a stage writes (a file it replaces, a folder it replaces whole), as a user's own:
# the stage stops with one line before it changes anything there.
FOREIGN = [
    ("data/convert_report.txt", "convert"),
    ("lmdb/train/imgs/keep", "lmdb"),
    ("logs/t/checkpoints/epoch2.pt", "train"),
    ("logs/t/export/keep", "train"),
]


@pytest.mark.parametrize(("name", "stage"), FOREIGN)
def test_a_users_file_where_the_pipeline_writes_stops_it_untouched(
    tmp_path, demo_root, name, stage
):
    from retclip_pipeline.errors import UserError

    workdir = tmp_path / "mine"
    (workdir / name).parent.mkdir(parents=True)
    (workdir / name).write_text("the user's own")
    profile = _profile(tmp_path, demo_root, workdir)
    events: list = []
    with pytest.raises(UserError) as raised:
        run(profile, workdir, events.append)
    message = str(raised.value)
    assert "\n" not in message and str(workdir / name).rsplit("/keep", 1)[0] in message
    assert "not written by this pipeline" in message and "move it out" in message
    assert (workdir / name).read_text() == "the user's own"
    started = [e.stage for e in events if e.kind == "stage_started"]
    assert stage not in started or started[-1] == stage  # stopped there, nothing after


def test_a_users_manifest_txt_is_never_read_as_the_pipelines(tmp_path, demo_root):
    # Were it read as the list of what the pipeline wrote, data/ would be ours to delete.
    from retclip_pipeline.errors import UserError

    workdir = tmp_path / "mine"
    (workdir / "data").mkdir(parents=True)
    (workdir / "data" / "own.csv").write_text("the user's own")
    (workdir / "manifest.txt").write_text("data\nlmdb\n")
    profile = _profile(tmp_path, demo_root, workdir)
    with pytest.raises(UserError) as raised:
        run(profile, workdir, lambda event: None, restart=True)
    assert f"{workdir / 'manifest.txt'} is already there and was not written" in str(raised.value)
    assert (workdir / "data" / "own.csv").read_text() == "the user's own"
    assert (workdir / "manifest.txt").read_text() == "data\nlmdb\n"


def test_a_state_file_of_valid_json_is_checked_against_the_receipts(tmp_path):
    from retclip_pipeline.errors import UserError
    from retclip_pipeline.state import RunState

    receipts = tmp_path / ".receipts"
    receipts.mkdir()
    done = {"status": "done", "fingerprint": "abc", "summary": {"epochs": 2}}
    (receipts / "train.json").write_text(json.dumps(done))
    state = tmp_path / "state.json"
    for text in (
        '{"stages": {}}',
        '{"stages": {"train": "x"}}',
        '{"stages": {"train": {"status": "done", "fingerprint": 5}}, "heartbeat": 3}',
        '{"stages": {"train": {"status": "running", "fingerprint": "old"}}}',
    ):
        state.write_text(text)
        loaded = RunState.load(tmp_path)
        assert loaded.stages == {"train": done}, text
        assert loaded.heartbeat == {} and "receipts of train" in loaded.rebuilt, text
    # A cut-off stage with no receipt stands as the file says; a stray entry goes.
    state.write_text('{"stages": {"lmdb": {"status": "running", "fingerprint": "f"}, "x": 1}}')
    loaded = RunState.load(tmp_path)
    assert loaded.stages == {"train": done, "lmdb": {"status": "running", "fingerprint": "f"}}
    # A folder in its place is one line that says what to do, not a traceback.
    state.unlink()
    state.mkdir()
    with pytest.raises(UserError, match=r"cannot read .*state.json \(Is a directory\): move it"):
        RunState.load(tmp_path)


def test_a_manifest_of_before_its_header_is_still_the_pipelines(tmp_path):
    from retclip_pipeline.ownership import Manifest

    (tmp_path / "manifest.txt").write_text("run.lock\nevents.jsonl\nlmdb/train/imgs\n")
    manifest = Manifest(tmp_path)
    assert not manifest.foreign and manifest.owns(tmp_path / "lmdb/train/imgs/data.mdb")


@pytest.mark.parametrize("damage", ["corrupt", "missing", "wrong"])
def test_a_damaged_state_file_is_rebuilt_and_nothing_is_retrained(tmp_path, demo_root, damage):
    profile = _profile(tmp_path, demo_root, tmp_path / "run")
    _events(profile)
    checkpoint = tmp_path / "run/logs/t/checkpoints/epoch_latest.pt"
    before = checkpoint.stat().st_mtime_ns
    state = tmp_path / "run" / "state.json"
    if damage == "corrupt":
        state.write_text("{")
    elif damage == "wrong":  # valid JSON, not a state a run wrote
        state.write_text('{"stages": {"train": "x", "lmdb": {"status": "done", "fingerprint": 5}}}')
    else:
        state.unlink()
    events = _events(profile)
    text = _messages(events)
    assert "rebuilt from their receipts" in text and "nothing was deleted" in text
    assert sum(e.kind == "stage_skipped" for e in events) == 4, text
    assert checkpoint.stat().st_mtime_ns == before


def test_with_neither_state_nor_receipts_training_resumes_from_its_checkpoint(tmp_path, demo_root):
    profile = _profile(tmp_path, demo_root, tmp_path / "run")
    _events(profile)
    (tmp_path / "run" / "state.json").unlink()
    shutil.rmtree(tmp_path / "run" / ".receipts")
    events = _events(profile)
    assert "resuming at epoch 3" in _messages(events)  # both epochs were done: nothing redone
    assert not any("set aside" in e.message for e in events)


def test_changed_settings_keep_checkpoints_until_the_new_run_writes_one(
    tmp_path, demo_root, monkeypatch
):
    from retclip_pipeline.errors import UserError
    from retclip_pipeline.training import trainer as train

    profile = _profile(tmp_path, demo_root, tmp_path / "run")
    _events(profile)
    folder = tmp_path / "run/logs/t/checkpoints"
    old = {p.name: p.read_bytes() for p in folder.iterdir()}
    # A change whose run fails before any step (a mistyped tower) loses nothing.
    profile.model.text = "no-such-tower"
    with pytest.raises(UserError):
        _events(profile, selected=["train"])
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == old
    # A change that trains: the old outputs are set aside, named with their size, and
    # deleted once the first new checkpoint is written.
    profile.model.text = "tiny"
    profile.train.lr = 0.001
    seen = {}
    original = train.Trainer.save

    def save(self, path):
        if self.saved_at is None:
            seen["before"] = sorted(p.name for p in folder.iterdir())
        original(self, path)

    monkeypatch.setattr(train.Trainer, "save", save)
    text = _messages(_events(profile, selected=["train"]))
    assert "are set aside in" in text and "superseded" in text and "3 checkpoints" in text
    assert "deleted" in text and "this run's first checkpoint is written" in text
    assert seen["before"] == sorted(old)  # untouched until the first new save
    assert not list((tmp_path / "run" / "superseded").iterdir())
    assert (folder / "epoch_latest.pt").read_bytes() != old["epoch_latest.pt"]


def test_an_out_of_memory_retry_keeps_earlier_checkpoints_until_it_writes_one(
    tmp_path, demo_root, monkeypatch
):
    from retclip_pipeline.training import trainer as train

    profile = _profile(tmp_path, demo_root, tmp_path / "run")
    _events(profile, selected=["convert", "lmdb", "train"])
    folder = tmp_path / "run/logs/t/checkpoints"
    old = sorted(p.name for p in folder.iterdir())
    profile.train.lr, profile.train.oom_retry = 0.001, True  # new settings, and then no memory
    original, seen = train.Trainer.run, {}

    def out_of_memory_once(self):
        if not seen:
            seen["first"] = sorted(p.name for p in folder.iterdir())
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        seen["retry"] = sorted(p.name for p in folder.iterdir())
        return original(self)

    monkeypatch.setattr(train.Trainer, "run", out_of_memory_once)
    monkeypatch.setattr("retclip_pipeline.training.oom.largest_fitting_batch", lambda p: 8)
    text = _messages(_events(profile, selected=["train"]))
    assert "retrying with train.batch_size = 8" in text
    assert seen["first"] == seen["retry"] == old  # nothing gone before the retry's first save
    assert all(name.endswith(".pt") for name in old) and f"({len(old)} checkpoints" in text
    assert "this run's first checkpoint is written" in text


@pytest.mark.parametrize("moment", ["after the epoch file", "after the latest"])
def test_a_kill_just_after_an_epoch_save_loses_nothing(tmp_path, demo_root, monkeypatch, moment):
    """epoch2.pt and metrics.jsonl's second line survive a kill at either moment."""
    from retclip_pipeline.atomic import link_or_copy
    from retclip_pipeline.training import trainer as train

    whole = _profile(tmp_path, demo_root, tmp_path / "whole", {"epochs": 3, "save_every": 2})
    _events(whole, selected=["convert", "lmdb", "train"])
    cut = _profile(tmp_path, demo_root, tmp_path / "cut", {"epochs": 3, "save_every": 2}, "c.toml")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    if moment == "after the epoch file":  # epoch2.pt written, epoch_latest.pt not yet
        monkeypatch.setattr(train, "link_or_copy", killed, raising=False)
        monkeypatch.setattr("retclip_pipeline.atomic.link_or_copy", killed)
    else:  # both written, metrics.jsonl not yet
        monkeypatch.setattr(train.Trainer, "write_history", lambda self: killed())
    with pytest.raises(StageInterrupted):
        _events(cut, selected=["convert", "lmdb", "train"])
    monkeypatch.undo()
    assert link_or_copy  # the real one again
    _events(cut, selected=["train"])
    folder = "logs/t/checkpoints"
    names = sorted(p.name for p in (tmp_path / "cut" / folder).iterdir())
    assert names == ["best.pt", "epoch2.pt", "epoch3.pt", "epoch_latest.pt"]
    lines = (tmp_path / "cut/logs/t/metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]
    for name in ("epoch2.pt", "epoch3.pt", "best.pt"):
        expected = torch.load(tmp_path / "whole" / folder / name, weights_only=True)
        got = torch.load(tmp_path / "cut" / folder / name, weights_only=True)
        for key, value in expected["state_dict"].items():
            assert torch.equal(value, got["state_dict"][key]), (name, key)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[1]) == pid:  # the parent's pid
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["convert", "train"])
def test_a_killed_pipeline_reruns_at_once_and_its_workers_end(tmp_path, demo_root, stage):
    train = {"epochs": 30, "workers": 2, "batch_size": 4}
    profile = _profile(tmp_path, demo_root, tmp_path / "run", train)
    if stage == "train":
        run(profile, profile.workdir_path(), lambda e: None, selected=["convert", "lmdb"])
    command = [sys.executable, "-m", "retclip_pipeline", "--profile", str(profile.source)]
    process = subprocess.Popen(command + ["--stages", stage], cwd=ROOT, stderr=subprocess.DEVNULL)
    events = profile.workdir_path() / "events.jsonl"
    task = '"task": "epoch 1/30"' if stage == "train" else '"task": "train images"'
    deadline = time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline and process.poll() is None:
        if events.exists() and task in events.read_text():
            break
        time.sleep(0.05)
    workers = _children(process.pid)
    assert workers, "no worker process to check"
    os.kill(process.pid, signal.SIGKILL)  # the pipeline alone: its workers are orphaned
    process.wait()
    again = subprocess.run(
        command + ["--stages", stage, "--dry-run"], cwd=ROOT, capture_output=True, text=True
    )
    rerun = subprocess.Popen(command + ["--stages", stage], cwd=ROOT, stderr=subprocess.PIPE)
    # Gone within a second or two when right (they watch their parent); the bug kept them
    # for minutes.
    deadline = time.monotonic() + 300
    while any(map(_alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(_alive, workers)), "the killed pipeline's workers linger"
    # The run's first line ("[run] run t in ...") comes once it holds the lock. Conversion is
    # short and runs to its end; 29 epochs of training on a loaded machine are stopped there.
    lines = []
    while not lines or not lines[-1].startswith((b"[run]", b"error")):
        lines.append(rerun.stderr.readline())
        if not lines[-1]:
            break
    if stage == "train":
        rerun.terminate()  # SIGTERM: it stops like Ctrl-C
    _, err = rerun.communicate(timeout=PATIENCE_S)
    err = b"".join(lines) + err
    assert again.returncode == 0
    assert b"already being run" not in err
    assert lines[-1].startswith(b"[run] run t in"), err.decode()[-2000:]
    if stage == "convert":
        assert rerun.returncode == 0, err.decode()[-2000:]


def test_a_moved_run_folder_reruns_nothing(tmp_path, demo_root):
    profile = _profile(tmp_path, demo_root, tmp_path / "here", {"epochs": 1})
    _events(profile)
    shutil.move(tmp_path / "here", tmp_path / "there")
    profile.workdir = str(tmp_path / "there")
    events = _events(profile)
    assert sum(e.kind == "stage_skipped" for e in events) == 4, _messages(events)


def test_a_torn_or_foreign_events_line_is_skipped(tmp_path):
    from retclip_pipeline.events import Event, read_events
    from retclip_pipeline.watch import EventFollower

    good = Event("train", "log", "fine").to_json()
    torn = good[:25]  # a writer killed mid-line; the next run appends on the same line
    (tmp_path / "events.jsonl").write_bytes(
        f"{good}\n{torn}{good}\n".encode() + b"\xff\xfe not json\n" + f"{good}\n".encode()
    )
    assert [e.message for e in read_events(tmp_path / "events.jsonl")] == ["fine"] * 3
    assert [e.message for e in EventFollower(tmp_path).poll()] == ["fine"] * 3


@pytest.mark.parametrize(
    "stage,fault",
    [
        ("lmdb", "read-only"),
        ("lmdb", "full"),
        ("evaluate", "full"),
        ("evaluate", "read-only"),
    ],
)
def test_a_full_disk_or_read_only_folder_is_one_line_and_keeps_finished_work(
    tmp_path, demo_root, capsys, monkeypatch, stage, fault
):
    """Even when the state file itself cannot be written any more."""
    import errno

    from retclip_pipeline import state
    from retclip_pipeline.__main__ import main
    from retclip_pipeline.data import lmdb_io as lmdb_store

    profile = _profile(tmp_path, demo_root, tmp_path / "run", {"epochs": 1})
    before = ["convert"] if stage == "lmdb" else ["convert", "lmdb", "train"]
    run(profile, profile.workdir_path(), lambda e: None, selected=before)
    kept = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*.tsv")}

    def broken(*args, **kwargs):
        if stage == "lmdb":
            words = "Read-only file system" if fault == "read-only" else "No space left on device"
            raise lmdb_store_error(f"{tmp_path}/run/lmdb/.building: {words}")
        raise OSError(
            errno.EROFS if fault == "read-only" else errno.ENOSPC,
            "refused",
            str(tmp_path / "run/evaluation/report.md"),
        )

    import lmdb

    lmdb_store_error = lmdb.Error
    if stage == "lmdb":
        monkeypatch.setattr(lmdb_store, "build_env", broken)
    else:
        monkeypatch.setattr("retclip_pipeline.stages.evaluate.write_text", broken)
    saves = []
    real_save = state.RunState.save

    def save(self):  # the state file fails too, once the stage has failed
        if any(e.get("status") == "failed" for e in self.stages.values()):
            saves.append(1)
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path))
        real_save(self)

    monkeypatch.setattr(state.RunState, "save", save)
    capsys.readouterr()
    assert main(["--profile", str(profile.source), "--stages", stage]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    if fault == "full":
        assert "disk full while writing" in lines[0] and "needs about" in lines[0]
    else:
        assert "read-only file system" in lines[0] and "--workdir" in lines[0]
    assert saves  # the failing state write was tried, and did not hide the message
    assert {p: p.read_bytes() for p in kept} == kept


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_a_full_disk_before_any_stage_is_one_line(tmp_path, demo_root, capsys, monkeypatch, fault):
    """The run's own bookkeeping (its copy of the profile) is written before any stage: a
    disk already full there is one line too, not a traceback."""
    import errno

    from retclip_pipeline.__main__ import main

    profile = _profile(tmp_path, demo_root, tmp_path / "run", {"epochs": 1})
    run(profile, profile.workdir_path(), lambda e: None, selected=["convert"])
    kept = {p: p.read_bytes() for p in (tmp_path / "run/data").iterdir()}

    def broken(path, *args, **kwargs):
        code = errno.EROFS if fault == "read-only" else errno.ENOSPC
        raise OSError(code, "refused", str(path))

    monkeypatch.setattr("retclip_pipeline.runner.write_text", broken)
    capsys.readouterr()
    assert main(["--profile", str(profile.source), "--stages", "convert"]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    words = "disk full while writing" if fault == "full" else "read-only file system"
    assert words in lines[0] and "profile.resolved.toml" in lines[0], lines[0]
    assert {p: p.read_bytes() for p in kept} == kept
