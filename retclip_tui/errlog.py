"""What went wrong unexpectedly while the wizard worked: the traceback goes to a log file in
the user's cache folder, any Hugging Face token taken out first, and the screen gets one or
two lines naming what failed and where the log is. No Textual here."""

from __future__ import annotations

import os
import re
import sys
import time
import traceback
from collections.abc import Iterable
from pathlib import Path

LOG_LIMIT = 1 << 20  # past a megabyte the log starts afresh (the previous one kept as .1)
# What a token looks like, for one that reached a message by a way no one thought of.
TOKEN_LIKE = re.compile(r"hf_[A-Za-z0-9]{8,}")


def log_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "retclip" / "tui.log"


def secrets_of(session) -> list[str]:
    """Every token this wizard could hold: typed in, in the environment, the stored login."""
    found = [
        session.token,
        os.environ.get(session.profile.hub.token_env),
        os.environ.get("HF_TOKEN"),
    ]
    if "huggingface_hub" in sys.modules:  # never imported just for this
        try:
            from huggingface_hub import get_token

            found.append(get_token())
        except Exception:  # noqa: BLE001 - a failure being reported must not fail again
            pass
    return [s for s in found if s]


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "[token]")
    return TOKEN_LIKE.sub("hf_[token]", text)


def record(what: str, exc: BaseException, secrets: Iterable[str]) -> Path | None:
    """Append the traceback of `exc` to the log; the log's path, or None if it cannot be
    written (a read-only home must not turn one failure into two)."""
    entry = "".join(traceback.format_exception(exc))
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    path = log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_file() and path.stat().st_size > LOG_LIMIT:
            os.replace(path, path.with_name(path.name + ".1"))
        with open(path, "a", encoding="utf-8", errors="replace") as handle:
            handle.write(redact(f"--- {stamp} {what}\n{entry}\n", list(secrets)))
    except OSError:
        return None
    return path


def summary(what: str, exc: BaseException, where: Path | None, secrets: Iterable[str]) -> str:
    """Two lines for the screen: what failed and why in a few words, and where the log is."""
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    why = f"{type(exc).__name__}: {first[:120]}" if first else type(exc).__name__
    log = f"the traceback is in {where}" if where else "no log could be written"
    return redact(f"{what} failed ({why}); your settings are kept\n{log}", list(secrets))


def report(what: str, exc: BaseException, session) -> str:
    """Log `exc` and say it in two lines: what a screen shows for an unexpected error."""
    secrets = secrets_of(session)
    return summary(what, exc, record(what, exc, secrets), secrets)
