"""Each screen at 80x24 in its result state, as plain text (no colour): what a user sees
once an action has ended must be on screen without scrolling. The texts are kept in
tests/screen_text/; `pytest --snapshot-update` rewrites them (read the diff)."""

from __future__ import annotations

import asyncio
import io
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from rich.console import Console

from retclip_pipeline import watch

from . import test_tui
from .test_tui import TOKEN, make_app, text_of, type_into, wait_for


@pytest.fixture
def home(request, monkeypatch, demo_root):
    """The wizard's folder, at a path of the same length on every machine: the screens
    wrap long lines, so a longer path would move words to other lines."""
    folder = Path(tempfile.mkdtemp(prefix="rtui-", dir="/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(folder, ignore_errors=True))
    return test_tui.home.__wrapped__(folder, monkeypatch, demo_root)


# Not under __snapshots__/: syrupy counts every file there as its own, and fails on "unused".
SNAPSHOTS = Path(__file__).parent / "screen_text"
# What changes from run to run: rates, durations, pids, times of day.
VOLATILE = [
    (re.compile(r"\d[\d,.]* ?(?:[kMG]?B|images|batches|samples|pairs|items)/(?:s|min|h)"), "#/s"),
    (re.compile(r"ETA [\d:.]+(?: s)?"), "ETA #"),
    # with a box's padding after it, which the figure's width changes
    (re.compile(r"\b(?:done )?in \d+(?:\.\d+)? s\b(?: *(?=│))?"), "in # s"),
    (re.compile(r"pid \d+"), "pid #"),
    # how many loss lines a run logs depends on its speed (one each ~10 s, and at the end)
    (re.compile(r"\(\d[\d.]*-\d[\d.]*, \d+ logs\)"), "(#-#, # logs)"),
    (re.compile(r"\d{8}-\d{6}"), "#time"),
    (re.compile(r"[▁▂▃▄▅▆▇█]+"), "▆"),  # curves and scroll bars drawn at fractional rows
]


def screen_text(app) -> str:
    """The screen as a terminal shows it, without colour."""
    console = Console(
        width=app.size.width,
        height=app.size.height,
        file=io.StringIO(),
        force_terminal=True,
        record=True,
        legacy_windows=False,
    )
    console.print(app.screen._compositor.render_update(full=True))
    return console.export_text(styles=False)


def settled(text: str, home: Path) -> str:
    text = text.replace(str(home), "<home>")
    for pattern, replacement in VOLATILE:
        text = pattern.sub(replacement, text)
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


async def check(request, name: str, pilot, home: Path) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: bool(app.screen.query_one("#plan").states))
    await app.workers.wait_for_complete()
    await pilot.pause()
    text = settled(screen_text(app), home)
    assert len(text.splitlines()) <= 24, "taller than the terminal"
    path = SNAPSHOTS / f"{name}.txt"
    if request.config.getoption("--snapshot-update", default=False):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no snapshot {path}: run pytest with --snapshot-update"
    assert text == path.read_text(encoding="utf-8"), f"{name}: the screen changed:\n{text}"


@pytest.mark.snapshot
def test_every_screen_in_its_result_state_at_80x24(home, request):
    async def walk():
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            await check(request, "start", pilot, home)
            await pilot.press("f4")
            await type_into(pilot, "#token-input", TOKEN)
            await pilot.press("ctrl+g")
            await app.workers.wait_for_complete()
            await pilot.pause()
            await check(request, "token", pilot, home)
            await pilot.press("f4")
            await pilot.press("ctrl+g")  # validate
            await app.workers.wait_for_complete()
            await pilot.pause()
            await check(request, "data", pilot, home)
            await pilot.press("f4")
            app.screen.query_one("#mode").focus()
            await pilot.press("home", "enter")  # smoke
            await pilot.pause()
            await check(request, "sizing", pilot, home)
            await pilot.press("f4")
            await pilot.press("ctrl+g")
            await wait_for(pilot, lambda: app.screen.query_one("RunPanel").done)
            what = lambda: text_of(app.screen.query_one("#what"))  # noqa: E731
            await wait_for(pilot, lambda: what().startswith("done: the conversion report"))
            await pilot.pause(1.0)
            await check(request, "prepare", pilot, home)
            await pilot.press("f4")
            await pilot.press("ctrl+g")
            results = app.session.workdir / "evaluation" / "evaluation_results.json"
            await wait_for(pilot, results.exists)
            await wait_for(pilot, lambda: not watch.run_info(app.session.workdir).running)
            await pilot.pause(1.5)
            await check(request, "train", pilot, home)
            await pilot.press("f4")
            await pilot.pause(1.0)
            await check(request, "evaluate", pilot, home)
            await pilot.press("f4")
            await pilot.press("ctrl+g")  # save
            await pilot.pause()
            if type(app.screen).__name__ != "SaveScreen":  # the overwrite question: yes
                await pilot.press("y")
                await pilot.pause()
            await check(request, "save", pilot, home)

    asyncio.run(walk())
