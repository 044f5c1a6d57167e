"""The wizard's running steps: one start runs to the evaluation, the plan line is the truth,
Next gives the plan's reason, nothing trained is set aside without a question, and the
outcome of each action is in view at 80x24."""

from __future__ import annotations

import asyncio

import pytest

from retclip_pipeline import watch
from retclip_pipeline.data import demo

from . import test_tui
from .test_tui import goto, make_app, screen_name, text_of, type_into, wait_for

home = test_tui.home  # the wizard's folder: a profile over the small demo set


def plan(app) -> str:
    return text_of(app.screen.query_one("#plan"))


async def plan_says(pilot, *words: str) -> None:
    await wait_for(pilot, lambda: all(w in plan(pilot.app) for w in words))


def in_view(app, selector: str) -> bool:
    """The widget is drawn inside the 80x24 screen, not below its edge."""
    region = app.screen.query_one(selector).region
    return region.height > 0 and region.bottom <= app.size.height


async def train_to_the_end(pilot) -> None:
    app = pilot.app
    app.goto("prepare")
    await pilot.pause()
    await pilot.press("ctrl+g")
    await wait_for(pilot, lambda: app.screen.query_one("RunPanel").done)
    await goto(pilot, "TrainScreen")
    await pilot.press("ctrl+g")
    evaluation = app.session.workdir / "evaluation" / "evaluation_results.json"
    await wait_for(pilot, evaluation.exists)  # Train's one start ran the evaluation too
    await wait_for(pilot, lambda: not watch.run_info(app.session.workdir).running)


@pytest.mark.slow
def test_train_runs_to_the_evaluation_and_the_plan_follows_every_setting(home):
    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await train_to_the_end(pilot)
            await plan_says(pilot, "convert: done", "train: done", "evaluate: done")
            assert in_view(app, "#plan") and in_view(app, "#run-status")
            # A sizing change makes the data stale, and what reads it.
            app.goto("sizing")
            await pilot.pause()
            app.screen.query_one("#mode").focus()
            await pilot.press("end", "enter")
            await type_into(pilot, "#f-sizing--samples", "20")
            await pilot.press("ctrl+n")  # onto Prepare with the new sizing
            await plan_says(pilot, "convert: stale", "train: stale")
            assert screen_name(app) == "PrepareScreen"
            await pilot.press("ctrl+n")  # Next is refused with the plan's reason
            assert screen_name(app) == "PrepareScreen"
            error = text_of(app.screen.query_one("#error"))
            assert "convert is out of date (settings changed since it ran): ctrl+g runs it" in error
            assert in_view(app, "#error")

    asyncio.run(walk())


@pytest.mark.slow
def test_new_settings_over_a_trained_model_ask_and_default_to_a_new_folder(home):
    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await train_to_the_end(pilot)
            old = home / "runs" / "tui" / "logs" / "tui" / "checkpoints"
            kept = {p.name: p.read_bytes() for p in old.iterdir()}
            app.goto("train")
            await pilot.pause()
            await type_into(pilot, "#f-train--lr", "0.002")
            await pilot.press("ctrl+g")
            await pilot.pause()
            assert screen_name(app) == "Question"
            question = text_of(app.screen.query_one("Static"))
            assert "epoch 1 of 1" in question and "checkpoint" in question
            await pilot.press("enter")  # the default: a new run folder
            await pilot.pause()
            assert app.session.workdir == home / "runs" / "tui-2"
            await wait_for(pilot, (app.session.workdir / "evaluation").exists)
            await wait_for(pilot, lambda: not watch.run_info(app.session.workdir).running)
            assert {p.name: p.read_bytes() for p in old.iterdir()} == kept
            assert app.screen.losses and len(app.screen.vals) == 1  # fresh curves

    asyncio.run(walk())


@pytest.mark.slow
def test_a_failure_shows_its_reason_in_view_and_evaluating_unfinished_training_asks(home):
    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            app.goto("prepare")
            await pilot.pause()
            await pilot.press("ctrl+g")
            await wait_for(pilot, lambda: app.screen.query_one("RunPanel").done)
            await goto(pilot, "TrainScreen")
            await type_into(pilot, "#f-model--text", "no-such-tower")
            await pilot.press("ctrl+g")
            await wait_for(pilot, lambda: "failed" in text_of(app.screen.query_one("#run-status")))
            status = text_of(app.screen.query_one("#run-status"))
            assert "no-such-tower" in status and in_view(app, "#run-status")
            app.goto("evaluate")
            await pilot.pause()
            await pilot.press("ctrl+g")
            await pilot.pause()
            assert screen_name(app) == "Question"
            assert "The training is failed" in text_of(app.screen.query_one("Static"))
            await pilot.press("enter")  # the default: cancel
            await pilot.pause()
            assert screen_name(app) == "EvaluateScreen"
            assert not watch.run_info(app.session.workdir).running

    asyncio.run(walk())


@pytest.mark.slow
def test_full_size_after_a_passed_smoke_run_runs_every_stage_in_its_own_folder(home):
    (home / "profiles" / "tui.toml").write_text(
        demo.tiny_profile("tui", epochs=1) + '\n[sizing]\nmode = "smoke"\n', encoding="utf-8"
    )

    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await train_to_the_end(pilot)
            app.goto("evaluate")
            await pilot.pause()
            await wait_for(pilot, lambda: not app.screen.query_one("#full").disabled)
            await pilot.press("ctrl+l")
            await pilot.pause()
            full = home / "runs" / "tui-full"
            assert app.session.workdir == full and app.session.profile.sizing.mode == "full"
            evaluation = full / "evaluation" / "evaluation_results.json"
            await wait_for(pilot, evaluation.exists)

    asyncio.run(walk())
    assert (home / "runs" / "tui" / "logs" / "tui" / "checkpoints").is_dir()  # smoke kept


def test_back_keeps_every_valid_edit_when_another_field_is_bad(home):
    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            app.goto("train")
            await pilot.pause()
            await type_into(pilot, "#f-train--epochs", "7")
            await type_into(pilot, "#f-train--lr", "not a number")
            await pilot.press("f3")  # Back
            await pilot.pause()
            assert screen_name(app) == "PrepareScreen"
            assert app.session.profile.train.epochs == 7  # kept
            assert app.session.profile.train.lr == 3e-05  # the bad value is not

    asyncio.run(walk())
