"""Waiting out the hub's rate limits and transient faults: the reset time the hub names on
HTTP 429, otherwise exponential backoff with jitter; a bounded number of tries; every wait
shown to the user. No fixed sleeps."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from ..errors import UserError

T = TypeVar("T")

TRANSIENT_STATUS = {408, 500, 502, 503, 504}
# Exception class names of network failures, whichever HTTP library sits underneath.
TRANSIENT_NAMES = {
    "TimeoutException",
    "NetworkError",
    "RemoteProtocolError",
    "TransportError",
    "ConnectionError",
    "ChunkedEncodingError",
    "IncompleteRead",
}


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def classify(exc: BaseException) -> tuple[str, float | None] | None:
    """(reason, seconds the server asked us to wait or None) for a fault worth retrying;
    None for anything else (a bad token, a missing file: retrying cannot help)."""
    from huggingface_hub.utils import parse_ratelimit_headers

    for error in _chain(exc):
        response = getattr(error, "response", None)
        status = getattr(response, "status_code", None)
        if status == 429:
            info = parse_ratelimit_headers(response.headers)
            if info is not None and info.remaining == 0:
                return "rate limited by the hub", float(info.reset_in_seconds)
            after = response.headers.get("Retry-After", "")
            return "rate limited by the hub", float(after) if after.isdigit() else None
        if status in TRANSIENT_STATUS:
            return f"hub answered HTTP {status}", None
        if status is not None:
            return None
        names = {cls.__name__ for cls in type(error).__mro__}
        if names & TRANSIENT_NAMES or isinstance(error, TimeoutError | ConnectionError):
            return f"connection failed ({type(error).__name__})", None
    return None


class Retrier:
    """Calls a function until it succeeds, a fault is permanent, or the tries run out."""

    def __init__(
        self,
        note: Callable[[str], None],
        tries: int = 6,
        base_s: float = 1.0,
        cap_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.note = note
        self.tries = tries
        self.base_s = base_s
        self.cap_s = cap_s
        self.sleep = sleep
        self.waits: list[float] = []

    def backoff(self, attempt: int) -> float:
        # Jitter keeps parallel downloads from retrying in lockstep.
        return min(self.cap_s, self.base_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)

    def call(self, what: str, fn: Callable[[], T]) -> T:
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except Exception as exc:
                fault = classify(exc)
                if fault is None:
                    raise
                reason, named_wait = fault
                if attempt >= self.tries:
                    raise UserError(
                        f"{what}: {reason}, {attempt} tries; the hub may be down or "
                        "throttling: run again later, finished work is kept"
                    ) from None
                wait = named_wait + 1 if named_wait is not None else self.backoff(attempt)
                self.waits.append(wait)
                self.note(f"{reason}: waiting {wait:.0f} s, try {attempt + 1}/{self.tries}")
                self.sleep(wait)
                self.note("")


class _LibraryWaits(logging.Handler):
    """The hub client retries some faults itself (429 on a file download, a dropped
    connection mid-file); its warnings become our progress notes instead of stray lines."""

    def __init__(self, note: Callable[[str], None]):
        super().__init__(logging.WARNING)
        self.note = note

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "Rate limited" in message:
            self.note("rate limited by the hub: " + message.split(". ", 1)[-1].split(" [")[0])
        elif "Retrying in" in message or "thrown while" in message or "resum" in message:
            self.note("hub connection interrupted: resuming")


@contextmanager
def library_waits_shown(note: Callable[[str], None]) -> Iterator[None]:
    handler = _LibraryWaits(note)
    loggers = [
        logging.getLogger(n)
        for n in ("huggingface_hub.utils._http", "huggingface_hub.file_download")
    ]
    saved = [(lg.propagate, lg.level) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.propagate = False
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, (propagate, level) in zip(loggers, saved, strict=True):
            lg.removeHandler(handler)
            lg.propagate = propagate
            lg.setLevel(level)
