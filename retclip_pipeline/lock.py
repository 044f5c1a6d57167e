"""One pipeline per run folder: an flock on run.lock, held for the whole run, with the
holder's pid written in it for others to read."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import UserError
from .layout import LOCK_FILE

_HELD: set[int] = set()  # descriptors of the run locks this process holds


def _close_held_in_child() -> None:
    for descriptor in _HELD:
        with contextlib.suppress(OSError):
            os.close(descriptor)
    _HELD.clear()


os.register_at_fork(after_in_child=_close_held_in_child)


@contextmanager
def run_lock(workdir: Path) -> Iterator[None]:
    """Held by the pipeline process for a whole run; the kernel drops it when the process
    dies. A forked child (a data loader worker) closes its copy at once, so that a killed
    run whose workers linger for a moment can be rerun at once."""
    import fcntl

    from . import ownership

    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / LOCK_FILE
    if not path.exists():
        ownership.claim(path)  # before it exists: a kill leaves nothing of ours unclaimed
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held to the end
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = lock_holder(workdir)
            raise UserError(
                f"{workdir} is already being run by process {pid if pid and pid > 0 else '?'}: "
                f"attach to it (retclip-tui --attach {workdir}) or wait for it to end"
            ) from None
        ownership.claim(path)  # a run.lock of the user's is left as it is (ForeignFile)
        _HELD.add(handle.fileno())
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        _HELD.discard(handle.fileno())
        handle.close()


def lock_holder(workdir: Path) -> int | None:
    """The pid of the process running this run directory, or None when none is; -1 when
    the lock is held but the pid it wrote is not a live process."""
    import fcntl

    path = workdir / LOCK_FILE
    if not path.exists():
        return None
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            text = handle.read().strip()
            pid = int(text) if text.isdigit() else -1
            return pid if pid > 0 and _alive(pid) else -1
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True
