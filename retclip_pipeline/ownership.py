"""What the pipeline wrote in a run folder, so that it deletes only that. A folder a user
chose as the work directory may hold files of their own: those are never touched.

Every writer claims a path before it creates it: a file, or a folder. Claims are appended to
the run folder's manifest.txt (paths relative to the run folder), before the file exists, so
that a kill at any moment leaves nothing of ours unclaimed. A folder is claimed listed (a
second line, its path and "/"): what is ours in it is what is claimed in it one by one (a
build moved into place has its files claimed before the move). A folder claimed without
that line (a temporary build folder, a tracker's, or any folder of a manifest written before
listings) is ours whole; listing it later keeps what it holds as ours. `remove` deletes
claimed files and folders ours whole, and the folders that held our files and nothing else.
A path that is already there and not ours is never claimed: the writer stops with one line
(ForeignFile) instead of overwriting or replacing the user's file; nor is a listed folder
replaced or removed while it holds a file of someone else's (`refuse_inside`).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable, Iterator
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
    """The pipeline would write where a file or folder it did not write already is, or
    replace or remove a folder of its own (`folder`) that holds one."""

    def __init__(self, path: Path, folder: Path | None = None):
        if folder is not None:
            super().__init__(
                f"{path} was not written by this pipeline (it is not in the run folder's "
                f"{MANIFEST}) but is inside {folder}, which the pipeline replaces or removes "
                f"whole: move it out of {folder} and rerun; nothing was changed"
            )
            return
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
        self.listed: set[str] = set()  # claimed folders whose files are claimed one by one
        self._read()

    def _read(self) -> None:
        self.foreign = False  # a manifest.txt of the user's: nothing in it is ours
        if self.path.exists():
            lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
            if lines and lines[0] != HEADER and not _legacy(lines[0]):
                self.foreign = True
                return
            paths = [line for line in lines if line and line != HEADER]
            self.claimed |= {line for line in paths if not line.endswith("/")}
            self.listed |= {line[:-1] for line in paths if line.endswith("/")}

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
        self._append([relative])

    def claim_folder(self, folder: Path, names: Iterable[str] = ()) -> None:
        """Claim `folder` listed: ours are the files claimed in it one by one, among them
        `names` (relative to it; a name ending in "/" a folder listed in turn), claimed here
        before they exist. A folder that was ours whole keeps what it holds now as ours."""
        relative = self._relative(folder)
        if relative is None or relative in (".", MANIFEST):
            return
        if self.foreign:
            raise ForeignFile(self.path)
        if not self.owns(folder):
            self.refuse_foreign(folder)  # there already, and not ours: ForeignFile
        elif relative not in self.listed and folder.is_dir():
            names = [*_entries(folder), *names]  # ours whole until now: what it holds is ours
        lines = [relative]
        for name in names:
            lines.append(f"{relative}/{name.rstrip('/')}")
            if name.endswith("/"):
                lines.append(f"{relative}/{name}")
        lines.append(relative + "/")  # last: a kill before it leaves the folder ours whole
        self._append([line for line in lines if line.rstrip("/") not in self._known(line)])

    def _known(self, line: str) -> set[str]:
        return self.listed if line.endswith("/") else self.claimed

    def _append(self, lines: list[str]) -> None:
        if not lines:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            if not handle.tell():
                handle.write(HEADER + "\n")
            handle.write("".join(line + "\n" for line in lines))
            handle.flush()
            os.fsync(handle.fileno())
        for line in lines:
            self._known(line).add(line.rstrip("/"))

    def refuse_foreign(self, path: Path) -> None:
        """Raise ForeignFile when `path` is there and is not ours (the manifest read again
        first: another process of the run, the wizard, may have claimed it since)."""
        if not os.path.lexists(path) or self._relative(path) is None or self.owns(path):
            return
        self._read()
        if not self.owns(path):
            raise ForeignFile(Path(path))

    def owns(self, path: Path) -> bool:
        """Claimed, inside a folder ours whole, or a temporary sibling of something claimed.
        In a listed folder, only what is claimed in it."""
        relative = self._relative(path)
        if relative is None:
            return False
        if relative in self.claimed:
            return True
        parts = relative.split("/")
        for end in range(len(parts) - 1, 0, -1):
            ancestor = "/".join(parts[:end])
            if ancestor in self.listed:
                break
            if ancestor in self.claimed:
                return True
        match = _TMP.match(parts[-1])
        return bool(match) and self.owns(Path(path).with_name(match.group(1)))

    def _whole(self, path: Path) -> bool:
        """Ours with everything in it: owned, and no listed folder at or under it."""
        relative = self._relative(path)
        return self.owns(path) and not any(
            folder == relative or folder.startswith(f"{relative}/") for folder in self.listed
        )

    def list_whole(self, path: Path) -> None:
        """Folders ours whole at, under or around `path` (claimed by an earlier version of the
        pipeline, before listings) are listed, what they hold now recorded as ours: a file
        put there later is a user's."""
        relative = self._relative(path)
        for folder in sorted(self.claimed - self.listed) if relative is not None else []:
            if _near(relative, folder) and (self.root / folder).is_dir():
                self.claim_folder(self.root / folder)

    def intruder(self, path: Path) -> tuple[Path, Path] | None:
        """(a path that is not ours, the listed folder holding it) for the first such path in
        a listed folder at, under or around `path`, all of which go when `path` is replaced
        or removed; None when there is none. The manifest is read again before saying so."""
        relative = self._relative(path)
        if relative is None:
            return None
        near = [folder for folder in self.listed if _near(relative, folder)]
        tops = sorted(f for f in near if not any(f.startswith(f"{g}/") for g in near))
        for top in tops:
            if self._stranger(self.root / top) is not None:
                self._read()
                stranger = self._stranger(self.root / top)
                if stranger is not None:
                    return stranger, self.root / top
        return None

    def _stranger(self, folder: Path) -> Path | None:
        """The first entry of `folder` that is not ours (a folder is ours when it holds a
        claim, or is claimed)."""
        if folder.is_symlink() or not folder.is_dir():
            return None
        for here, dirs, files in os.walk(folder):
            dirs.sort()
            base = Path(here)
            links = [name for name in dirs if (base / name).is_symlink()]
            for name in sorted(files) + links:
                if not self.owns(base / name):
                    return base / name
            for name in [name for name in dirs if name not in links]:
                if not (self.owns(base / name) or self._had_ours(base / name)):
                    return base / name
            dirs[:] = [name for name in dirs if name not in links and not self._whole(base / name)]
        return None

    def remove(self, path: Path) -> None:
        """Delete what is ours at `path`: a claimed file or folder whole, or inside a folder
        our files, then the folders they leave empty. Anything else stays."""
        path = Path(path)
        if not os.path.lexists(path):
            return
        if path.is_symlink() or not path.is_dir():
            if self.owns(path):
                path.unlink(missing_ok=True)
            return
        if self._whole(path):
            shutil.rmtree(path, ignore_errors=True)
            return
        for folder, dirs, files in os.walk(path, topdown=False):
            here = Path(folder)
            for name in files:
                if self.owns(here / name):
                    (here / name).unlink(missing_ok=True)
            for sub in [here / name for name in dirs]:
                if sub.is_symlink() and self.owns(sub):
                    sub.unlink()
                elif sub.is_dir() and not sub.is_symlink() and self._whole(sub):
                    shutil.rmtree(sub, ignore_errors=True)
            if (self.owns(here) or self._had_ours(here)) and not any(here.iterdir()):
                here.rmdir()

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


def claim_folder(folder: Path, names: Iterable[str] = ()) -> None:
    """Claim `folder` listed, with `names` in it (see Manifest.claim_folder)."""
    if _current is not None:
        _current.claim_folder(Path(folder), names)


def refuse_foreign(paths: list[Path]) -> None:
    """Before a stage writes: each of `paths` that is there already must be ours, and hold
    nothing that is not (see refuse_inside)."""
    if _current is not None:
        for path in paths:
            _current.refuse_foreign(Path(path))
        refuse_inside(paths)


def refuse_inside(paths: list[Path]) -> None:
    """Before a folder of ours that was listed is replaced or removed with one of `paths`:
    a file in it that is not ours stops the run (ForeignFile) before anything changes."""
    if _current is not None:
        for path in paths:
            if (found := _current.intruder(Path(path))) is not None:
                raise ForeignFile(*found)


def replacing(built: Path, dest: Path) -> None:
    """`built`, a finished folder, is about to replace `dest`: a file in `dest` not ours stops
    it first; then `dest` is claimed listed, with what `built` holds."""
    if _current is not None:
        refuse_foreign([dest])
        _current.claim_folder(dest, _entries(built))


def _near(relative: str, folder: str) -> bool:
    """Whether `folder` is at, under or around `relative` (both relative to the run folder)."""
    return (
        relative in (".", folder)
        or folder.startswith(f"{relative}/")
        or relative.startswith(f"{folder}/")
    )


def list_whole(paths: list[Path]) -> None:
    """Folders ours whole at, under or around `paths` are listed (Manifest.list_whole)."""
    if _current is not None:
        for path in paths:
            _current.list_whole(Path(path))


def _entries(folder: Path) -> list[str]:
    """What `folder` holds, relative to it: files, and folders with a "/" after them."""
    found = []
    for here, dirs, files in os.walk(folder):
        base = Path(here).relative_to(folder)
        dirs.sort()
        for name in sorted(files) + [d for d in dirs if (Path(here) / d).is_symlink()]:
            found.append((base / name).as_posix())
        found += [(base / d).as_posix() + "/" for d in dirs if not (Path(here) / d).is_symlink()]
    return found


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
