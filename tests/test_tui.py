"""The TUI with Textual's Pilot: each screen's behaviour on good and bad input, the whole
wizard on the demo through evaluation, leaving a run and attaching to it, snapshots, and the
token in no file."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from retclip_pipeline import watch
from retclip_pipeline.data import demo

from .conftest import PATIENCE_S, ROOT

TOKEN = "hf_" + "secretTUI" * 4


@pytest.fixture
def home(tmp_path, monkeypatch, demo_root) -> Path:
    """A user's folder: profiles/tui.toml over a copy of the small demo set; the TUI runs
    from it, so that every path on screen is relative and snapshots are the same anywhere."""
    shutil.copytree(demo_root, tmp_path / "seeds" / "demo")
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "tui.toml").write_text(
        demo.tiny_profile("tui", epochs=1), encoding="utf-8"
    )
    (tmp_path / "prompts").mkdir()  # the example CSV the Data screen points to, shown relative
    example = shutil.copy(ROOT / "prompts" / "example_prompts.csv", tmp_path / "prompts")
    monkeypatch.setattr("retclip_pipeline.preflight.inspect.EXAMPLE_CSV", Path(example))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the TUI's error log
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    return tmp_path


def make_app(home: Path, **kwargs):
    from retclip_tui.app import RetclipApp

    return RetclipApp(profile=home / "profiles" / "tui.toml", **kwargs)


def screen_name(app) -> str:
    return type(app.screen).__name__


async def goto(pilot, name: str) -> None:
    for _ in range(8):
        if screen_name(pilot.app) == name:
            return
        await pilot.press("f4")
        await pilot.pause()
    raise AssertionError(f"never reached {name}: on {screen_name(pilot.app)}")


async def wait_for(pilot, condition, timeout: float = PATIENCE_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            log = pilot.app.session.workdir / watch.LOG_FILE
            tail = log.read_text()[-2000:] if log.exists() else "no pipeline.log"
            raise AssertionError(f"timed out on {screen_name(pilot.app)}:\n{tail}")
        await pilot.pause(0.5)


def text_of(widget) -> str:
    return str(widget.render())


def error_under(app, dotted: str) -> str:
    from retclip_tui.screens.base import field_id

    return text_of(app.screen.query_one("#e-" + field_id(dotted)))


async def type_into(pilot, selector: str, value: str) -> None:
    widget = pilot.app.screen.query_one(selector)
    widget.value = value
    widget.focus()
    await pilot.pause()


# ---- each screen, good and bad input -----------------------------------------------------


def test_start_screen_loads_profiles_and_names_a_bad_one(home):
    (home / "bad.toml").write_text('name = "x"\n[trian]\nepochs = 1\n', encoding="utf-8")

    async def walk():
        async with make_app(home).run_test(size=(80, 24)) as pilot:
            assert screen_name(pilot.app) == "StartScreen"
            await type_into(pilot, "#profile-path", "nowhere.toml")
            await pilot.press("enter")
            assert "profile not found" in text_of(pilot.app.screen.query_one("#profile-error"))
            await type_into(pilot, "#profile-path", str(home / "bad.toml"))
            await pilot.press("enter")
            error = text_of(pilot.app.screen.query_one("#profile-error"))
            assert "bad.toml:2: trian" in error and "did you mean" in error
            assert pilot.app.session.profile.name == "tui"  # the good one is kept
            pilot.app.screen.query_one("#profiles").focus()
            await pilot.press("enter")  # the first listed profile: profiles/tui.toml
            assert "tui" in text_of(pilot.app.screen.query_one("#current"))

    asyncio.run(walk())


def test_token_screen_checks_with_the_hub_and_never_shows_the_token(home, monkeypatch):
    from . import hubstand

    url, server = hubstand.serve(hubstand.Hub({"org/set": hubstand.Repo({})}))
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)

    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            app.session.profile.hub.dataset = "org/set"
            await goto(pilot, "TokenScreen")
            await type_into(pilot, "#token-input", hubstand.BAD)
            await pilot.press("ctrl+g")
            await app.workers.wait_for_complete()
            await pilot.pause()
            findings = text_of(app.screen.query_one("#findings"))
            assert "invalid or revoked" in findings
            await type_into(pilot, "#token-input", hubstand.GOOD)
            await pilot.press("ctrl+g")
            await app.workers.wait_for_complete()
            await pilot.pause()
            findings = text_of(app.screen.query_one("#findings"))
            assert "valid (user tester)" in findings and "org/set is readable" in findings
            assert hubstand.GOOD not in app.export_screenshot()
            await pilot.press("ctrl+n")
            assert app.session.token == hubstand.GOOD
            assert app.session.env() == {"HF_TOKEN": hubstand.GOOD}

    try:
        asyncio.run(walk())
    finally:
        server.shutdown()


def test_token_screen_offline_says_the_hub_was_not_reached_and_still_stores(home, monkeypatch):
    from huggingface_hub import constants, get_token

    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # connections refused: no network
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "hf" / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "hf" / "stored"))

    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            app.session.profile.hub.dataset = "org/set"
            await goto(pilot, "TokenScreen")
            await type_into(pilot, "#token-input", TOKEN)
            await pilot.press("ctrl+g")
            await app.workers.wait_for_complete()
            await pilot.pause()
            findings = text_of(app.screen.query_one("#findings"))
            assert "skip  hub not reachable (ConnectError" in findings, findings
            assert "the token typed here was not checked (not known to be invalid)" in findings
            assert "data set org/set not checked" in findings
            assert "invalid" not in findings.replace("not known to be invalid", "")
            app.screen.query_one("#store").press()
            await app.workers.wait_for_complete()
            await pilot.pause()
            findings = text_of(app.screen.query_one("#findings"))
            assert "stored by huggingface_hub; later runs find it; hub not reachable (" in findings
            assert "the token was not checked" in findings
            assert TOKEN not in app.export_screenshot()

    asyncio.run(walk())
    assert get_token() == TOKEN


def test_data_screen_previews_guesses_validates_and_marks_bad_fields(home):
    (home / "mine.csv").write_text(
        "image_index,diagnosis,report\n0,Glaucoma,cupped disc\n1,Healthy,normal fundus\n",
        encoding="utf-8",
    )

    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await goto(pilot, "DataScreen")
            assert app.screen.query_one("#preview").row_count == 4
            await pilot.press("ctrl+r")
            await app.workers.wait_for_complete()
            await pilot.pause()
            report = text_of(app.screen.query_one("#report"))
            assert "distinct images" in report and "ready to convert" in text_of(
                app.screen.query_one("#verdict")
            )
            assert "classes" in report and "prompt tokens" in report
            await type_into(pilot, "#f-data--train_csv", "missing.csv")
            await pilot.press("ctrl+n")
            assert screen_name(app) == "DataScreen"
            assert "file not found" in error_under(app, "data.train_csv")
            await type_into(pilot, "#f-data--train_csv", str(home / "mine.csv"))
            await pilot.pause()
            assert app.screen.query_one("#f-data--index_column").value == "image_index"
            assert app.screen.query_one("#f-data--label_column").value == "diagnosis"
            assert app.screen.query_one("#f-data--text_column").value == "report"
            await type_into(pilot, "#f-data--text_column", "nope")
            await pilot.press("ctrl+r")
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert "nope" in text_of(app.screen.query_one("#report"))

    asyncio.run(walk())


def test_sizing_screen_estimates_and_rejects_a_bad_count(home):
    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await goto(pilot, "SizingScreen")
            estimate = text_of(app.screen.query_one("#estimate"))
            assert "train: 59 of 59" in estimate and "disk" in estimate
            app.screen.query_one("#mode").focus()
            await pilot.press("end", "enter")  # custom, the last option
            options = app.screen.query_one("#mode")
            assert str(options.get_option("custom").prompt).startswith("(•) custom")
            assert str(options.get_option("full").prompt).startswith("( ) full")
            await type_into(pilot, "#f-sizing--samples", "abc")
            await pilot.press("ctrl+n")
            assert screen_name(app) == "SizingScreen"
            assert "whole number" in error_under(app, "sizing.samples")
            await type_into(pilot, "#f-sizing--samples", "20")
            assert "train: 20 of 59" in text_of(app.screen.query_one("#estimate"))
            await pilot.press("ctrl+n")
            assert app.session.profile.sizing.mode == "custom"
            assert app.session.profile.sizing.samples == 20

    asyncio.run(walk())


def test_train_and_save_screens_mark_bad_values(home):
    async def walk():
        app = make_app(home)
        async with app.run_test(size=(120, 40)) as pilot:
            app.goto("train")
            await pilot.pause()
            await type_into(pilot, "#f-train--epochs", "0")
            await pilot.press("ctrl+g")  # start: the settings are checked first
            assert error_under(app, "train.epochs") == "must be at least 1, got 0"  # under it
            assert not (home / "runs" / "tui" / watch.LOG_FILE).exists()
            await type_into(pilot, "#f-train--epochs", "3")
            await pilot.press("f2")  # to the Save screen from any step
            await pilot.pause()
            assert screen_name(app) == "SaveScreen"
            await type_into(pilot, "#target", str(home / "profiles" / "saved.txt"))
            await pilot.press("ctrl+g")
            assert "ends in .toml" in text_of(app.screen.query_one("#error"))
            await type_into(pilot, "#target", str(home / "profiles" / "saved.toml"))
            await pilot.press("ctrl+g")
            saved = (home / "profiles" / "saved.toml").read_text()
            assert (
                "epochs = 3" in saved and 'train_csv = "../seeds/demo/prompts_train.csv"' in saved
            )

    asyncio.run(walk())


def test_first_screen_imports_no_heavy_library(home):
    code = (
        "import sys, time; t = time.perf_counter(); import retclip_tui.app, retclip_tui.screens;"
        " from retclip_tui.screens import make; make('start');"
        " print([m for m in ('torch', 'transformers', 'datasets') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr


def test_help_and_module_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "retclip_tui", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "--attach RUN_DIR" in result.stdout


# ---- snapshots -------------------------------------------------------------------------


async def settled(pilot) -> None:
    """The screen once its background work has shown: the plan line, the device line."""
    await wait_for(pilot, lambda: bool(pilot.app.screen.query_one("#plan").states))
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def test_snapshot_start_80x24(home, snap_compare):
    assert snap_compare(make_app(home), terminal_size=(80, 24), run_before=settled)


def test_snapshot_start_120x40(home, snap_compare):
    assert snap_compare(make_app(home), terminal_size=(120, 40), run_before=settled)


def test_snapshot_data_80x24(home, snap_compare):
    async def to_data(pilot):
        await pilot.press("ctrl+n", "ctrl+n")
        await settled(pilot)

    assert snap_compare(make_app(home), terminal_size=(80, 24), run_before=to_data)


def test_snapshot_train_120x40(home, snap_compare):
    async def to_train(pilot):
        pilot.app.goto("train")
        await pilot.pause()
        await settled(pilot)

    assert snap_compare(make_app(home), terminal_size=(120, 40), run_before=to_train)


# ---- runs ------------------------------------------------------------------------------


@pytest.mark.slow
def test_whole_wizard_on_the_demo_to_the_evaluation_and_no_file_holds_the_token(home):
    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await goto(pilot, "TokenScreen")
            await type_into(pilot, "#token-input", TOKEN)
            await goto(pilot, "PrepareScreen")
            await pilot.press("ctrl+g")
            panel = app.screen.query_one("RunPanel")
            await wait_for(pilot, lambda: panel.done)
            await goto(pilot, "TrainScreen")
            await pilot.press("ctrl+g")
            panel = app.screen.query_one("RunPanel")
            await wait_for(pilot, lambda: panel.done)
            await pilot.pause(1.0)
            assert app.screen.losses, "no loss curve drawn"
            await goto(pilot, "EvaluateScreen")
            await pilot.press("ctrl+g")
            panel = app.screen.query_one("RunPanel")
            await wait_for(pilot, lambda: panel.done)
            await wait_for(pilot, lambda: app.screen.query_one("#metrics").row_count > 0)
            await goto(pilot, "SaveScreen")
            await pilot.press("ctrl+g")
            assert TOKEN not in app.export_screenshot()

    asyncio.run(walk())
    assert (home / "runs" / "tui" / "evaluation" / "evaluation_results.json").exists()
    assert (home / "profiles" / "tui.toml").read_text().count("token") == 0
    written = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.name == "events.jsonl" for p in written)
    for path in written:
        assert TOKEN.encode() not in path.read_bytes(), path


@pytest.mark.slow
def test_leave_a_run_going_then_attach_to_it_and_stop_it(home):
    (home / "profiles" / "tui.toml").write_text(
        demo.tiny_profile("tui", epochs=400), encoding="utf-8"
    )
    workdir = home / "runs" / "tui"

    async def first():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            app.goto("prepare")
            await pilot.pause()
            await pilot.press("ctrl+g")
            await wait_for(pilot, lambda: watch.run_info(workdir).stages.get("lmdb") == "done")
            await goto(pilot, "TrainScreen")
            await pilot.press("ctrl+g")
            await wait_for(pilot, lambda: bool(app.screen.losses))
            await pilot.press("f10")
            await pilot.pause()
            assert screen_name(app) == "LeaveScreen"
            await pilot.press("l")
            await pilot.pause()

    asyncio.run(first())
    pid = watch.lock_holder(workdir)
    assert pid, "the run ended with the TUI"

    async def second():
        from retclip_tui.app import RetclipApp

        app = RetclipApp(attach=workdir)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(1.0)
            assert screen_name(app) == "TrainScreen"
            log = "\n".join(str(line) for line in app.screen.query_one("RichLog").lines)
            assert "[train]" in log  # the run's history, not only what follows
            app.screen.query_one("RunPanel").start()  # a second start is refused
            assert "already being run" in text_of(app.screen.query_one("#run-status"))
            await pilot.press("ctrl+y")
            await wait_for(pilot, lambda: watch.lock_holder(workdir) is None)
            await pilot.pause(1.0)
            assert "interrupted" in text_of(app.screen.query_one("#run-status"))

    asyncio.run(second())
    assert watch.run_info(workdir).stages["train"] == "interrupted"
    assert os.path.exists(workdir / "events.jsonl")


def test_colab_drive_is_offered_for_the_run_directory(home, monkeypatch):
    drive = home / "drive" / "MyDrive"
    drive.mkdir(parents=True)
    monkeypatch.setattr("retclip_tui.screens.start.DRIVE", drive)

    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            box = app.screen.query_one("#drive")
            box.value = True
            await pilot.press("ctrl+n")
            assert screen_name(app) == "TokenScreen"
            assert app.session.profile.workdir_path() == drive / "retclip-runs" / "tui"

    asyncio.run(walk())


def test_buttons_do_what_the_keys_do(home):
    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await goto(pilot, "DataScreen")
            await pilot.click("#next")
            await pilot.pause()
            assert screen_name(app) == "SizingScreen"  # one step, not two
            await pilot.click("#back")
            await pilot.pause()
            assert screen_name(app) == "DataScreen"
            await pilot.press("escape")
            await pilot.pause()
            assert screen_name(app) == "TokenScreen"

    asyncio.run(walk())


def test_train_screen_shows_a_slow_step_rate_per_hour_never_zero(home):
    """ViT-B/16 on a busy CPU: 0.004 samples a second reads 14.4 samples/h, not 0 samples/s."""
    from types import SimpleNamespace

    from retclip_pipeline.events import Event

    async def walk():
        app = make_app(home)
        async with app.run_test(size=(120, 40)) as pilot:
            app.goto("train")
            await pilot.pause()
            metrics = {"step": 3, "loss": 11.8, "samples_per_s": 0.004, "eta_s": 7200.0}
            event = Event("train", "metric", "step 3", metrics=metrics)
            app.screen.on_run_panel_followed(SimpleNamespace(event=event))
            await pilot.pause()
            live = text_of(app.screen.query_one("#live"))
            assert "step 3: 14.4 samples/h, ETA 2:00:00" in live, live

    asyncio.run(walk())
