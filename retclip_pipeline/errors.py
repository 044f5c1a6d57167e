"""Errors a user can cause: they end in one clear line and exit code 2, never a traceback."""

from __future__ import annotations

import errno


class UserError(Exception):
    """A problem the user can fix; the message is the one line we print."""

    exit_code = 2


class StageInterrupted(Exception):
    """Ctrl-C or SIGTERM during a stage; finished work is kept and a rerun resumes."""

    exit_code = 130


DISK_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def as_user_error(exc: BaseException, where: str) -> UserError | None:
    """Translate OS-level failures a user can fix (full disk, no permission) into UserError."""
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        return UserError(
            f"disk full while writing {where}: free some space and rerun (finished work is kept)"
        )
    if isinstance(exc, PermissionError):
        name = exc.filename or where
        return UserError(f"no permission to write {name}: choose a writable work directory")
    text = str(exc)
    if "No space left on device" in text or "MDB_MAP_FULL" in text and "disk" in text:
        return UserError(
            f"disk full while writing {where}: free some space and rerun (finished work is kept)"
        )
    return None
