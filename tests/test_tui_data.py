"""The Data screen against what users really type or pick: bad files of every kind (the app
stays, the settings stay, the screen says what is wrong), errors no check foresaw (an error
panel and a log without the token), columns that block Next, the hub data set checked
through a stand-in hub, and the verdict in sight at 80x24."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import gzip
import os
import random
from pathlib import Path

import pytest

from . import hubstand, test_tui
from .test_tui import error_under, goto, make_app, screen_name, text_of, type_into

home = test_tui.home  # the same fixture: a user's folder over the demo set, run from it

HEADER = "dataset_index,label,prompt\n"
SECRET = "typed-secret-" + "x7" * 10  # no hf_ prefix: only the explicit redaction hides it


def _png() -> bytes:
    return b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + os.urandom(17) + gzip.compress(b"\xff" * 16)


def bad_files(folder: Path) -> list[tuple[str, str, str, bool]]:
    """(what, the path typed, what the preview says, whether Next is blocked) for each bad
    input; a few are no files at all."""
    folder.mkdir()
    rnd = random.Random(7)
    made: list[tuple[str, str, str, bool]] = []

    def add(what: str, name: str, content: bytes | str | None, says: str, blocks: bool) -> None:
        path = folder / name
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        elif content is not None:
            path.write_bytes(content)
        made.append((what, str(path), says, blocks))

    more, fewer = HEADER + "0,Glaucoma,cupped disc, thin rim\n", HEADER + "0,Glaucoma\n"
    add("more fields", "ragged_more.csv", more, "4 fields, the header has 3", True)
    add("fewer fields", "ragged_fewer.csv", fewer, "2 field(s), the header has 3", True)
    quote = HEADER + '0,Glaucoma,"cupped\n1,Healthy,normal\n'
    add("unclosed quote", "quote.csv", quote, "a quote opens on this line", True)
    noise = bytes(rnd.randrange(256) for _ in range(4096))
    add("random bytes", "random.csv", noise, "is not UTF-8 text", True)
    add("a PNG", "scan.png", _png(), "line 1 is not UTF-8 text", True)
    packed = gzip.compress((HEADER + "0,A,b\n").encode())
    add("a gzip", "prompts.csv.gz", packed, "line 1 is not UTF-8 text", True)
    add("empty", "empty.csv", b"", "is empty", True)
    add("header only", "header_only.csv", HEADER, "a header and no rows", True)
    add("50 MB on one line", "huge.csv", b"x" * 50_000_000, "first line is over 1 MB", True)
    latin1 = (HEADER + "0,Glaucoma,caf\xe9 au lait\n").encode("latin-1")
    add("Latin-1", "latin1.csv", latin1, "line 2 is not UTF-8 text", True)
    utf16 = (HEADER + "0,Glaucoma,x\n").encode("utf-16")
    add("UTF-16 with BOM", "utf16.csv", utf16, "line 1 is not UTF-8 text", True)
    (folder / "folder.csv").mkdir()
    add("a folder", "folder.csv", None, "is a folder", True)
    add("no read permission", "locked.csv", HEADER + "0,A,b\n", "no permission to read", True)
    add("spaces and unicode", "my prömpts – ünï.csv", fewer, "2 field(s)", True)
    (folder / "gone.csv").symlink_to(folder / "nowhere.csv")
    add("a link to nothing", "gone.csv", None, "CSV not found", True)
    add("one column", "one_column.csv", "prompt\ncupped disc\n", "one column only", True)
    tabs = "dataset_index\tlabel\tprompt\n0\tGlaucoma\tx\n"
    add("a TSV", "tabs.tsv", tabs, "looks tab-separated", True)
    dup = "dataset_index,label,prompt,prompt\n0,G,x,y\n"
    add("a repeated column", "dup.csv", dup, "'prompt' appears 2 times", True)
    markup = "dataset_index,label,prompt,[/notes]\n0,[bold]Glaucoma,[/] cupped [red,x\n"
    add("markup in cells", "markup.csv", markup, "", False)  # a good file: no note, a row
    made.append(("no such user", "~nosuchuser-rc/p.csv", "no file at", True))
    return made


def _refuse_reading(monkeypatch, locked: Path) -> None:
    """No read permission, as root cannot have it: reads of `locked` raise PermissionError."""
    import builtins
    import pathlib

    real_open, real_read = builtins.open, pathlib.Path.read_bytes

    def refusing_open(file, *args, **kwargs):
        if str(file) == str(locked):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    def refusing_read(self):
        if str(self) == str(locked):
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self)

    monkeypatch.setattr("retclip_pipeline.data.prompts.open", refusing_open, raising=False)
    monkeypatch.setattr(pathlib.Path, "read_bytes", refusing_read)


async def settle(pilot) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def pick(pilot, path: Path) -> None:
    """Through the file picker: open it on the train CSV, go to the file's folder, Enter."""
    app = pilot.app
    app.screen.query_one("#f-data--train_csv").focus()
    await pilot.press("ctrl+f")
    await pilot.pause()
    assert screen_name(app) == "FilePicker"
    tree = app.screen.query_one("#tree")
    tree.path = path.parent
    for _ in range(100):
        await pilot.pause(0.05)
        nodes = [n for n in tree.root.children if n.data and n.data.path == path]
        if nodes:
            break
    else:
        raise AssertionError(f"{path.name} never listed in the picker")
    tree.move_cursor(nodes[0])
    await pilot.press("enter")
    await settle(pilot)
    assert screen_name(app) == "DataScreen"


def test_no_bad_file_ends_the_wizard_or_loses_a_setting(home, monkeypatch):
    cases = bad_files(home / "bad")
    _refuse_reading(monkeypatch, home / "bad" / "locked.csv")
    test_csv = home / "seeds" / "demo" / "prompts_test.csv"

    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await goto(pilot, "TokenScreen")
            await type_into(pilot, "#token-input", SECRET)
            await goto(pilot, "DataScreen")
            await type_into(pilot, "#f-data--test_csv", str(test_csv))
            kept = {
                key: app.screen.query_one(f"#f-data--{key}").value
                for key in ("test_csv", "index_column", "label_column", "text_column")
            }
            for what, typed, says, blocks in cases:
                await type_into(pilot, "#f-data--train_csv", typed)
                assert app.is_running and screen_name(app) == "DataScreen", what
                note = text_of(app.screen.query_one("#preview-note"))
                assert says in note if says else not note, (what, note)
                if not says:
                    assert app.screen.query_one("#preview").row_count == 1
                await pilot.press("ctrl+r")
                await settle(pilot)
                assert app.is_running, what
                verdict = text_of(app.screen.query_one("#verdict"))
                assert verdict.strip() and ("ready" in verdict) == (what == "markup in cells"), (
                    what,
                    verdict,
                )
                if blocks:
                    await pilot.press("ctrl+n")
                    await pilot.pause()
                    assert screen_name(app) == "DataScreen", f"{what}: Next was not blocked"
                screen = app.export_screenshot()
                assert "Traceback" not in screen and SECRET not in screen, what
                for key, value in kept.items():
                    assert app.screen.query_one(f"#f-data--{key}").value == value, (what, key)
                assert app.session.token == SECRET and app.session.profile.hub.dataset.endswith(
                    "seeds/demo"
                )
            for name in ("ragged_more.csv", "random.csv", "empty.csv", "one_column.csv"):
                await pick(pilot, home / "bad" / name)
                assert app.screen.query_one("#f-data--train_csv").value == str(home / "bad" / name)
                assert text_of(app.screen.query_one("#preview-note")).strip(), name
                await pilot.press("ctrl+r")
                await settle(pilot)
                assert app.is_running and "ready" not in text_of(app.screen.query_one("#verdict"))

    asyncio.run(walk())
    log = home / "cache" / "retclip" / "tui.log"
    assert not log.exists(), log.read_text()  # every bad file was a foreseen, one-line error


def test_wrong_columns_block_next_with_the_error_at_the_field(home):
    (home / "mine.csv").write_text(
        "dataset_index,diagnosis,report\n0,Glaucoma,cupped disc\n", encoding="utf-8"
    )

    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await goto(pilot, "DataScreen")
            await type_into(pilot, "#f-data--train_csv", str(home / "mine.csv"))
            assert app.screen.query_one("#f-data--text_column").value == "report"  # guessed
            await type_into(pilot, "#f-data--text_column", "prompt")
            await type_into(pilot, "#f-data--label_column", "label")
            await pilot.press("ctrl+n")
            assert screen_name(app) == "DataScreen"
            said = error_under(app, "data.text_column")
            assert "not in the train CSV: its columns are dataset_index, diagnosis, report" in said
            assert "not in the train CSV" in error_under(app, "data.label_column")
            assert "not in the test CSV" not in error_under(app, "data.index_column")
            await type_into(pilot, "#f-data--label_column", "")  # no label: optional
            await type_into(pilot, "#f-data--text_column", "report")
            await pilot.press("ctrl+n")  # the test CSV lacks "report"
            assert screen_name(app) == "DataScreen"
            assert "not in the test CSV" in error_under(app, "data.text_column")
            await type_into(pilot, "#f-data--test_csv", "")
            await pilot.press("ctrl+n")
            assert screen_name(app) == "SizingScreen"

    asyncio.run(walk())


def test_the_screen_states_the_columns_from_the_profile_help(home):
    from retclip_pipeline.profile import DataSection

    helps = {f.name: f.metadata["help"] for f in dataclasses.fields(DataSection)}

    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await goto(pilot, "DataScreen")
            left = app.screen.query_one("#f-data--left_text_column").parent.parent
            guide = text_of(app.screen.query_one("#columns-guide"))
            assert helps["index_column"].removeprefix("CSV column with ") in guide
            assert "left text" not in guide and "Example: prompts/example_prompts.csv" in guide
            assert not left.display
            await type_into(pilot, "#f-data--eyes", "paired")
            guide = text_of(app.screen.query_one("#columns-guide"))
            assert "left text column" in guide and "the right-eye text" in guide
            assert left.display
            app.screen.query_one("#browse").press()  # the buttons do what their keys do
            await pilot.pause()
            assert screen_name(app) == "FilePicker"
            await pilot.press("escape")
            await pilot.pause()
            app.screen.query_one("#validate").press()
            await settle(pilot)
            assert "not validated" in text_of(app.screen.query_one("#verdict"))
            assert "required when" in error_under(app, "data.left_text_column")

    asyncio.run(walk())


def test_an_unforeseen_error_shows_a_panel_and_logs_without_the_token(home, monkeypatch):
    def boom(*args, **kwargs):
        token = SECRET  # a local holding the token, and a message naming it
        raise RuntimeError(f"broken reader holding {token}")

    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await goto(pilot, "TokenScreen")
            await type_into(pilot, "#token-input", SECRET)
            await goto(pilot, "DataScreen")
            await type_into(pilot, "#f-data--test_csv", "")  # a setting typed before
            monkeypatch.setattr("retclip_pipeline.preflight.inspect.glance", boom)
            await type_into(pilot, "#f-data--train_csv", str(home / "seeds/demo/prompts_test.csv"))
            error = text_of(app.screen.query_one("#error"))
            assert "previewing the train CSV failed (RuntimeError" in error
            assert "cache/retclip/tui.log" in error and SECRET not in error
            monkeypatch.setattr("retclip_pipeline.preflight.inspect.data_report", boom)
            await pilot.press("ctrl+r")
            await settle(pilot)
            assert "validating the data failed" in text_of(app.screen.query_one("#verdict"))
            await pilot.press("ctrl+n")  # the column check fails too: said, and Next waits
            assert screen_name(app) == "DataScreen" and app.is_running
            assert "checking the CSV columns failed" in text_of(app.screen.query_one("#error"))
            assert app.session.token == SECRET and app.session.profile.data.test_csv == ""
            assert SECRET not in app.export_screenshot()

    asyncio.run(walk())
    log = (home / "cache" / "retclip" / "tui.log").read_text()
    assert log.count("Traceback") >= 3 and "broken reader holding [token]" in log
    assert SECRET not in log


def test_start_screen_survives_an_unforeseen_profile_error(home, monkeypatch):
    def boom(*args, **kwargs):
        raise ValueError("unexpected")

    async def walk():
        app = make_app(home)
        monkeypatch.setattr("retclip_pipeline.profile.load", boom)
        async with app.run_test(size=(80, 24)) as pilot:
            await type_into(pilot, "#profile-path", "profiles/tui.toml")
            await pilot.press("enter")
            assert app.is_running and screen_name(app) == "StartScreen"
            assert "loading profiles/tui.toml failed" in text_of(app.screen.query_one("#error"))
            assert app.session.profile.name == "tui"

    asyncio.run(walk())


# ---- the hub data set -------------------------------------------------------------------


def _csv_rows(path: Path) -> int:
    with open(path, newline="", encoding="utf-8") as handle:
        return max(int(row["dataset_index"]) for row in csv.DictReader(handle)) + 1


@pytest.fixture
def stand_in(home, monkeypatch):
    """org/fundus (rows enough for the demo CSVs), org/gated (no one granted): a stand-in
    hub, online, with the test's own hub cache."""
    from huggingface_hub import constants

    files = {}
    for split in ("train", "test"):
        rows = _csv_rows(home / "seeds" / "demo" / f"prompts_{split}.csv")
        files |= hubstand.parquet_shards(split, [b"jpg"] * rows, [0] * rows, ["a"], 2)
    state = hubstand.Hub(
        {
            "org/fundus": hubstand.Repo(files),
            "org/gated": hubstand.Repo(dict(files), gated=True, granted=()),
        }
    )
    url, server = hubstand.serve(state)
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HOME", str(home / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hf" / "hub"))
    yield state
    server.shutdown()


async def _validate_hub(pilot, dataset: str) -> tuple[str, str]:
    await type_into(pilot, "#f-hub--dataset", dataset)
    await pilot.press("ctrl+r")
    await settle(pilot)
    screen = pilot.app.screen
    return text_of(screen.query_one("#verdict")), text_of(screen.query_one("#report"))


def test_the_hub_data_set_is_checked_online(home, stand_in):
    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await goto(pilot, "DataScreen")
            verdict, report = await _validate_hub(pilot, "org/missign")
            assert verdict.startswith("hub.dataset: data set org/missign was not found"), verdict
            verdict, report = await _validate_hub(pilot, "org/gated")
            assert "hub.dataset: org/gated is gated: log in" in verdict
            verdict, report = await _validate_hub(pilot, "org/fundus")
            assert verdict == "ready to convert", report
            assert "hub.dataset: data set org/fundus is readable" in report
            train = _csv_rows(home / "seeds" / "demo" / "prompts_train.csv")
            assert f"org/fundus [train]: {train} rows" in report
            assert "org/fundus [test]:" in report and "CSV indices in range" in report

    asyncio.run(walk())
    assert stand_in.count("GET", "/api/datasets/org/missign") >= 1


@pytest.mark.parametrize("how", ["HF_HUB_OFFLINE", "connection refused"])
def test_the_hub_data_set_offline_is_said_unchecked(home, monkeypatch, how):
    from huggingface_hub import constants

    if how == "connection refused":  # no network, and no HF_HUB_OFFLINE to say so
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    reason = "HF_HUB_OFFLINE=1" if how == "HF_HUB_OFFLINE" else "ConnectError: "

    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await goto(pilot, "DataScreen")
            verdict, report = await _validate_hub(pilot, "org/missign")
            said = f"ready to convert; hub.dataset: hub not reachable ({reason}"
            assert verdict.startswith(said), verdict
            assert "data set org/missign not checked" in report
            assert "it is checked when you convert or run --check online" in report

    asyncio.run(walk())
    assert constants.HF_HUB_OFFLINE is (how == "HF_HUB_OFFLINE")  # the cache-only hold ends


def test_bad_rows_block_next_at_the_field_until_skipped(home):
    ragged = home / "ragged.csv"
    ragged.write_text(HEADER + "0,Glaucoma,cupped disc, thin rim\n1,Healthy,normal\n", "utf-8")

    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await goto(pilot, "DataScreen")
            await type_into(pilot, "#f-data--test_csv", "")
            await type_into(pilot, "#f-data--train_csv", str(ragged))
            await pilot.press("ctrl+n")
            await pilot.pause()
            assert screen_name(app) == "DataScreen"
            said = error_under(app, "data.train_csv")
            assert "1 bad row(s): line 2: 4 fields, the header has 3" in said
            assert 'set data.on_bad_row = "skip"' in said
            body = app.screen.query_one("#body")
            for part in ("#e-f-data--train_csv", "#f-data--train_csv"):  # in sight at 80x24
                region = app.screen.query_one(part).region
                assert region.height and body.region.contains_region(region), part
            choice = app.screen.query_one("#f-data--on_bad_row")
            assert choice.value == "error"
            choice.focus()
            await pilot.press("enter")  # the choice's list opens; the second is "skip"
            await pilot.pause()
            await pilot.press("down", "enter")
            await pilot.pause()
            assert choice.value == "skip"
            await pilot.press("ctrl+n")
            await pilot.pause()
            assert screen_name(app) == "SizingScreen"
            assert app.session.profile.data.on_bad_row == "skip"

    asyncio.run(walk())


def test_validating_keeps_the_focus_on_the_field_and_in_sight(home):
    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await goto(pilot, "DataScreen")
            body = app.screen.query_one("#body")
            for selector in ("#f-data--test_csv", "#f-hub--dataset", "#f-data--text_column"):
                field = app.screen.query_one(selector)
                field.focus()
                await pilot.pause()
                await pilot.press("ctrl+g")
                await settle(pilot)
                await pilot.pause()
                assert "ready" in text_of(app.screen.query_one("#verdict"))
                assert app.focused is field, (selector, app.focused)
                assert field.region.height == 1, selector  # laid out where it can be seen
                assert body.region.contains_region(field.region), selector

    asyncio.run(walk())


def test_snapshot_data_validated_80x24(home, snap_compare):
    async def validated(pilot):
        await goto(pilot, "DataScreen")
        await pilot.press("ctrl+r")
        await settle(pilot)
        await pilot.pause(0.2)
        await test_tui.settled(pilot)
        for field in pilot.app.screen.query("Input"):  # the focus stays on a field: its
            field.cursor_blink = False  # cursor shown steadily, not by the blink's phase
        await pilot.pause()

    assert snap_compare(make_app(home), terminal_size=(80, 24), run_before=validated)


def test_the_error_log_never_holds_a_token(tmp_path, monkeypatch):
    from retclip_tui import errlog
    from retclip_tui.session import Session

    from_env = "hf_" + "fromEnvironment" * 2
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("HF_TOKEN", from_env)
    session = Session(token=SECRET)
    try:
        token = SECRET  # noqa: F841 - a local holding it: tracebacks print no locals
        raise ValueError(f"refused {SECRET} and {from_env} and hf_someOtherToken1234")
    except ValueError as exc:
        said = errlog.report("asking", exc, session)
    log = (tmp_path / "retclip" / "tui.log").read_text()
    assert "asking failed (ValueError: refused [token] and [token] and hf_[token])" in said
    assert str(tmp_path / "retclip" / "tui.log") in said
    for secret in (SECRET, from_env, "hf_someOtherToken1234"):
        assert secret not in log and secret not in said
    assert "Traceback" in log and "refused [token]" in log


def test_a_long_verdict_fits_its_two_lines_and_says_where_the_rest_is():
    from retclip_tui.screens.data import VERDICT_CHARS, brief

    said = "hub.dataset: hub not reachable (ConnectError: [Errno -2] Name or service not known): "
    said += "data set Peacein/colr-fundus-eye not checked; it is checked when you convert"
    assert len(said) > VERDICT_CHARS
    cut = brief(said)
    assert len(cut) <= VERDICT_CHARS and cut.endswith("… (all of it in the report)"), cut
    assert brief("ready to convert") == "ready to convert"


def test_a_checks_error_at_a_field_goes_when_the_field_changes(home):
    binary = home / "binary.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe" * 8)

    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await goto(pilot, "DataScreen")
            good = app.screen.query_one("#f-data--test_csv").value
            await type_into(pilot, "#f-data--test_csv", str(binary))
            await pilot.press("ctrl+g")
            await settle(pilot)
            assert "UTF-8" in error_under(app, "data.test_csv"), error_under(app, "data.test_csv")
            await type_into(pilot, "#f-data--test_csv", good)
            await pilot.pause()
            assert error_under(app, "data.test_csv") == ""  # the old file's error is gone
            assert "changed since the last check" in text_of(app.screen.query_one("#verdict"))

    asyncio.run(walk())
