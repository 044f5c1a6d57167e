"""retclip-tui [--profile P] [--workdir DIR] [--attach RUN_DIR]"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import NoReturn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="retclip-tui", description="The RET-CLIP wizard: from a token to a report."
    )
    parser.add_argument("--profile", type=Path, help="start from this profile")
    parser.add_argument("--workdir", type=Path, help="run directory (overrides the profile's)")
    parser.add_argument("--attach", type=Path, metavar="RUN_DIR", help="follow a run")
    args = parser.parse_args(argv)

    if not sys.stdin.isatty():  # Textual would read end-of-file from it in a busy loop
        print("error: retclip-tui needs a terminal (stdin is not one)", file=sys.stderr)
        return 2
    from retclip_pipeline.errors import UserError

    from .app import RetclipApp

    try:
        app = RetclipApp(profile=args.profile, workdir=args.workdir, attach=args.attach)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    message = run(app)
    if message:  # on the normal terminal, after the app has left the screen
        print(fitted(message, shutil.get_terminal_size().columns))
    return app.return_code or 0


def fitted(message: str, width: int) -> str:
    """`message` wrapped at word boundaries to `width` (the terminal itself cuts a long line
    mid-word), each line's indentation kept; a word longer than a line (a path, a command)
    stays whole on a line of its own, where it can still be copied."""
    import textwrap

    lines = []
    for line in message.splitlines():
        indent = line[: len(line) - len(line.lstrip())]
        lines += textwrap.wrap(
            line,
            width=max(width, 20),
            subsequent_indent=indent,
            break_long_words=False,
            break_on_hyphens=False,
        ) or [""]
    return "\n".join(lines)


def run_main() -> NoReturn:
    """The command (retclip-tui, python -m retclip_tui): main, then the process ends at once."""
    exit_now(main())


def exit_now(code: int) -> NoReturn:
    """The terminal is back: end the process at once. Neither a worker still at its work (a
    validation; see busy_threads) nor the interpreter's teardown of torch (seconds on a
    loaded machine) keeps the user waiting; what is registered to run at exit still runs."""
    import atexit

    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run(app, **kwargs):
    """The app on an event loop of its own: asyncio.run would wait, after the app has ended,
    for a worker thread still busy (a large CSV being validated): quitting is at once."""
    import asyncio

    loop = asyncio.new_event_loop()
    try:
        return app.run(loop=loop, **kwargs)
    finally:
        loop.close()


def busy_threads() -> list:
    import threading

    main = threading.main_thread()
    return [t for t in threading.enumerate() if t is not main and t.is_alive() and not t.daemon]


if __name__ == "__main__":
    run_main()
