"""What the pipeline wrote in a run folder, so that it deletes only that. A folder a user
chose as the work directory may hold files of their own: those are never touched.

Every writer claims a path before it creates it: a file, or a folder that is ours whole (a
build folder). Claims are appended to the run folder's manifest.txt (paths relative to the
run folder), before the file exists, so that a kill at any moment leaves nothing of ours
unclaimed. `remove` deletes claimed files and claimed folders, and the folders that held our
files and nothing else. A path that is already there and not ours is never claimed: the
writer stops with one line (ForeignFile) instead of overwriting or replacing the user's file.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import UserError
from .layout import LOCK_FILE, LOG_FILE

MANIFEST = "manifest.txt"
# The manifest's first line: a manifest.txt without it is a user's file, never read as ours.
HEADER = "# retclip: the files the pipeline wrote in this run folder, one a line"
_TMP = re.compile(r"^\.(.+)\.(tmp-\d+|copy|building|old-\d+)$")  # our siblings of an output


def _legacy(first: str) -> bool:
    """A manifest written before the header: its first claim was a run's lock or log."""
    return first in (LOCK_FILE, LOG_FILE) or first.endswith("/" + LOCK_FILE)


class ForeignFile(UserError):
    """The pipeline would write where a file or folder it did not write already is."""

    def __init__(self, path: Path):
        why = (
            "the pipeline's list of the files it writes has this name"
            if path.name == MANIFEST
            else f"it is not in the run folder's {MANIFEST}"
        )
        super().__init__(
            f"{path} is already there and was not written by this pipeline ({why}): move it "
            f"out of the run folder, or choose another work directory (--workdir); nothing of "
            f"it was changed"
        )


class Manifest:
    def __init__(self, workdir: Path):
        self.root = workdir.resolve()
        self.path = self.root / MANIFEST
        self.claimed: set[str] = set()
        self._read()

    def _read(self) -> None:
        self.foreign = False  # a manifest.txt of the user's: nothing in it is ours
        if self.path.exists():
            lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
            if lines and lines[0] != HEADER and not _legacy(lines[0]):
                self.foreign = True
                return
            self.claimed |= {line for line in lines if line and line != HEADER}

    def _relative(self, path: Path) -> str | None:
        try:
            return Path(os.path.abspath(path)).relative_to(self.root).as_posix()
        except ValueError:
            return None  # outside the run folder (the hub cache, a user's CSV): not ours

    def claim(self, path: Path) -> None:
        """Record `path` (a file, or a folder that is ours whole) before creating it. A path
        that is there already and not ours raises ForeignFile: a user's file is never
        overwritten, nor a user's folder replaced."""
        relative = self._relative(path)
        if relative is None or relative in (".", MANIFEST) or self.owns(path):
            return
        if self.foreign:
            raise ForeignFile(self.path)
        self.refuse_foreign(path)
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            if not handle.tell():
                handle.write(HEADER + "\n")
            handle.write(relative + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.claimed.add(relative)

    def refuse_foreign(self, path: Path) -> None:
        """Raise ForeignFile when `path` is there and is not ours (the manifest read again
        first: another process of the run, the wizard, may have claimed it since)."""
        if not os.path.lexists(path) or self._relative(path) is None or self.owns(path):
            return
        self._read()
        if not self.owns(path):
            raise ForeignFile(Path(path))

    def owns(self, path: Path) -> bool:
        """Claimed, inside a claimed folder, or a temporary sibling of something claimed."""
        relative = self._relative(path)
        if relative is None:
            return False
        parts = relative.split("/")
        for end in range(len(parts), 0, -1):
            if "/".join(parts[:end]) in self.claimed:
                return True
        match = _TMP.match(parts[-1])
        return bool(match) and self.owns(Path(path).with_name(match.group(1)))

    def remove(self, path: Path) -> None:
        """Delete what is ours at `path`: a claimed file or folder whole, or inside a folder
        our files, then the folders they leave empty. Anything else stays."""
        path = Path(path)
        if not path.exists() and not path.is_symlink():
            return
        if self.owns(path):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            return
        if not path.is_dir():
            return
        for folder, _, files in os.walk(path, topdown=False):
            here = Path(folder)
            removed = False
            for name in files:
                if self.owns(here / name):
                    (here / name).unlink(missing_ok=True)
                    removed = True
            for sub in list(here.iterdir()) if here.exists() else []:
                if sub.is_dir() and self.owns(sub):
                    shutil.rmtree(sub, ignore_errors=True)
                    removed = True
            if removed and here != path and not any(here.iterdir()):
                here.rmdir()
        if path.exists() and not any(path.iterdir()) and self._had_ours(path):
            path.rmdir()

    def _had_ours(self, folder: Path) -> bool:
        relative = self._relative(folder)
        return relative is not None and any(c.startswith(relative + "/") for c in self.claimed)


_current: Manifest | None = None  # the run folder this process is writing, while it runs


@contextmanager
def recording(workdir: Path) -> Iterator[Manifest]:
    """While the runner runs a run folder, every claim() goes to its manifest."""
    global _current
    previous, _current = _current, Manifest(workdir)
    try:
        yield _current
    finally:
        _current = previous


def claim(path: Path) -> None:
    """Claim `path` in the manifest of the run folder being written, if any."""
    if _current is not None:
        _current.claim(Path(path))


def refuse_foreign(paths: list[Path]) -> None:
    """Before a stage writes: each of `paths` that is there already must be ours."""
    if _current is not None:
        for path in paths:
            _current.refuse_foreign(Path(path))


def owned_files(folder: Path) -> list[Path]:
    """The files under `folder` that the run being recorded wrote."""
    if _current is None or not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and _current.owns(p))


def remove(path: Path, workdir: Path | None = None) -> None:
    """Delete what is ours at `path` (see Manifest.remove), in the run folder being written
    or in `workdir`. Outside any run (a library call on a folder the caller made), `path` is
    the caller's own and goes whole."""
    manifest = Manifest(workdir) if workdir is not None else _current
    path = Path(path)
    if manifest is not None:
        manifest.remove(path)
    elif path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
