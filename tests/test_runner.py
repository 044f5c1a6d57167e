"""The runner: plan statuses, skip/resume/stale, restart, events and state."""

import json

import pytest

from retclip_pipeline import profile as profiles
from retclip_pipeline.errors import StageInterrupted, UserError
from retclip_pipeline.events import read_events
from retclip_pipeline.profile import TrainSection
from retclip_pipeline.runner import plan, run


def _statuses(profile, workdir):
    return {row.stage.name: row.status for row in plan(profile, workdir)}


def test_plan_follows_the_run(demo_profile):
    profile = profiles.load(demo_profile)
    workdir = profile.workdir_path()
    assert _statuses(profile, workdir) == {
        "convert": "to run",
        "lmdb": "to run",
        "train": "to run",
        "evaluate": "to run",
    }
    assert not workdir.exists()  # planning changes nothing
    run(profile, workdir, lambda e: None)
    done = {"convert": "done", "lmdb": "done", "train": "done", "evaluate": "done"}
    assert _statuses(profile, workdir) == done
    profile.train.lr = 0.01  # the evaluation is of the model this would replace
    assert _statuses(profile, workdir) == done | {"train": "stale", "evaluate": "stale"}
    profile.train.lr = TrainSection().lr
    profile.data.jpeg_quality = 90
    assert _statuses(profile, workdir) == {
        "convert": "stale",
        "lmdb": "stale",
        "train": "stale",
        "evaluate": "stale",
    }
    profile.data.jpeg_quality = 95
    profile.hub.token_env = "OTHER"  # not something the outputs depend on
    assert _statuses(profile, workdir) == done


def test_what_reads_a_stale_stage_is_stale_with_the_reason(demo_profile):
    profile = profiles.load(demo_profile)
    workdir = profile.workdir_path()
    run(profile, workdir, lambda e: None)
    profile.train.epochs = 2
    rows = {row.stage.name: row for row in plan(profile, workdir)}
    assert (rows["train"].status, rows["evaluate"].status) == ("stale", "stale")
    assert rows["evaluate"].reason == "train is stale: the model it evaluated is replaced"
    printed = _dry_run(profile, workdir)  # the plan --dry-run prints
    assert "evaluate stale (train is stale: the model it evaluated is replaced)" in printed
    profile.train.epochs = 1
    profile.eval.checkpoint = "init"  # the untrained model: it reads no training
    run(profile, workdir, lambda e: None, ["evaluate"])
    profile.train.epochs = 2
    assert _statuses(profile, workdir) == {
        "convert": "done",
        "lmdb": "done",
        "train": "stale",
        "evaluate": "done",
    }


def _dry_run(profile, workdir) -> str:
    import contextlib
    import io

    from retclip_pipeline.cli.run import _dry_run as dry_run

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        dry_run(profile, workdir, None, None)
    return " ".join(out.getvalue().split())


def test_rerun_skips_done_work_and_redoes_stale(demo_profile):
    profile = profiles.load(demo_profile)
    workdir = profile.workdir_path()
    run(profile, workdir, lambda e: None)
    tsv = workdir / "data" / "train_imgs.tsv"
    stamp = tsv.stat().st_mtime_ns
    events = []
    run(profile, workdir, events.append)
    assert [e.kind for e in events if e.stage != "run"] == ["stage_skipped"] * 4
    assert tsv.stat().st_mtime_ns == stamp
    profile.data.image_size = 24
    run(profile, workdir, lambda e: None)
    assert tsv.stat().st_mtime_ns != stamp


def test_edited_csv_makes_conversion_stale(demo_profile):
    profile = profiles.load(demo_profile)
    workdir = profile.workdir_path()
    run(profile, workdir, lambda e: None)
    csv_path = profile.resolve(profile.data.test_csv)
    csv_path.write_text(csv_path.read_text().replace("fundus", "retina", 1))
    assert _statuses(profile, workdir)["convert"] == "stale"


def test_interrupted_stage_resumes(demo_profile, monkeypatch):
    from retclip_pipeline.data import conversion as convert

    profile = profiles.load(demo_profile)
    workdir = profile.workdir_path()
    monkeypatch.setattr(convert, "CHUNK", 8)
    calls = {"n": 0}
    original = convert.convert_batch

    def flaky(*args):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return original(*args)

    monkeypatch.setattr(convert, "convert_batch", flaky)

    class InlinePool:  # run tasks in this process so the patch applies
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def submit(self, fn, *args):
            from concurrent.futures import Future

            future = Future()
            future.set_result(fn(*args))
            return future

        def shutdown(self, **kw):
            pass

    monkeypatch.setattr(convert, "make_pool", lambda n=None: InlinePool())
    with pytest.raises(StageInterrupted):
        run(profile, workdir, lambda e: None)
    state = json.loads((workdir / "state.json").read_text())
    assert state["stages"]["convert"]["status"] == "interrupted"
    assert _statuses(profile, workdir)["convert"] == "resume"
    parts = list((workdir / "data" / ".parts").rglob("*.json"))
    # Chunks of 8, one batch each, one chunk submitted ahead: the 5th batch (chunk 4) fails
    # while chunk 3 waits to be written, so chunks 0-2 are finished.
    assert len(parts) == 3
    events = []
    run(profile, workdir, events.append)
    started = [e for e in events if e.kind == "stage_started" and e.stage == "convert"]
    assert "resuming" in started[0].message
    first_progress = next(e for e in events if e.kind == "progress" and e.done)
    assert first_progress.done == 8  # picks up the finished chunks without redoing them
    assert calls["n"] > 5
    assert not (workdir / "data" / ".parts").exists()


def test_events_file_and_heartbeat(demo_profile):
    profile = profiles.load(demo_profile)
    workdir = profile.workdir_path()
    run(profile, workdir, lambda e: None)
    events = list(read_events(workdir / "events.jsonl"))
    kinds = [e.kind for e in events]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert {"stage_started", "progress", "log", "stage_finished"} <= set(kinds)
    progress = [e for e in events if e.kind == "progress"]
    assert all(e.total and e.task for e in progress)
    state = json.loads((workdir / "state.json").read_text())
    assert state["heartbeat"]["pid"] > 0 and state["heartbeat"]["time"] > 0
    resolved = (workdir / "profile.resolved.toml").read_text()
    assert "jpeg_quality = 95" in resolved  # every default written out


def test_restart_redoes_selected_stages(demo_profile):
    profile = profiles.load(demo_profile)
    workdir = profile.workdir_path()
    run(profile, workdir, lambda e: None)
    events = []
    run(profile, workdir, events.append, selected=["lmdb"], restart=True)
    assert [e.stage for e in events if e.kind == "stage_finished"] == ["lmdb"]


def test_stage_needing_unfinished_upstream_says_what_to_run(demo_profile):
    profile = profiles.load(demo_profile)
    with pytest.raises(UserError, match=r"needs convert.*--stages convert,lmdb"):
        run(profile, profile.workdir_path(), lambda e: None, selected=["lmdb"])
    last = list(read_events(profile.workdir_path() / "events.jsonl"))[-1]
    assert last.kind == "run_finished" and last.level == "error"


def test_a_start_that_fails_before_touching_its_outputs_keeps_them_done(demo_profile, tmp_path):
    """A tower that will not load fails the new training before any checkpoint is written:
    the finished training still stands for the settings it was made with."""
    profile = profiles.load(demo_profile)
    workdir = profile.workdir_path()
    run(profile, workdir, lambda e: None)
    trained = profile.model.text
    profile.model.text = str(tmp_path / "no-such-tower")
    with pytest.raises(UserError):
        run(profile, workdir, lambda e: None, ["train"])
    assert _statuses(profile, workdir)["train"] == "stale"  # for the failed settings
    profile.model.text = trained
    assert _statuses(profile, workdir) == dict.fromkeys(
        ("convert", "lmdb", "train", "evaluate"), "done"
    )
