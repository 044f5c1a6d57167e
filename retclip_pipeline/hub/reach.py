"""Whether the hub answers now, asked once and briefly, and the hub client held to its cache
when it does not: on a machine without network the hub client otherwise waits out its own
retries (5 a file, about 23 s each) before it falls back to the cache or fails, and a check
that looks at two towers' configs or a tokenizer's files sits silent for a minute."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import UserError
from . import env
from .env import OFFLINE_ENV

PROBE_S = 8.0  # the longest a probe waits for the hub's first answer

_lock = threading.Lock()
_held = 0  # threads inside cache_only()
_saved = False  # HF_HUB_OFFLINE as it was before the first of them


def endpoint() -> str:
    from huggingface_hub import constants

    from .env import hub_endpoint

    return (hub_endpoint() or constants.ENDPOINT).rstrip("/")


def said(exc: BaseException) -> str:
    """An exception in one short line: its class and its message's first line."""
    text = str(exc).strip()
    first = text.splitlines()[0][:120] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def not_reached(reason: str, what: str) -> str:
    """The one wording for what was not done because the hub could not be asked."""
    return f"hub not reachable ({reason}): {what}"


def unreachable(timeout: float = PROBE_S) -> str | None:
    """Why the hub cannot be asked now ("ConnectError: [Errno 111] Connection refused"),
    from one request that waits `timeout` seconds at most and is never retried; None when the
    hub answers at all (any HTTP status). HF_HUB_OFFLINE=1 is a reason too. The request
    carries no token."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return OFFLINE_ENV
    from huggingface_hub.utils import get_session

    try:
        get_session().get(endpoint() + "/api/whoami-v2", timeout=timeout)  # a 401 is an answer
    except Exception as exc:  # noqa: BLE001 - whatever stops the request: not answering
        return said(exc)
    return None


@contextmanager
def cache_only(reason: str = "the hub did not answer") -> Iterator[None]:
    """Within: the hub client and transformers read their caches only, as with
    HF_HUB_OFFLINE=1, and fail at once on what is not there; `reason` (why the hub is not
    asked) is what env.offline_reason says meanwhile. Process-wide (the client has no other
    switch), so other threads read the cache too until the last one leaves."""
    global _held, _saved
    from huggingface_hub import constants

    with _lock:
        if _held == 0:
            _saved = constants.HF_HUB_OFFLINE
            constants.HF_HUB_OFFLINE = True
            if not _saved:
                env.held_reason = reason
        _held += 1
    try:
        yield
    finally:
        with _lock:
            _held -= 1
            if _held == 0:
                constants.HF_HUB_OFFLINE = _saved
                env.held_reason = None


@contextmanager
def hub_or_cache(needed: bool = True) -> Iterator[str | None]:
    """The hub asked once (when `needed`): yields None when it answers, or why not, with the
    hub client held to its cache inside (see cache_only). Then a file missing from the cache
    (an OSError from the hub client or transformers) is a UserError that says the hub was not
    reachable, instead of a failure nobody foresaw."""
    reason = unreachable() if needed else None
    if reason is None:
        yield None
        return
    try:
        if reason == OFFLINE_ENV:
            yield reason
        else:
            with cache_only(reason):
                yield reason
    except OSError as exc:
        raise UserError(
            not_reached(reason, f"{said(exc)}; only cached files can be used: connect and retry")
        ) from None
