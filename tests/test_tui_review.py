"""What a reviewer found driving the wizard at 80x24 by keyboard: errors and fields out of
sight, Back losing a choice, Start's Next ignoring what it shows, a log one line high,
checkpoints sorted as text, run folders not named, and paths on two different bases."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from retclip_pipeline import watch
from retclip_pipeline.data import demo

from . import test_tui
from .test_tui import error_under, goto, make_app, screen_name, text_of, type_into
from .test_tui_screens import screen_text

home = test_tui.home  # a user's folder: profiles/tui.toml over the demo set, run from it

KNOBS = ("model--vision", "model--text", "model--freeze", "train--epochs", "train--batch_size")
KNOBS += ("train--lr",)


def fully_in_view(app, widget) -> bool:
    """Drawn whole on the screen: inside the terminal and not clipped by a container."""
    from textual.errors import NoWidget

    try:
        geometry = app.screen.find_widget(widget)
    except NoWidget:
        return False
    region = geometry.region
    return (
        region.height > 0
        and geometry.clip.contains_region(region)
        and region.bottom <= app.size.height
    )


async def to_train(pilot) -> None:
    pilot.app.goto("train")
    await pilot.pause()


# ---- 1. Train: every error and every field in view -------------------------------------


def test_train_errors_are_all_in_view_and_tab_never_reaches_a_hidden_field(home):
    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await to_train(pilot)
            await type_into(pilot, "#f-train--epochs", "abc")
            await type_into(pilot, "#f-train--batch_size", "0")
            await type_into(pilot, "#f-train--lr", "fast")
            await pilot.press("f4")
            await pilot.pause()
            assert screen_name(app) == "TrainScreen"
            text = " ".join(screen_text(app).split())
            # Each under its field (tests/test_tui_polish.py), all on screen.
            for key, said in (
                ("train.epochs", "expected a whole number, got 'abc'"),
                ("train.batch_size", "must be at least 2, got 0"),
                ("train.lr", "expected a number, got 'fast'"),
            ):
                assert said in text and error_under(app, key) == said, key
            for knob in KNOBS:
                assert fully_in_view(app, app.screen.query_one(f"#f-{knob}")), knob
            app.screen.query_one("#f-model--vision").focus()
            await pilot.pause()
            for _ in KNOBS:
                assert fully_in_view(app, app.focused), app.focused
                await pilot.press("tab")
                await pilot.pause()
            # A value fixed clears its own error, and only its own.
            await type_into(pilot, "#f-train--epochs", "3")
            assert error_under(app, "train.epochs") == ""
            assert "must be at least 2" in error_under(app, "train.batch_size")

    asyncio.run(walk())


# ---- 2. Back keeps the sizing choice ---------------------------------------------------


def test_back_keeps_the_sizing_choice(home):
    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await goto(pilot, "SizingScreen")
            app.screen.query_one("#mode").focus()
            await pilot.press("home", "enter")  # smoke
            await pilot.press("f3")
            await pilot.pause()
            assert screen_name(app) == "DataScreen"
            assert app.session.profile.sizing.mode == "smoke"
            await pilot.press("f4")
            await pilot.pause()
            options = app.screen.query_one("#mode")
            assert str(options.get_option("smoke").prompt).startswith("(•) smoke")

    asyncio.run(walk())


# ---- 3. Start: Next takes what the screen shows ----------------------------------------


def test_start_next_takes_the_highlighted_profile_or_the_typed_path(home):
    other = home / "elsewhere" / "other.toml"
    other.parent.mkdir()
    other.write_text(demo.tiny_profile("other", epochs=1), encoding="utf-8")

    async def walk():
        from retclip_tui.app import RetclipApp

        app = RetclipApp()  # no profile named: a new one; ./profiles/tui.toml is listed
        async with app.run_test(size=(80, 24)) as pilot:
            options = app.screen.query_one("#profiles")
            highlighted = options.get_option_at_index(options.highlighted)
            assert highlighted.id == "new"  # the list shows the profile in use
            await pilot.press("home")  # tui, highlighted but not picked with Enter
            await pilot.press("f4")
            await pilot.pause()
            assert screen_name(app) == "TokenScreen" and app.session.profile.name == "tui"
            await pilot.press("f3")
            await pilot.pause()
            await type_into(pilot, "#profile-path", "nowhere.toml")
            await pilot.press("f4")  # a bad path typed: said at the field, no step further
            await pilot.pause()
            assert screen_name(app) == "StartScreen"
            assert "profile not found" in text_of(app.screen.query_one("#profile-error"))
            await type_into(pilot, "#profile-path", "elsewhere/other.toml")
            await pilot.press("f4")  # typed, no Enter
            await pilot.pause()
            assert screen_name(app) == "TokenScreen" and app.session.profile.name == "other"

    asyncio.run(walk())


def test_back_to_start_and_next_keeps_the_edits(home):
    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await goto(pilot, "DataScreen")
            await type_into(pilot, "#f-data--label_column", "diagnosis")
            await pilot.press("f3", "f3")
            await pilot.pause()
            assert screen_name(app) == "StartScreen"
            await pilot.press("f4")  # the highlighted profile is the one in use: kept
            await pilot.pause()
            assert app.session.profile.data.label_column == "diagnosis"

    asyncio.run(walk())


# ---- 4. Train: the log has the room ------------------------------------------------------


def test_train_log_uses_the_room_and_wraps(home):
    long = "warning: " + "this setting is long " * 8 + "now to keep them"

    async def log_rows(size: tuple[int, int]) -> int:
        app = make_app(home)
        async with app.run_test(size=size) as pilot:
            await to_train(pilot)
            log = app.screen.query_one("#run-log")
            for number in range(1, 11):
                log.write(f"line {number}")
            log.write(long)
            await pilot.pause()
            assert fully_in_view(app, log)
            region = log.content_region
            rows = screen_text(app).splitlines()[region.y : region.bottom]
            text = " ".join(" ".join(row[region.x : region.right] for row in rows).split())
            assert "line 10" in text and long in text, text
            return region.height

    small = asyncio.run(log_rows((80, 24)))
    large = asyncio.run(log_rows((120, 40)))
    assert small >= 6, small  # the long line (4 rows at 80 columns) and the lines before it
    assert large >= small + 14, (small, large)  # the extra height goes to the log


# ---- 5. Checkpoints by epoch -------------------------------------------------------------


def test_checkpoints_are_listed_by_epoch_number(home):
    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await to_train(pilot)
            folder = app.session.workdir / "logs" / "tui" / "checkpoints"
            folder.mkdir(parents=True)
            for name in ("epoch8.pt", "epoch80.pt", "epoch9.pt", "epoch10.pt", "epoch_latest.pt"):
                (folder / name).write_bytes(b"")
            app.screen.show_checkpoints()
            live = text_of(app.screen.query_one("#live"))
            assert "epoch9.pt, epoch10.pt, epoch80.pt, epoch_latest.pt" in live, live

    asyncio.run(walk())


# ---- 6. The run folder in use, named ----------------------------------------------------


class _Trained:
    def describe(self) -> str:
        return "epoch 1 of 1, 1 checkpoint"


def test_the_run_folder_is_named_on_train_in_the_question_and_after(home, monkeypatch):
    started = []
    monkeypatch.setattr(watch, "trained_outputs", lambda profile, workdir: _Trained())
    monkeypatch.setattr(
        "retclip_tui.widgets.run_panel.RunPanel.start",
        lambda panel, restart=False, stages=None: started.append(stages),
    )

    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await to_train(pilot)
            assert "run folder: runs/tui" in screen_text(app)
            (home / "runs" / "tui-2").mkdir(parents=True)  # taken: the next free is tui-3
            await pilot.press("ctrl+g")
            await pilot.pause()
            assert screen_name(app) == "Question"
            assert "runs/tui-3" in " ".join(text_of(app.screen.query_one("Static")).split())
            await pilot.press("enter")  # the default: a new run folder
            await pilot.pause()
            assert started and app.session.workdir == home / "runs" / "tui-3"
            assert "run folder: runs/tui-3" in screen_text(app)
            assert any("runs/tui-3" in str(n.message) for n in app._notifications)

    asyncio.run(walk())


def _a_run(folder: Path, name: str) -> None:
    folder.mkdir(parents=True)
    (folder / "state.json").write_text(json.dumps({"stages": {}}), encoding="utf-8")
    (folder / watch.RESOLVED_PROFILE).write_text(f'name = "{name}"\n', encoding="utf-8")
    (folder / "evaluation").mkdir()
    results = {"run": name, "checkpoint": "epoch1.pt"}
    (folder / "evaluation" / "evaluation_results.json").write_text(json.dumps(results))


def test_runs_with_the_same_name_are_told_apart_by_folder(home):
    for folder in ("tui", "tui-2", "tui-3"):
        _a_run(home / "runs" / folder, "tui")
    _a_run(home / "runs" / "solo", "solo")

    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            table = app.screen.query_one("#runs")
            labels = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
            assert len(set(labels)) == 4 and "solo" in labels, labels
            assert "runs/tui-2" in " ".join(labels), labels
            app.goto("evaluate")
            await pilot.pause()
            compare = app.screen.query_one("#compare")
            labels = [str(compare.get_row_at(i)[0]) for i in range(compare.row_count)]
            assert len(set(labels)) == 4 and "solo" in labels, labels

    asyncio.run(walk())


# ---- 7. Paths: typed and shown relative to the current folder ---------------------------


def test_paths_are_typed_and_shown_from_the_current_folder(home):
    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            current = " ".join(text_of(app.screen.query_one("#current")).split())
            assert "data set: seeds/demo " in current, current
            await goto(pilot, "DataScreen")
            assert app.screen.query_one("#f-hub--dataset").value == "seeds/demo"
            train = app.screen.query_one("#f-data--train_csv")
            assert train.value == "seeds/demo/prompts_train.csv"
            await type_into(pilot, "#f-data--train_csv", "seeds/demo/prompts_test.csv")
            note = text_of(app.screen.query_one("#preview-note"))
            assert "no file" not in note, note
            assert app.screen.query_one("#preview").row_count > 0
            await pilot.press("f4")
            await pilot.pause()
            assert screen_name(app) == "SizingScreen"
            profile = app.session.profile
            assert profile.resolve(profile.data.train_csv) == home / "seeds/demo/prompts_test.csv"
            saved = app.session.save_text(home / "profiles" / "tui.toml")
            assert 'train_csv = "../seeds/demo/prompts_test.csv"' in saved
            assert 'dataset = "../seeds/demo"' in saved

    asyncio.run(walk())


# ---- 8. Smaller ones -----------------------------------------------------------------------


def test_train_help_lists_the_tiny_image_tower():
    from retclip_tui.screens.train import TrainScreen

    assert re.search(r"image [^;]*\btiny\b", TrainScreen.HELP), TrainScreen.HELP


def test_sizing_names_the_field_and_clears_a_fixed_error(home):
    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await goto(pilot, "SizingScreen")
            app.screen.query_one("#mode").focus()
            await pilot.press("end", "enter")  # custom
            await type_into(pilot, "#f-sizing--samples", "abc")
            estimate = text_of(app.screen.query_one("#estimate"))
            assert "samples: expected a whole number" in estimate, estimate
            assert "tui.toml" not in estimate, estimate
            await type_into(pilot, "#f-sizing--samples", "0")
            await pilot.press("f4")
            await pilot.pause()
            assert "at least 1" in error_under(app, "sizing.samples")
            await type_into(pilot, "#f-sizing--samples", "x")  # still bad: said as it is now
            assert "got 'x'" in error_under(app, "sizing.samples")
            await type_into(pilot, "#f-sizing--samples", "20")
            assert error_under(app, "sizing.samples") == ""

    asyncio.run(walk())


def test_a_tower_error_goes_once_the_towers_are_valid(home):
    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await to_train(pilot)
            await app.workers.wait_for_complete()
            await type_into(pilot, "#f-model--vision", "resnet9000")
            app.screen.estimate()
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert "cannot load the towers" in text_of(app.screen.query_one("#device"))
            await type_into(pilot, "#f-model--vision", "tiny")
            assert "cannot load the towers" not in text_of(app.screen.query_one("#device"))

    asyncio.run(walk())


# ---- 9. Wording: what happened and what to do --------------------------------------------


def _states(monkeypatch, **statuses: str) -> None:
    """The plan as the wizard sees it: these stages in these states (the others to run)."""
    from retclip_pipeline.runner import stage_names

    def stage_states(profile, workdir):
        return [watch.StageState(s, statuses.get(s, "to run")) for s in stage_names()]

    monkeypatch.setattr(watch, "stage_states", stage_states)


def notes(app) -> str:
    return " | ".join(str(n.message) for n in app._notifications)


def test_stop_with_nothing_running_says_so(home):
    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("ctrl+y")  # Start: a step that runs nothing
            await pilot.pause()
            assert "nothing to stop: no run is going on in runs/tui" in notes(app), notes(app)
            app.clear_notifications()
            await to_train(pilot)
            await pilot.press("ctrl+y")
            await pilot.pause()
            assert "nothing to stop: no run is going on in runs/tui" in notes(app), notes(app)

    asyncio.run(walk())


def test_an_interrupted_stage_says_what_happened_and_what_to_do(home, monkeypatch):
    _states(monkeypatch, convert="done", lmdb="done", train="interrupted")

    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await to_train(pilot)
            await app.workers.wait_for_complete()
            await pilot.pause()
            app.screen.query_one("#panel")._status()
            status = " ".join(text_of(app.screen.query_one("#run-status")).split())
            assert "train was stopped before it finished: ctrl+g resumes it" in status, status
            assert "Fix it" not in status and "stopped Fix" not in status
            await pilot.press("f4")  # Next: blocked, in words
            await pilot.pause()
            error = text_of(app.screen.query_one("#error"))
            assert error.startswith("train was stopped before it finished"), error

    asyncio.run(walk())


def test_stage_states_read_as_sentences():
    from retclip_tui.widgets.run_panel import said

    assert said("convert", "failed") == "convert failed"
    assert said("lmdb", "to run") == "lmdb has not run yet"
    assert said("train", "stale") == "train is out of date"


def test_the_start_button_says_check_again_once_all_is_done(home, monkeypatch):
    _states(monkeypatch, convert="done", lmdb="done", train="done", evaluate="done")

    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await to_train(pilot)
            await app.workers.wait_for_complete()
            await pilot.pause()
            app.screen.query_one("#panel")._status()
            label = str(app.screen.query_one("#run-start").label)
            assert label == "Check again (ctrl+g)", label

    asyncio.run(walk())


def _smoke_run(home: Path, passed: bool, monkeypatch) -> None:
    """runs/tui: an evaluated smoke run, its checklist `passed` or not."""
    from retclip_pipeline import profile as profiles
    from retclip_pipeline.preflight import smoke

    profile = home / "profiles" / "tui.toml"
    text = profile.read_text(encoding="utf-8")
    assert "[sizing]" not in text
    profile.write_text(text + '\n[sizing]\nmode = "smoke"\n', encoding="utf-8")
    run = home / "runs" / "tui"
    _a_run(run, "tui")
    resolved = profiles.dumps(profiles.load(profile), minimal=False, resolved=True)
    (run / watch.RESOLVED_PROFILE).write_text(resolved, encoding="utf-8")  # as a run writes it

    class Item:
        name, detail, ok = "every stage", "ran", passed

    monkeypatch.setattr(smoke, "checklist", lambda workdir: [Item()])


def test_full_size_key_says_why_it_does_nothing(home, monkeypatch):
    _smoke_run(home, passed=False, monkeypatch=monkeypatch)

    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            app.goto("evaluate")
            await pilot.pause()
            assert app.screen.query_one("#full").display  # a smoke run: offered, not yet
            await pilot.press("ctrl+l")
            await pilot.pause()
            assert "the smoke checklist has not passed yet" in notes(app), notes(app)

    asyncio.run(walk())


def test_full_size_is_not_offered_on_a_full_run(home):
    _a_run(home / "runs" / "tui", "tui")

    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            app.goto("evaluate")
            await pilot.pause()
            assert not app.screen.query_one("#full").display
            await pilot.press("ctrl+l")
            await pilot.pause()
            assert "is already the full-size run: nothing to start" in notes(app), notes(app)

    asyncio.run(walk())


def test_a_second_full_size_key_says_the_full_run_is_started(home, monkeypatch):
    _smoke_run(home, passed=True, monkeypatch=monkeypatch)
    started = home / "runs" / "tui-full"
    started.mkdir(parents=True)
    (started / watch.EVENTS_FILE).write_text("", encoding="utf-8")
    monkeypatch.setattr(watch, "start_detached", lambda *a, **k: 1 / 0)  # never reached

    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            app.goto("evaluate")
            await pilot.pause()
            assert not app.screen.query_one("#full").disabled
            await pilot.press("ctrl+l")
            await pilot.pause()
            assert screen_name(app) == "EvaluateScreen"
            said = notes(app) + text_of(app.screen.query_one("#error"))
            assert "the full-size run is already started in runs/tui-full" in said, said

    asyncio.run(walk())


def test_an_empty_folder_points_at_no_profiles_folder(tmp_path, monkeypatch):
    from retclip_pipeline import profile as profiles
    from retclip_pipeline.errors import UserError

    monkeypatch.chdir(tmp_path)

    def message() -> str:
        try:
            profiles.load("nowhere.toml")
        except UserError as exc:
            return str(exc)
        raise AssertionError("loaded a profile that is not there")

    assert "profiles/" not in message()

    async def walk():
        from retclip_tui.app import RetclipApp

        app = RetclipApp()
        async with app.run_test(size=(80, 24)) as pilot:
            text = " ".join(screen_text(app).split())
            assert "none in this folder" in text and "./profiles" not in text, text
            await type_into(pilot, "#profile-path", "nowhere.toml")
            await pilot.press("enter")
            await pilot.pause()
            error = text_of(app.screen.query_one("#profile-error"))
            assert "profile not found" in error and "profiles/" not in error, error

    asyncio.run(walk())
    (tmp_path / "profiles").mkdir()
    assert "(see profiles/ for examples)" in message()


def test_a_failed_save_names_the_file_typed(home):
    (home / "profiles" / "mine.toml").mkdir()  # a folder where the file would go

    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            app.goto("save")
            await pilot.pause()
            await type_into(pilot, "#target", "profiles/mine.toml")
            await pilot.press("ctrl+g")
            await pilot.pause()
            assert screen_name(app) == "SaveScreen"  # no "Overwrite?" that can only fail
            error = text_of(app.screen.query_one("#error"))
            assert error == "cannot save profiles/mine.toml: it is a folder: type a file name"
            # A write that fails under the file's own name: the error names the file typed.
            await type_into(pilot, "#target", "profiles/mine.toml/inner.toml")
            real = app.session.save

            def failing(target):
                target.mkdir()  # made there meanwhile: the rename over a folder fails
                return real(target)

            app.session.save = failing
            await pilot.press("ctrl+g")
            await pilot.pause()
            error = text_of(app.screen.query_one("#error"))
            assert error.startswith("cannot save profiles/mine.toml/inner.toml: "), error
            assert ".tmp" not in error, error

    asyncio.run(walk())


def test_english_prompts_and_a_chinese_text_tower_name_an_english_one(home):
    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await to_train(pilot)
            await app.workers.wait_for_complete()
            await pilot.pause()
            hint = app.screen.query_one("#tower-hint")
            assert not hint.display  # tiny: nothing to say
            await type_into(pilot, "#f-model--text", "chinese-roberta")
            await app.workers.wait_for_complete()
            await pilot.pause()
            said = " ".join(text_of(hint).split())
            assert hint.display and "the prompts look English" in said, said
            assert "pubmedbert" in said and "bert-base-uncased" in said, said
            assert fully_in_view(app, hint)
            await type_into(pilot, "#f-model--text", "pubmedbert")
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert not hint.display

    asyncio.run(walk())


def test_an_emptied_data_set_field_is_an_error_not_the_profile_folder(home):
    from retclip_pipeline import profile as profiles

    try:
        profiles.from_dict({"hub": {"dataset": " "}, "data": {"train_csv": "a.csv"}})
    except profiles.ProfileError as exc:
        said = [p.message for p in exc.problems if p.key == "hub.dataset"]
        assert said == ["required: a hub id (owner/name) or the path of a local folder"], said
    else:
        raise AssertionError("an empty hub.dataset was taken")

    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await goto(pilot, "DataScreen")
            await type_into(pilot, "#f-hub--dataset", "")
            await pilot.press("f4")
            await pilot.pause()
            assert screen_name(app) == "DataScreen"
            assert "required: a hub id" in error_under(app, "hub.dataset")

    asyncio.run(walk())
