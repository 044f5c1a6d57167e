"""A run's lifecycle as the wizard shows it, with a stand-in pipeline (a small script in
place of `python -m retclip_pipeline`): a failed start says why and stays said, one start at
most, quitting asks while a run just started goes and when settings are unsaved, quitting
never waits on a worker, and the plan line follows a run folder deleted under it."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import threading

import pytest

from retclip_pipeline import watch
from retclip_pipeline.events import Event

from . import test_tui
from .test_tui import make_app, screen_name, text_of, type_into, wait_for

home = test_tui.home


@pytest.fixture
def pipeline(home, monkeypatch):
    """Sets the stand-in pipeline's body (Python, `workdir` a Path); ends what it started."""

    def use(body: str) -> None:
        script = home / "pipeline.py"
        script.write_text(
            "import json, sys, time\nfrom pathlib import Path\nworkdir = Path(sys.argv[1])\n"
            + body,
            encoding="utf-8",
        )
        monkeypatch.setattr(
            watch,
            "pipeline_command",
            lambda profile, workdir, *a, **k: [sys.executable, str(script), str(workdir)],
        )

    yield use
    for child in list(watch._CHILDREN.values()):
        child.process.kill()
        child.process.wait()
    watch.reap()


def started_in(workdir) -> int:
    where = workdir.resolve()
    return sum(1 for child in watch._CHILDREN.values() if child.workdir == where)


def state_running(stage: str) -> str:
    """A stand-in body that says `stage` is running, then waits to be stopped."""
    state = {"stages": {stage: {"status": "running", "fingerprint": "x"}}}
    return (
        f"(workdir / 'state.json').write_text({json.dumps(json.dumps(state))})\ntime.sleep(300)\n"
    )


def log_text(log) -> str:
    """A RunLog's lines, as one line again (wrapping breaks them at spaces)."""
    return " ".join(" ".join(strip.text.split()) for strip in log.lines)


def test_a_failed_start_says_why_until_the_user_acts_and_its_bar_stops(home, pipeline):
    progress = Event("convert", "progress", done=3, task="images", unit="images").to_json()
    pipeline(
        f"(workdir / 'events.jsonl').write_text({progress!r} + '\\n')\n"
        "time.sleep(1.5)\n"
        "print('error: the profile is bad: [sizing] samples: expected a whole number', "
        "file=sys.stderr)\nsys.exit(2)\n"
    )

    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            app.goto("prepare")
            await pilot.pause()
            panel = app.screen.query_one("RunPanel")
            await pilot.press("ctrl+g")
            await wait_for(pilot, lambda: panel.bars)  # its bar shows while it runs
            status = app.screen.query_one("#run-status")
            why = "error: the profile is bad: [sizing] samples: expected a whole number"
            await wait_for(pilot, lambda: why in text_of(status))
            assert "the run failed (exit 2)" in text_of(status)
            # the status is cut at 80x24: the log, which scrolls, has the line whole
            assert f"the run failed (exit 2): {why}" in log_text(app.screen.query_one("#run-log"))
            assert not panel.bars  # no bar animates on, no ETA stays, after the failure
            for _ in range(3):  # the polls that follow never write over it
                panel.poll()
                await pilot.pause()
            assert why in text_of(status)
            await pilot.press("ctrl+y")  # the user acts: the old reason goes
            await pilot.pause()
            assert why not in text_of(status)
            await pilot.press("ctrl+g")  # fails again
            await wait_for(pilot, lambda: why in text_of(status))
            app.session.update({"sizing.samples": "50"})  # a setting fixed: said no more
            panel.poll()
            await pilot.pause()
            assert why not in text_of(status)

    asyncio.run(walk())


def test_ctrl_g_three_times_starts_one_and_f10_at_once_asks_to_leave_it(home, pipeline):
    pipeline("time.sleep(300)\n")  # it never takes the lock: a pipeline in its first second

    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            app.goto("prepare")
            await pilot.pause()
            await pilot.press("ctrl+g", "ctrl+g", "ctrl+g")
            await pilot.pause()
            workdir = app.session.workdir
            assert started_in(workdir) == 1
            assert "a run is going on in this folder" in text_of(app.screen.query_one("#error"))
            await pilot.press("f10")
            await pilot.pause()
            assert screen_name(app) == "LeaveScreen"  # never a quit with the run unasked
            await pilot.press("s")  # stop it
            await pilot.pause()
        assert app.return_value is None  # stopped, not left running
        for child in list(watch._CHILDREN.values()):
            child.process.wait(60)  # the stop reached it
        assert watch.running_pid(workdir) is None

    asyncio.run(walk())


def test_next_while_running_and_evaluate_while_training_say_what_is_going_on(home, pipeline):
    pipeline(state_running("convert"))

    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            app.goto("prepare")
            await pilot.pause()
            await pilot.press("ctrl+g")
            await wait_for(
                pilot, lambda: "convert: running" in text_of(app.screen.query_one("#plan")), 60
            )
            await pilot.press("f4")
            await pilot.pause()
            assert screen_name(app) == "PrepareScreen"
            error = text_of(app.screen.query_one("#error"))
            assert "convert is running: Next once it is done" in error
            assert "ctrl+g runs it" not in error
            await pilot.press("ctrl+y")
            await wait_for(pilot, lambda: not watch.run_info(app.session.workdir).running)

    asyncio.run(walk())


def test_evaluate_while_training_runs_says_the_evaluation_follows(home, pipeline):
    pipeline(state_running("train"))

    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            app.goto("prepare")
            await pilot.pause()
            await pilot.press("ctrl+g")
            workdir = app.session.workdir
            await wait_for(pilot, lambda: watch.run_info(workdir).stage_running == "train")
            app.goto("evaluate")
            await pilot.pause()
            where = text_of(app.screen.query_one("#where"))
            assert "training is running: the evaluation follows when it ends" in where
            assert "ctrl+g runs it" not in where
            await pilot.press("ctrl+g")
            await pilot.pause()
            error = text_of(app.screen.query_one("#error"))
            assert "train is running: the evaluation follows it" in error
            assert started_in(workdir) == 1

    asyncio.run(walk())


def test_quit_with_changed_settings_asks_to_save_them(home):
    profile = home / "profiles" / "tui.toml"
    before = profile.read_text(encoding="utf-8")

    async def walk(answer: str):
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            app.goto("train")
            await pilot.pause()
            await type_into(pilot, "#f-train--lr", "0.0007")
            await pilot.press("f10")
            await pilot.pause()
            assert screen_name(app) == "Question"
            assert "Save changes to profiles/tui.toml?" in text_of(app.screen.query_one("Static"))
            await pilot.press(answer)
            await pilot.pause()
            return app.screen if app.is_running else None

    asyncio.run(walk("c"))  # cancel: the wizard stays, nothing is written
    assert profile.read_text(encoding="utf-8") == before
    asyncio.run(walk("d"))  # discard: quits, nothing is written
    assert profile.read_text(encoding="utf-8") == before
    asyncio.run(walk("s"))
    assert "lr = 0.0007" in profile.read_text(encoding="utf-8")

    async def unchanged():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("f10")  # saved: quits without a question
            await pilot.pause()
            assert not app.is_running

    asyncio.run(unchanged())


def test_quitting_does_not_wait_for_a_busy_worker(home):
    from retclip_tui.__main__ import busy_threads, run

    release = threading.Event()
    workers: list[threading.Thread] = []
    app = make_app(home)

    def busy() -> None:  # a validation of a large CSV, under way when F10 comes
        workers.append(threading.current_thread())
        app.call_from_thread(app.action_leave)
        release.wait(300)

    app.call_later(lambda: app.run_worker(busy, thread=True))
    try:
        run(app, headless=True, size=(80, 24))
        assert workers[0].is_alive()  # the app ended while its worker was still at work
        assert workers[0] in busy_threads()  # what main() ends the process without
    finally:
        release.set()


def test_the_plan_line_follows_a_run_folder_deleted_under_it(home):
    workdir = home / "runs" / "tui"
    workdir.mkdir(parents=True)
    state = {"stages": {"convert": {"status": "done", "fingerprint": "other settings"}}}
    (workdir / "state.json").write_text(json.dumps(state), encoding="utf-8")

    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            app.goto("prepare")
            await pilot.pause()
            plan = lambda: text_of(app.screen.query_one("#plan"))  # noqa: E731
            await wait_for(pilot, lambda: "convert: stale" in plan())
            shutil.rmtree(workdir)
            await wait_for(pilot, lambda: "convert: to run" in plan())

    asyncio.run(walk())


def test_a_sizing_chosen_shows_in_the_plan_line_before_next(home):
    from retclip_pipeline import profile as profiles
    from retclip_pipeline.runner import all_stages, fingerprints

    profile = profiles.load(home / "profiles" / "tui.toml")
    workdir = profile.workdir_path()
    convert = all_stages()[0]
    for path in convert.outputs(profile, workdir):  # converted with these settings
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    state = {
        "stages": {"convert": {"status": "done", "fingerprint": fingerprints(profile)["convert"]}}
    }
    (workdir / "state.json").write_text(json.dumps(state), encoding="utf-8")

    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            app.goto("sizing")
            await pilot.pause()
            plan = lambda: text_of(app.screen.query_one("#plan"))  # noqa: E731
            await wait_for(pilot, lambda: "convert: done" in plan())
            app.screen.query_one("#mode").focus()
            await pilot.press("home", "enter")  # smoke: 100 samples
            await wait_for(pilot, lambda: "convert: stale" in plan())
            assert screen_name(app) == "SizingScreen"  # no Next pressed

    asyncio.run(walk())


def test_quit_with_a_bad_value_typed_says_so_once_then_quits_without_it(home):
    profile = home / "profiles" / "tui.toml"
    before = profile.read_text(encoding="utf-8")

    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            app.goto("train")
            await pilot.pause()
            await type_into(pilot, "#f-train--lr", "fast")
            await pilot.press("f10")
            await pilot.pause()
            assert app.is_running and screen_name(app) == "TrainScreen"  # never lost unsaid
            await pilot.press("f10")  # again: quits without it
            await pilot.pause()
            assert not app.is_running

    asyncio.run(walk())
    assert profile.read_text(encoding="utf-8") == before


def test_a_setting_typed_on_train_shows_in_the_plan_line_before_ctrl_g(home):
    from retclip_pipeline import profile as profiles
    from retclip_pipeline.runner import all_stages, fingerprints

    profile = profiles.load(home / "profiles" / "tui.toml")
    workdir = profile.workdir_path()
    made = fingerprints(profile)
    stages = {}
    for stage in all_stages()[:3]:  # convert, lmdb and train done with these settings
        for path in stage.outputs(profile, workdir):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        stages[stage.name] = {"status": "done", "fingerprint": made[stage.name]}
    (workdir / "state.json").write_text(json.dumps({"stages": stages}), encoding="utf-8")
    trained_lr = str(profile.train.lr)

    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            app.goto("train")
            await pilot.pause()
            plan = lambda: text_of(app.screen.query_one("#plan"))  # noqa: E731
            await wait_for(pilot, lambda: "train: done" in plan())
            await type_into(pilot, "#f-train--lr", "0.0123")
            await wait_for(pilot, lambda: "train: stale" in plan())
            await type_into(pilot, "#f-train--lr", trained_lr)  # back as it was trained
            await wait_for(pilot, lambda: "train: done" in plan())
            assert screen_name(app) == "TrainScreen"  # no ctrl+g, no Next

    asyncio.run(walk())


def test_a_new_profile_with_settings_typed_asks_to_save_on_quit(tmp_path, monkeypatch):
    """No profile file yet (an empty folder): what was typed is not lost without a word."""
    from retclip_tui.app import RetclipApp

    monkeypatch.chdir(tmp_path)

    async def walk(answer: str | None):
        app = RetclipApp()
        async with app.run_test(size=(80, 24)) as pilot:
            app.goto("train")
            await pilot.pause()
            if answer is None:  # nothing typed: quits at once
                await pilot.press("f10")
                await pilot.pause()
                assert not app.is_running
                return
            await type_into(pilot, "#f-train--lr", "0.0007")
            await pilot.press("f10")
            await pilot.pause()
            assert screen_name(app) == "Question"
            said = text_of(app.screen.query_one("Static"))
            assert "Save changes to profiles/retclip.toml?" in said, said
            await pilot.press(answer)
            await pilot.pause()

    asyncio.run(walk(None))
    asyncio.run(walk("s"))
    assert "lr = 0.0007" in (tmp_path / "profiles" / "retclip.toml").read_text(encoding="utf-8")
