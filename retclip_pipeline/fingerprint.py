"""Fingerprints: what a stage's outputs depend on, as a short digest; and what a file is
(its content, or for a large one its size and ends), so that a moved folder reruns nothing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


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
