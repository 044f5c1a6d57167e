"""Fingerprints: what a stage's outputs depend on, as a short digest; and what an input is
wherever it lives (a file by its content, or for a large one its size and ends; a folder, a
local data set or tower, by its files), so that a moved or copied project reruns nothing."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from . import profile as profiles

# A data set's images count by name and size only: a folder of 200k of them is never read.
IMAGE_SUFFIXES = {
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".jp2",
    ".dcm",
}  # fmt: skip


def fingerprint(data: Any) -> str:
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def file_identity(path: Path) -> dict[str, Any]:
    """What a (possibly large) file is, wherever it lives: its size and a digest of its
    first and last 64 KiB (a checkpoint's zip index, which changes with any of its entries).
    A moved run folder or project keeps its identities, so nothing reruns."""
    digest = hashlib.sha256()
    size = path.stat().st_size
    with open(path, "rb") as handle:
        digest.update(handle.read(1 << 16))
        handle.seek(max(0, size - (1 << 16)))
        digest.update(handle.read(1 << 16))
    return {"size": size, "digest": digest.hexdigest()[:16]}


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def output_stamps(paths: list[Path]) -> list[tuple[int, int] | None]:
    """Each output's size and modification time (None when missing): whether a stage that
    failed changed any of them."""
    stamps = []
    for path in paths:
        try:
            info = path.stat()
        except OSError:
            stamps.append(None)
            continue
        stamps.append((info.st_size, info.st_mtime_ns))
    return stamps


def folder_identity(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, Any]:
    """What a folder (a local data set, a tower) holds, wherever it lives: every file's
    name relative to it and size; the content of every file but an image (metadata, CSVs,
    parquet and arrow tables, configs, weights) by file_identity. Hidden files and folders
    (a download tool's .cache) are left out, and so are run folders kept inside it (the
    folders in `skip`, and any holding the pipeline's manifest). Images are not read: one
    edited in place to the very same size goes unnoticed."""
    digest = hashlib.sha256()
    count = total = 0
    skipped = {os.path.abspath(path) for path in skip}
    stack = [(str(root), "")]
    while stack:  # depth first, each folder's entries in name order
        folder, prefix = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError:
            digest.update(f"{prefix}\0unreadable\n".encode())
            continue
        folders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            relative = prefix + entry.name
            try:
                if entry.is_dir():
                    if entry.is_symlink():  # not followed: it may lead back up
                        what: Any = "link"
                    elif os.path.abspath(entry.path) in skipped or _run_folder(entry.path):
                        continue
                    else:
                        folders.append((entry.path, relative + "/"))
                        continue
                else:
                    size = entry.stat().st_size
                    image = os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES
                    what = size if image else file_identity(Path(entry.path))
                    count, total = count + 1, total + size
            except OSError:
                what = "unreadable"
            digest.update(f"{relative}\0{what}\n".encode())
        stack.extend(reversed(folders))
    return {"files": count, "bytes": total, "digest": digest.hexdigest()[:16]}


def _run_folder(folder: str) -> bool:
    """Whether a folder is a run folder (its manifest.txt is the pipeline's)."""
    from .ownership import HEADER, MANIFEST

    try:
        with open(os.path.join(folder, MANIFEST), encoding="utf-8", errors="replace") as handle:
            return handle.readline().rstrip("\n") == HEADER
    except OSError:
        return False


def input_identity(path: Path, skip: tuple[Path, ...] = ()) -> Any:
    """A file or folder named by the profile, by what it is; "missing" when it is not."""
    if path.is_file():
        return file_identity(path)
    if path.is_dir():
        return folder_identity(path, skip)
    return "missing"


def material(
    profile: profiles.Profile, earlier: bool = False, content: bool = True
) -> dict[str, Any]:
    """The resolved profile the stages' fingerprints read, every input named by what it is:
    a file key by its content, a local data set and a local tower folder by their files (a
    hub id stays an id). `earlier`: as fingerprints were made before a data set and a tower
    folder were named so (by their absolute paths), to know an earlier run's records. Not
    `content`: a local data set by its kind only (what conversion's part files are named by)."""
    from .model.sources import is_local, source_of

    data = profiles.to_dict(profile, resolved=True)
    for section, key in profiles.neutral_keys():
        data.get(section, {}).pop(key, None)
    for section, key in profiles.file_keys():  # a file's content, not where it lives
        value = data.get(section, {}).get(key)
        if value and value != "init":
            path = Path(value)
            data[section][key] = file_identity(path) if path.is_file() else "missing"
    if earlier:
        return data
    kind, where = profile.dataset_source()
    if kind == "local" and not content:
        data["hub"]["dataset"] = {"local": "any"}
    elif kind == "local":
        ours = (profile.workdir_path(), profile.data_dir_path() or profile.workdir_path())
        data["hub"]["dataset"] = {"local": input_identity(Path(where), ours)}
    for key in ("vision", "text"):
        name = data["model"][key]
        if source_of(name, key) == name and is_local(name):  # a folder, not a preset
            data["model"][key] = {"local": folder_identity(Path(name).expanduser())}
    return data


def pick(data: dict[str, Any], dotted: str) -> Any:
    """A section ("data") or one key of it ("hub.dataset") from the resolved profile."""
    value: Any = data
    for part in dotted.split("."):
        value = value.get(part, {}) if isinstance(value, dict) else {}
    return value
