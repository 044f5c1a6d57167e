"""Library chatter into the one event stream. Our events are the progress, so library
progress bars are off; each distinct warning, Python's or a library logger's, becomes one
warning event of the stage that caused it, not a stray line repeated per batch."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def no_library_bars() -> None:
    """Before huggingface_hub, transformers or datasets is imported: no tqdm bars of theirs
    (transformers follows huggingface_hub's switch)."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")


class _Once(logging.Handler):
    def __init__(self, show: Callable[[str], None]):
        super().__init__(logging.WARNING)
        self.show = show

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.show(record.getMessage())
        except Exception:  # a logging handler must never raise into library code
            self.handleError(record)


@contextmanager
def library_messages(warn: Callable[[str], None]) -> Iterator[None]:
    """While running stages: Python warnings and warning records of any logger, each
    distinct message once, through `warn`."""
    seen: set[str] = set()

    def show(message: str) -> None:
        text = " ".join(str(message).split())
        if text and text not in seen:
            seen.add(text)
            warn(text[:400])

    def showwarning(message, category, filename, lineno, file=None, line=None) -> None:
        show(f"{category.__name__}: {message}")

    _route_transformers()
    handler = _Once(show)
    root = logging.getLogger()
    previous = warnings.showwarning
    warnings.showwarning = showwarning
    root.addHandler(handler)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")  # shown once a place; `show` keeps one a text
            # Deprecations speak to developers of the libraries, not to someone training.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            warnings.showwarning = showwarning
            yield
    finally:
        root.removeHandler(handler)
        warnings.showwarning = previous


def _route_transformers() -> None:
    """transformers prints its warnings through a handler of its own: send them to the
    root logger instead, where `library_messages` picks them up."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.disable_default_handler()
    hf_logging.enable_propagation()
