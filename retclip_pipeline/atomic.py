"""Atomic file output: write under a temporary name in the same folder, then rename. Every
path is claimed in the run folder's manifest first (see ownership.py)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from . import ownership


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary sibling of `path`; on success fsync and rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ownership.claim(path)
    tmp = _tmp_name(path)
    if "b" not in mode:
        kwargs.setdefault("encoding", "utf-8")
    try:
        with open(tmp, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    with atomic_open(path, "w") as handle:
        handle.write(text)


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def replace_dir(src: Path, dest: Path) -> None:
    """Move a finished folder into place, replacing the one we wrote there before: what it
    holds is claimed first, one by one; a file in `dest` not ours stops it (ForeignFile)."""
    ownership.replacing(src, dest)
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.replace(dest, old)
        os.replace(src, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dest)


def link_or_copy(src: Path, dest: Path) -> None:
    """`dest` becomes the same bytes as `src`, atomically: a hard link where the file system
    has them (no second copy on disk), else a copy."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    ownership.claim(dest)
    tmp = _tmp_name(dest)
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dest)


def concat_files(parts: list[Path], dest: Path) -> None:
    """Concatenate part files into `dest` atomically, streaming (bounded memory)."""
    with atomic_open(dest, "wb") as out:
        for part in parts:
            with open(part, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
