"""The wizard ends with its terminal: on SIGHUP, and when the terminal goes away without
one (Textual's input thread then reads end-of-file in a busy loop: 35% of a core under
`make tui`). A pipeline it started runs on: it is detached in a session of its own."""

from __future__ import annotations

import asyncio
import contextlib
import select
import signal
import sys
import threading

HANGUP_CODE = 128 + signal.SIGHUP  # the shell's code for a process ended by SIGHUP


def watch(app) -> None:
    """Make `app` exit on SIGHUP or a hung-up terminal; called in its event loop."""

    def hang_up() -> None:
        app.exit(return_code=HANGUP_CODE)

    # Not in the main thread, or no SIGHUP here: the terminal watch below still ends it.
    with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, hang_up)
    try:
        fd = sys.__stdin__.fileno()
    except (AttributeError, ValueError, OSError):
        return

    def wait() -> None:
        poller = select.poll()
        poller.register(fd, 0)  # no event asked for: poll returns only on a hang-up or error
        poller.poll()
        with contextlib.suppress(RuntimeError):  # the app has ended already
            app.call_from_thread(hang_up)

    threading.Thread(target=wait, name="retclip-hangup", daemon=True).start()
