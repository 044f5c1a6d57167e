"""Errors a user can cause: they end in one clear line and exit code 2, never a traceback."""

from __future__ import annotations

import errno
import re


class UserError(Exception):
    """A problem the user can fix; the message is the one line we print."""

    exit_code = 2


class StageInterrupted(Exception):
    """Ctrl-C or SIGTERM during a stage; finished work is kept and a rerun resumes."""

    exit_code = 130


class DamagedOutput(UserError):
    """An output of an earlier stage is damaged (a truncated LMDB, a record that is not
    ours): the runner marks that stage to run again, so that a rerun rebuilds it. (One
    argument is enough to build it: a DataLoader worker's error comes back rebuilt from its
    message.)"""

    def __init__(self, message: str, stage: str = "lmdb"):
        super().__init__(message)
        self.stage = stage


# An object's default repr names its memory address ("<_io.BytesIO object at 0x7f...>").
_ADDRESS = re.compile(r" (?:object )?at 0x[0-9a-fA-F]+")


def describe(exc: BaseException) -> str:
    """An exception's first line, or its type's name when it has no message, without object
    addresses: reports and error lines that quote it stay the same from run to run."""
    text = str(exc).strip()
    return _ADDRESS.sub("", text.splitlines()[0]) if text else type(exc).__name__


DISK_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
READ_ONLY_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM}


def one_line(exc: BaseException) -> str:
    """The message to print. An error raised in a DataLoader worker comes back with the
    worker's traceback in its text: its last line is the message."""
    text = str(exc).strip()
    if "Original Traceback" in text:
        last = text.splitlines()[-1]
        return last.split(": ", 1)[1] if ": " in last else last
    return text


def as_user_error(exc: BaseException, where: str, need: str = "") -> UserError | None:
    """Translate failures a user can fix (a full disk, a read-only folder) into UserError,
    naming the path (and `need`, the space the stage needs); None for anything else, which
    is our bug. py-lmdb reports these as its own errors, with the system's words."""
    name = getattr(exc, "filename", None) or where
    text = str(exc)
    full = (isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS) or (
        "No space left on device" in text or "Disk quota exceeded" in text
    )
    if full:
        space = f"; the stage needs about {need} there" if need else ""
        return UserError(
            f"disk full while writing {name}{space}: free some space and rerun (finished "
            f"work is kept)"
        )
    read_only = (isinstance(exc, OSError) and exc.errno in READ_ONLY_ERRNOS) or any(
        words in text for words in ("Permission denied", "Read-only file system")
    )
    if read_only:
        return UserError(
            f"cannot write {name} (no permission, or a read-only file system): choose a "
            f"writable work directory with --workdir (finished work is kept)"
        )
    return None
