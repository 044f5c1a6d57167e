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


# An object's default repr names its memory address ("<_io.BytesIO object at 0x7f...>").
_ADDRESS = re.compile(r" (?:object )?at 0x[0-9a-fA-F]+")


def describe(exc: BaseException) -> str:
    """An exception's first line, or its type's name when it has no message, without object
    addresses: reports and error lines that quote it stay the same from run to run."""
    text = str(exc).strip()
    return _ADDRESS.sub("", text.splitlines()[0]) if text else type(exc).__name__


DISK_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def as_user_error(exc: BaseException, where: str) -> UserError | None:
    """Translate failures a user can fix (full disk, no permission) into UserError; None for
    anything else, which is our bug."""
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        return UserError(
            f"disk full while writing {where}: free some space and rerun (finished work is kept)"
        )
    if isinstance(exc, PermissionError):
        name = exc.filename or where
        return UserError(f"no permission to write {name}: choose a writable work directory")
    if "No space left on device" in str(exc):  # how lmdb reports a full disk
        return UserError(
            f"disk full while writing {where}: free some space and rerun (finished work is kept)"
        )
    return None
