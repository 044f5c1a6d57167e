"""A second review at 80x24 in tmux: Train's errors under their fields, Sizing's samples and
fetch, toasts over the buttons, a message cut mid-word, stale lines after a new start, the
Start heading with --profile, a hand-written profile's comments, focus and the preview."""

from __future__ import annotations

import asyncio
import shutil

from . import test_tui
from .test_tui import error_under, goto, make_app, screen_name, text_of, type_into, wait_for
from .test_tui_review import fully_in_view, to_train
from .test_tui_screens import screen_text

home = test_tui.home  # a user's folder: profiles/tui.toml over the demo set, run from it

# ---- 1. Train: each error under its field ------------------------------------------------


def test_train_errors_show_under_their_fields(home):
    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await to_train(pilot)
            await type_into(pilot, "#f-train--epochs", "abc")
            await type_into(pilot, "#f-train--lr", "fast")
            await pilot.press("f4")
            await pilot.pause()
            assert screen_name(app) == "TrainScreen"
            said = " ".join(error_under(app, "train.epochs").split())
            assert said == "expected a whole number, got 'abc'", said
            assert "expected a number, got 'fast'" in error_under(app, "train.lr")
            assert error_under(app, "train.batch_size") == ""
            bottom = text_of(app.screen.query_one("#error"))
            assert "abc" not in bottom and "fast" not in bottom, bottom  # not on one line
            for key in ("epochs", "lr"):
                error = app.screen.query_one(f"#e-f-train--{key}")
                field = app.screen.query_one(f"#f-train--{key}")
                assert fully_in_view(app, error), key
                assert error.region.y == field.region.y + 1, key  # right under it
                assert error.region.x < field.region.right, key

    asyncio.run(walk())


# ---- 2. Sizing: no custom size under smoke; fetch is a choice ----------------------------


def test_sizing_hides_a_custom_size_under_smoke_and_offers_the_fetch_modes(home):
    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await goto(pilot, "SizingScreen")
            options = app.screen.query_one("#mode")
            options.focus()
            await pilot.press("end", "enter")  # custom
            await type_into(pilot, "#f-sizing--samples", "99999")
            assert app.screen.query_one("#samples").display
            options.focus()
            await pilot.press("home", "enter")  # smoke
            await pilot.pause()
            assert not app.screen.query_one("#samples").display
            assert "99999" not in screen_text(app)
            fetch = app.screen.query_one("#f-hub--fetch")
            assert type(fetch).__name__ == "Select"
            from retclip_pipeline.profile_schema import HubSection

            modes = next(f for f in HubSection.__dataclass_fields__.values() if f.name == "fetch")
            assert [value for _, value in fetch._options] == list(modes.metadata["choices"])
            fetch.value = "stream"
            await pilot.press("f4")
            await pilot.pause()
            assert screen_name(app) == "PrepareScreen"
            profile = app.session.profile
            assert profile.sizing.mode == "smoke" and profile.hub.fetch == "stream"
            assert profile.sizing.samples == 100
            saved = app.session.save_text(home / "profiles" / "tui.toml")
            assert "99999" not in saved and 'fetch = "stream"' in saved, saved

    asyncio.run(walk())


# ---- 5. Start: the profile loaded is named ----------------------------------------------


def test_start_names_the_profile_loaded_from_a_folder_with_no_profiles(home):
    mine = home / "mine"
    mine.mkdir()
    shutil.move(home / "profiles" / "tui.toml", mine / "x.toml")
    (home / "profiles").rmdir()

    async def walk():
        from retclip_tui.app import RetclipApp

        app = RetclipApp(profile=mine / "x.toml")
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            text = " ".join(screen_text(app).split())
            assert "none in this folder" not in text, text
            options = app.screen.query_one("#profiles")
            highlighted = options.get_option_at_index(options.highlighted)
            assert "mine/x.toml" in str(highlighted.prompt), highlighted.prompt

    asyncio.run(walk())


# ---- 3. A notification leaves Back/Next in sight; the printed message wraps at words -----


def test_the_ctrl_y_notification_covers_no_button(home):
    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            await to_train(pilot)
            await pilot.press("ctrl+y")  # nothing running: said in a notification
            await pilot.pause()
            toasts = list(app.screen.query("Toast"))
            assert toasts and "nothing to stop" in text_of(toasts[0])
            kept = [app.screen.query_one("#nav"), app.screen.query_one("#error")]
            kept.append(app.screen.query_one("Footer"))
            for toast in toasts:
                region = app.screen.find_widget(toast).region
                for widget in kept:
                    assert not region.overlaps(widget.region), (region, widget)

    asyncio.run(walk())


def test_the_leave_message_wraps_at_words_to_the_terminal(home, monkeypatch, capsys):
    import os
    import sys

    from retclip_tui import __main__ as entry

    where = "runs/a-rather-long-run-folder-name/for-the-full-size-run"
    message = (
        f"The run goes on in {where} (pipeline pid 4242). To follow it again, attach from "
        f"the Start screen or type this:\n  retclip-tui --attach {where}"
    )
    monkeypatch.setattr("retclip_tui.app.RetclipApp.run", lambda self, **kwargs: message)
    monkeypatch.setattr(sys, "stdin", type("Tty", (), {"isatty": lambda self: True})())
    monkeypatch.setattr("shutil.get_terminal_size", lambda *a: os.terminal_size((40, 24)))
    assert entry.main(["--profile", str(home / "profiles" / "tui.toml")]) == 0
    printed = capsys.readouterr().out.splitlines()
    for line in printed:
        assert len(line) <= 40 or " " not in line.strip(), line  # only a path stays long
    assert " ".join(" ".join(printed).split()) == " ".join(message.split())  # no word cut
    assert f"  retclip-tui --attach {where}" not in printed  # too long: its own lines
    assert "  retclip-tui --attach" in printed and f"  {where}" in printed


# ---- 4. What a screen shows is of the run now ---------------------------------------------


def write_history(workdir, events, stages) -> None:
    """A run folder's events file and state as a pipeline leaves them."""
    import json

    workdir.mkdir(parents=True, exist_ok=True)
    lines = [event.to_json() + "\n" for event in events]
    (workdir / "events.jsonl").write_text("".join(lines), encoding="utf-8")
    (workdir / "state.json").write_text(json.dumps({"stages": stages}), encoding="utf-8")


def log_text(app) -> str:
    return "\n".join(line.text for line in app.screen.query_one("#run-log").lines)


def test_a_new_training_clears_the_last_epoch_line(home):
    from retclip_pipeline.events import Event

    async def walk():
        app = make_app(home)
        workdir = app.session.workdir
        old = [
            Event("run", "run_started", "run tui"),
            Event("train", "stage_started", "RET-CLIP training"),
            Event("train", "metric", metrics={"epoch": 2, "train_loss": 1.5}),
        ]
        write_history(workdir, old, {"train": {"status": "interrupted", "fingerprint": "x"}})
        async with app.run_test(size=(80, 24)) as pilot:
            await to_train(pilot)
            live = app.screen.query_one("#live")
            await wait_for(pilot, lambda: "epoch 2" in text_of(live))
            new = [Event("run", "run_started", "run tui")]
            new.append(Event("train", "stage_started", "RET-CLIP training"))
            with open(workdir / "events.jsonl", "a", encoding="utf-8") as events:
                events.write("".join(event.to_json() + "\n" for event in new))
            app.screen.query_one("RunPanel").poll()
            await pilot.pause()
            assert "epoch 2" not in text_of(live) and "checkpoint" not in text_of(live)

    asyncio.run(walk())


def test_prepare_reopened_shows_no_failure_that_a_later_run_mended(home):
    from retclip_pipeline.events import Event

    failed = [
        Event("run", "run_started", "run tui"),
        Event("convert", "stage_started", "conversion"),
        Event("convert", "stage_failed", "convert: the old failure", level="error"),
        Event("run", "run_finished", "failed: the old failure", level="error"),
    ]
    mended = [
        Event("run", "run_started", "run tui"),
        Event("convert", "stage_started", "conversion"),
        Event("convert", "stage_finished", "converted 100 images"),
    ]

    async def reopened(events, status) -> str:
        from retclip_pipeline.runner import fingerprints

        app = make_app(home)
        current = fingerprints(app.session.profile)["convert"]  # these settings' own run
        stages = {"convert": {"status": status, "fingerprint": current}}
        write_history(app.session.workdir, events, stages)
        async with app.run_test(size=(80, 24)) as pilot:
            app.goto("prepare")
            await pilot.pause()
            app.goto("sizing")  # away, and back: the screen reads the history again
            await pilot.pause()
            app.goto("prepare")
            await pilot.pause()
            return log_text(app)

    later = asyncio.run(reopened(failed + mended, "done"))
    assert "the old failure" not in later and "converted 100 images" in later, later
    still = asyncio.run(reopened(failed, "failed"))
    assert "the old failure" in still, still  # the last run's own failure stays said


def test_a_training_that_failed_before_its_first_checkpoint_offers_start(home):
    from retclip_pipeline.layout import RunLayout
    from retclip_pipeline.runner import fingerprints, plan

    async def walk():
        app = make_app(home)
        profile, workdir = app.session.profile, app.session.workdir
        why = "cannot load the image tower"
        stage = {"status": "failed", "fingerprint": fingerprints(profile)["train"], "error": why}
        write_history(workdir, [], {"train": stage})
        rows = {row.stage.name: row for row in plan(profile, workdir)}
        assert rows["train"].status == "to run", rows["train"]  # as --dry-run says it
        async with app.run_test(size=(80, 24)) as pilot:
            await to_train(pilot)
            await wait_for(pilot, lambda: app.screen.query_one("#plan").states)
            panel = app.screen.query_one("RunPanel")
            panel.poll()
            await pilot.pause()
            button = app.screen.query_one("#run-start")
            assert str(button.label) == "Start (ctrl+g)"
            status = " ".join(text_of(app.screen.query_one("#run-status")).split())
            assert f"train failed: {why}. Fix it, then ctrl+g starts it afresh" in status
            latest = RunLayout.of(profile, workdir).latest  # a checkpoint: something to resume
            latest.parent.mkdir(parents=True)
            latest.write_bytes(b"")
            app.screen.refresh_plan()
            await app.workers.wait_for_complete()
            panel.poll()
            await pilot.pause()
            assert str(button.label) == "Resume (ctrl+g)"

    asyncio.run(walk())


# ---- 6. Saving a hand-written profile keeps its comments ----------------------------------


def test_saving_over_the_profile_loaded_keeps_its_comments(home):
    path = home / "profiles" / "tui.toml"
    text = "# my own profile, by hand\n" + path.read_text(encoding="utf-8")
    text = text.replace("epochs = 1\n", "epochs = 1 # one pass: a quick look\n")
    path.write_text(text, encoding="utf-8")

    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await to_train(pilot)
            await type_into(pilot, "#f-train--epochs", "4")
            await pilot.press("f2")  # the settings, then the Save screen
            await pilot.pause()
            assert screen_name(app) == "SaveScreen"
            shown = " ".join(screen_text(app).split())
            assert "the comments in profiles/tui.toml are kept" in shown, shown
            assert "# my own profile, by hand" in shown, shown
            await pilot.press("ctrl+g")
            await pilot.pause()
            question = " ".join(screen_text(app).split())
            assert "Overwrite profiles/tui.toml?" in question
            assert "comments are lost" not in question, question
            await pilot.press("y")
            await pilot.pause()
            assert "saved." in text_of(app.screen.query_one("#saved"))
            # Over another file that has comments of its own: said before, and asked.
            other = home / "profiles" / "other.toml"
            other.write_text("# someone else's\nname = 'other'\n", encoding="utf-8")
            await type_into(pilot, "#target", "profiles/other.toml")
            said = text_of(app.screen.query_one("#comments"))
            assert "has comments that saving over it loses" in said, said
            await pilot.press("ctrl+g")
            await pilot.pause()
            question = " ".join(screen_text(app).split())
            assert "Overwrite profiles/other.toml? Its comments are lost." in question
            await pilot.press("enter")  # the default: keep it
            await pilot.pause()
            assert other.read_text(encoding="utf-8").startswith("# someone else's")

    asyncio.run(walk())
    saved = path.read_text(encoding="utf-8")
    assert saved.startswith("# my own profile, by hand\n"), saved
    assert "epochs = 4 # one pass: a quick look\n" in saved, saved
    from retclip_pipeline import profile as profiles

    assert profiles.load(path, check_files=False).train.epochs == 4


# ---- 7. Focus in sight, Tab in reading order, the preview's rows at 80x24 -----------------


def reading_order(app) -> list:
    """The focus chain's widgets with where each is drawn (row, column; below the screen
    when scrolled out of it), less Back and Next (last, under all)."""
    placed = []
    for widget in app.screen.focus_chain:
        if widget.id in ("back", "next"):
            continue
        region = app.screen.find_widget(widget).region
        placed.append(((region.y, region.x), widget.id))
    return placed


def test_tab_follows_the_reading_order_and_the_focused_field_is_marked(home):
    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            for step in ("data", "sizing", "train", "save"):
                app.goto(step)
                await pilot.pause()
                placed = reading_order(app)
                assert placed == sorted(placed), (step, placed)
            # Train: left to right, then down.
            app.goto("train")
            await pilot.pause()
            ids = [name for _, name in reading_order(app)]
            knobs = [name for name in ids if name and name.startswith("f-")]
            assert knobs[:2] == ["f-model--vision", "f-train--epochs"], knobs
            app.screen.query_one("#f-model--vision").focus()
            await pilot.press("tab")
            await pilot.pause()
            assert app.focused.id == "f-train--epochs"
            labels = {
                field.dotted: field.query_one(".field-label") for field in app.screen.query("Field")
            }
            assert labels["train.epochs"].styles.text_style.reverse
            assert not labels["model.vision"].styles.text_style.reverse
            await pilot.press("shift+tab")
            await pilot.pause()
            assert labels["model.vision"].styles.text_style.reverse
            assert not labels["train.epochs"].styles.text_style.reverse
            body = app.screen.query_one("#body")
            before = body.styles.background_tint
            body.focus()
            await pilot.pause()
            assert body.styles.background_tint != before  # the scrolling body: marked too

    asyncio.run(walk())


def test_the_data_preview_shows_rows_at_80x24(home):
    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await goto(pilot, "DataScreen")
            await pilot.pause()
            table = app.screen.query_one("#preview")
            assert table.row_count >= 3
            assert fully_in_view(app, table)
            assert table.region.height >= 4, table.region  # the header and 3 rows at least
            text = screen_text(app)
            assert "dataset_index" in text  # the header in sight, with rows under it
            rows = [line for line in text.splitlines() if line.strip().startswith(("0 ", "1 "))]
            assert len(rows) >= 2, text

    asyncio.run(walk())


def test_prepare_reopened_after_a_change_does_not_say_done(home):
    from retclip_pipeline.events import Event

    finished = [
        Event("run", "run_started", "run tui"),
        Event("convert", "stage_finished", "converted"),
        Event("lmdb", "stage_finished", "built"),
        Event("run", "run_finished", "done"),
    ]
    done = {"status": "done", "fingerprint": "other settings"}  # stale for these

    async def walk():
        app = make_app(home)
        write_history(app.session.workdir, finished, {"convert": done, "lmdb": done})
        async with app.run_test(size=(80, 24)) as pilot:
            app.goto("prepare")
            await pilot.pause()
            app.screen.query_one("RunPanel").poll()
            await pilot.pause()
            what = text_of(app.screen.query_one("#what"))
            assert not what.startswith("done:"), what
            assert "ctrl+g starts or resumes it" in what, what

    asyncio.run(walk())
