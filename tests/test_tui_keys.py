"""The wizard's keys in a browser terminal, its help screen, saving a profile, a folder with
no profile, and ending with its terminal."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import pkgutil
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from . import test_tui as tui
from .conftest import PATIENCE_S, ROOT

home = tui.home  # the same fixture: a user's folder with profiles/tui.toml over a demo set

# What Colab's terminal never passes on: the browser keeps these keys (Firefox: ctrl+q too).
RESERVED = {"ctrl+n", "ctrl+t", "ctrl+w", "ctrl+tab", "f5", "f11", "f12", "ctrl+q"}
# What a focused Input takes for itself, and tmux's prefix.
TAKEN = {"ctrl+a", "ctrl+e", "ctrl+d", "ctrl+w", "ctrl+u", "ctrl+k", "ctrl+x", "ctrl+c"}
TAKEN |= {"ctrl+v", "ctrl+b", "left", "right", "up", "down"}
STEPS = ("start", "token", "data", "sizing", "prepare", "train", "evaluate", "save")


def wizard_classes() -> list[type]:
    """The App and every screen, modal and widget class that retclip_tui defines."""
    from textual.dom import DOMNode

    import retclip_tui

    found = []
    for info in pkgutil.walk_packages(retclip_tui.__path__, "retclip_tui."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, DOMNode) and cls.__module__ == module.__name__:
                found.append(cls)
    return found


def test_every_action_has_a_key_that_a_browser_passes_on():
    from textual.binding import BindingsMap

    classes = wizard_classes()
    names = {cls.__name__ for cls in classes}
    assert {"RetclipApp", "StartScreen", "SaveScreen", "HelpScreen", "FilePicker"} <= names
    for cls in classes:
        keys: dict[str, set[str]] = {}
        for key, bindings in cls._merge_bindings().key_to_bindings.items():  # inherited too
            for binding in bindings:
                keys.setdefault(binding.action, set()).add(key)
        for action, bound in keys.items():
            assert bound - RESERVED, f"{cls.__name__}: {action} only on {sorted(bound)}"
        own = {  # what our classes bind, not what Textual's widgets bind for themselves
            key
            for base in cls.__mro__
            if base.__module__.startswith("retclip_tui")
            for key, _ in BindingsMap(base.__dict__.get("BINDINGS", []))
        }
        assert not own & TAKEN, f"{cls.__name__} binds {sorted(own & TAKEN)}"


def footer_keys(app) -> dict[str, tuple[str, int]]:
    from textual.widgets._footer import FooterKey

    return {k.description: (k.key, k.region.right) for k in app.screen.query(FooterKey)}


def test_the_footer_shows_quit_within_80_columns_on_every_screen(home):
    async def walk():
        app = tui.make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            for step in STEPS:
                app.goto(step)
                await pilot.pause()
                shown = footer_keys(app)
                assert "Quit" in shown, f"{step}: {shown}"
                assert 0 < shown["Quit"][1] <= 80, f"{step}: {shown}"
                assert not {key for key, _ in shown.values()} & RESERVED, f"{step}: {shown}"
                assert {"Help", "Back", "Next"} <= set(shown)
                assert ("Stop" in shown) == (step in ("prepare", "train", "evaluate"))
                assert ("Save" in shown) == (step == "save")

    asyncio.run(walk())


def test_the_new_keys_move_check_and_save(home):
    async def walk():
        app = tui.make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("f4")
            assert tui.screen_name(app) == "TokenScreen"
            await pilot.press("ctrl+g")  # Check, no longer ctrl+t
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert "token" in tui.text_of(app.screen.query_one("#findings")).lower()
            await pilot.press("f3")
            assert tui.screen_name(app) == "StartScreen"
            await pilot.press("f4", "f4")
            await pilot.press("ctrl+g")  # Validate
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert "ready to convert" in tui.text_of(app.screen.query_one("#verdict"))
            await pilot.press("f2")
            assert tui.screen_name(app) == "SaveScreen"
            await pilot.press("f10")
            await pilot.pause()
        assert app.return_code == 0 and not app.is_running

    asyncio.run(walk())


def test_help_lists_the_screens_keys_fits_80x24_and_closes(home):
    from textual.containers import VerticalScroll

    async def walk():
        app = tui.make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            for step in STEPS:
                app.goto(step)
                await pilot.pause()
                below = app.screen
                await pilot.press("f1")
                await pilot.pause()
                assert tui.screen_name(app) == "HelpScreen", step
                dialog = app.screen.query_one("#help-dialog")
                assert dialog.region.right <= 80 and dialog.region.bottom <= 24, step
                text = str(app.screen.query_one("#help-body Static").render())
                assert " ".join(below.HELP.split())[:40] in text, step
                assert "F10, ctrl+q*" in text and "Quit" in text
                assert "PgUp/PgDn scroll" in tui.text_of(app.screen.query_one("#help-hint"))
                if step == "data":
                    assert "ctrl+g, ctrl+r" in text and "Validate" in text and "Pick CSV" in text
                if step == "evaluate":
                    assert "ctrl+y" in text and "Full-size run" in text
                    body = app.screen.query_one("#help-body", VerticalScroll)
                    if body.max_scroll_y:  # longer than the screen: the arrows scroll it
                        await pilot.press("down")
                        assert body.scroll_y > 0
                await pilot.press(("escape", "f1", "q")[STEPS.index(step) % 3])
                await pilot.pause()
                assert app.screen is below, step
            app.goto("data")
            await pilot.pause()
            await tui.type_into(pilot, "#f-data--eyes", "single")
            await pilot.press("question_mark")  # typed into the focused field, not the help
            assert tui.screen_name(app) == "DataScreen"
            assert app.screen.query_one("#f-data--eyes").value.endswith("?")

    asyncio.run(walk())


# ---- saving -----------------------------------------------------------------------------


async def save_as(pilot, target: Path) -> None:
    await tui.type_into(pilot, "#target", str(target))
    await pilot.press("ctrl+g")
    await pilot.pause()


def test_save_asks_before_overwriting_and_no_is_the_default(home):
    existing = home / "profiles" / "tui.toml"
    before = existing.read_text()
    existing.write_text("# my notes\n" + before)

    async def walk():
        app = tui.make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            app.session.profile.train.epochs = 7
            app.goto("save")
            await pilot.pause()
            await save_as(pilot, existing)
            assert tui.screen_name(app) == "ConfirmScreen"
            question = tui.text_of(app.screen.query_one("#confirm-dialog Static"))
            assert question.startswith("Overwrite profiles/tui.toml?")
            assert "comments are lost" not in question  # the file loaded: they are kept
            await pilot.press("enter")  # the default: keep it
            await pilot.pause()
            assert existing.read_text().startswith("# my notes")
            assert "not saved" in tui.text_of(app.screen.query_one("#error"))
            await save_as(pilot, existing)
            await pilot.press("y")
            await pilot.pause()
            assert "epochs = 7" in existing.read_text()
            assert existing.read_text().startswith("# my notes\n")
            assert "saved." in tui.text_of(app.screen.query_one("#saved"))
            assert tui.text_of(app.screen.query_one("#error")) == ""

    asyncio.run(walk())


def test_a_good_save_clears_the_error_and_shows_saved_without_scrolling(home):
    (home / "a-file").write_text("not a folder")

    async def walk():
        app = tui.make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            app.goto("save")
            await pilot.pause()
            await save_as(pilot, home / "a-file" / "x.toml")
            assert "cannot save" in tui.text_of(app.screen.query_one("#error"))
            await save_as(pilot, home / "profiles" / "new.toml")
            assert tui.text_of(app.screen.query_one("#error")) == ""
            saved = app.screen.query_one("#saved")
            assert "saved." in tui.text_of(saved)
            body = app.screen.query_one("#body")
            assert body.scroll_y == 0
            assert saved.region.height and saved.region.bottom <= body.region.bottom

    asyncio.run(walk())


def test_save_offers_the_profiles_folder_not_the_runs_own_copy(home):
    async def walk():
        app = tui.make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            app.session.profile.source = home / "runs" / "tui" / "tui-profile.toml"  # attached
            app.goto("save")
            await pilot.pause()
            offered = Path(app.screen.query_one("#target").value).resolve()  # shown relative
            assert offered == home / "profiles" / "tui.toml"

    asyncio.run(walk())


def test_saved_paths_are_relative_to_the_file_and_right_from_anywhere(home, monkeypatch):
    from retclip_pipeline import profile as profiles
    from retclip_tui.session import Session

    (home / "weights").mkdir()
    for name in ("init.pt", "best.pt"):
        (home / "weights" / name).write_bytes(b"")
    session = Session(profiles.load(home / "profiles" / "tui.toml", check_files=False))
    # Typed in the wizard: relative to the current folder (home), as in a shell.
    session.update({"model.init": "weights/init.pt", "eval.checkpoint": "weights/best.pt"})
    assert session.profile.resolve(session.profile.model.init) == home / "weights" / "init.pt"
    before = session.profile
    target = home / "elsewhere" / "deep" / "mine.toml"
    session.save(target)
    text = target.read_text()
    assert str(home) not in text  # nothing absolute: the folders can move together
    assert 'workdir = "../../runs/tui"' in text and 'dataset = "../../seeds/demo"' in text
    monkeypatch.chdir(home / "weights")
    after = profiles.load(target, check_files=True)
    assert after.workdir_path() == before.workdir_path() == home / "runs" / "tui"
    assert after.dataset_source() == before.dataset_source()
    for section, key in profiles.file_keys():
        mine, theirs = getattr(getattr(after, section), key), getattr(getattr(before, section), key)
        if theirs:
            assert after.resolve(mine) == before.resolve(theirs), key


# ---- a folder with no profile -------------------------------------------------------------


def test_an_empty_folder_starts_a_new_profile_there(tmp_path, monkeypatch):
    from retclip_tui.app import RetclipApp

    monkeypatch.chdir(tmp_path)

    async def walk(expected: str):
        app = RetclipApp()
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            profile = app.session.profile
            assert profile.source is None and profile.name == expected
            assert profile.workdir_path() == tmp_path / "runs" / expected
            assert profile.hub.dataset == "Peacein/color-fundus-eye"
            current = tui.text_of(app.screen.query_one("#current"))
            assert "new profile: nothing saved yet; F2 saves it" in current
            assert f"runs/{expected}" in current
            return [str(o.prompt) for o in app.screen.query_one("#profiles").options]

    assert asyncio.run(walk("retclip"))[0].startswith("new")
    (tmp_path / "runs" / "retclip").mkdir(parents=True)
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "mine.toml").write_text('name = "mine"\n')
    listed = asyncio.run(walk("run-1"))
    assert listed[0].startswith("mine") and "profiles/mine.toml" in listed[0]


# ---- leaving and hanging up -------------------------------------------------------------


def test_leaving_a_run_going_prints_how_to_attach(home, monkeypatch, capsys):
    monkeypatch.setattr("retclip_pipeline.watch.lock_holder", lambda workdir: 4242)

    async def walk():
        app = tui.make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("f10")
            await pilot.pause()
            assert tui.screen_name(app) == "LeaveScreen"
            await pilot.press("l")
            await pilot.pause()
        return app.return_value

    message = asyncio.run(walk())
    assert "pipeline pid 4242" in message and "retclip-tui --attach runs/tui" in message

    from retclip_tui import __main__ as entry

    monkeypatch.setattr("retclip_tui.app.RetclipApp.run", lambda self, **kwargs: message)
    monkeypatch.setattr(sys, "stdin", type("Tty", (), {"isatty": lambda self: True})())
    assert entry.main(["--profile", str(home / "profiles" / "tui.toml")]) == 0
    assert "retclip-tui --attach runs/tui" in capsys.readouterr().out


def test_no_terminal_is_refused_rather_than_read_forever(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "retclip_tui"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        timeout=PATIENCE_S,
    )
    assert result.returncode == 2 and "needs a terminal" in result.stderr


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize("how", ["sighup", "terminal closed"])
def test_the_wizard_ends_with_its_terminal_without_spinning(tmp_path, how):
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env |= {"PYTHONPATH": str(ROOT), "TERM": "xterm-256color"}
    process = subprocess.Popen(
        [sys.executable, "-m", "retclip_tui"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=tmp_path,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    try:
        painted, deadline = b"", time.monotonic() + PATIENCE_S
        while b"Quit" not in painted and time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                painted += os.read(master, 65536)
        assert b"Quit" in painted, painted[-500:]
        time.sleep(0.5)
        busy = cpu_seconds(process.pid)
        if how == "sighup":
            os.kill(process.pid, signal.SIGHUP)
        else:
            os.close(master)
            master = None
        # Gone at once when right; one that stays is the bug (a loop on the lost terminal).
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.1)
        else:
            spent = cpu_seconds(process.pid) - busy
            raise AssertionError(f"still running after 300 s, {spent:.1f} s of CPU since")
        assert os.waitstatus_to_exitcode(status) == 128 + signal.SIGHUP
        assert usage.ru_utime + usage.ru_stime - busy < 3.0  # it left; it did not spin
    finally:
        if process.poll() is None:
            process.kill()
        if master is not None:
            os.close(master)
