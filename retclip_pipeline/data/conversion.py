"""Converting images in parallel: a split's selection and outcome (SplitResult), the worker
pool, and the task each worker runs (decode, crop, resize, encode)."""

from __future__ import annotations

import os
import signal
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..errors import describe
from ..hub.local import read_image_ref
from .images import BadImage, convert_one
from .prompts import PromptTable

CHUNK = 256  # images per part file: the unit of resume
BATCH = 16  # images per task sent to a worker process


@dataclass
class SplitResult:
    name: str
    table: PromptTable
    selected: list[int]
    csv_labels: dict[int, str | None] = field(default_factory=dict)  # index -> first CSV label
    images: dict[int, dict[str, Any]] = field(default_factory=dict)  # index -> label, hashes
    bad: dict[int, str] = field(default_factory=dict)  # index -> reason


def make_pool(workers: int | None = None) -> ProcessPoolExecutor:
    """A pool of worker processes, all started now, that ignore Ctrl-C from their first
    instruction: the parent handles it and stops the pool, and a worker interrupted while it
    boots would print a traceback."""
    import multiprocessing
    import threading

    workers = workers or os.cpu_count() or 1
    # spawn, not fork: the parent holds threads (pyarrow, datasets) that fork would copy mid-lock.
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=exit_with_parent,
        initargs=(os.getpid(),),
    )
    in_main_thread = threading.current_thread() is threading.main_thread()
    # An ignored SIGINT survives exec, and Python then installs no KeyboardInterrupt handler.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main_thread else None
    try:
        for _ in range(workers):  # each submit to a pool with no idle worker starts one
            pool.submit(os.getpid)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGINT, previous)
    return pool


def exit_with_parent(parent: int) -> None:
    """In a worker: end within a second of the parent's death (a kill -9 gives the pool no
    chance to stop it, and a worker with queued work would go on for minutes)."""
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def convert_batch(
    jobs: list[tuple[int, tuple[bytes | str, ...]]], size: int, quality: int, crop: bool
) -> list[tuple[int, list[str] | None, list[int] | None, str]]:
    """Worker task: (index, image refs) -> (index, base64 per eye, hash per eye, error)."""
    out = []
    for index, refs in jobs:
        try:
            encoded = [convert_one(read_image_ref(ref), size, quality, crop) for ref in refs]
        except (BadImage, OSError) as exc:
            out.append((index, None, None, describe(exc)))
            continue
        out.append((index, [e[0] for e in encoded], [e[1] for e in encoded], ""))
    return out
