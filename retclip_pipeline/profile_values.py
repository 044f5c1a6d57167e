"""Rules on profile values beyond their type and range: finite numbers, zero-shot templates,
environment variable names, and no Hugging Face token anywhere in a profile. Each rule gives
a problem message or None; no message ever repeats a token."""

from __future__ import annotations

import math
import os
import re
import string
from collections.abc import Iterator
from typing import Any

# Hugging Face user access tokens: "hf_" and 34 letters and digits (30+ to be safe).
TOKEN = re.compile(r"hf_[A-Za-z0-9]{30,}")
TOKEN_MESSAGE = (
    "looks like a Hugging Face token: a profile holds only the name of the environment "
    'variable that holds it (hub.token_env = "HF_TOKEN"); remove it from the file, and revoke '
    "the token if the file was shared"
)
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


SECRET_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")  # the token itself, whatever its shape


def redact(text: str) -> str:
    """`text` with anything token-shaped, and the token in the environment, hidden (for
    messages that quote a value)."""
    for name in SECRET_ENV:
        secret = os.environ.get(name, "")
        if len(secret) >= 8 and secret in text:
            text = text.replace(secret, "<token hidden>")
    return TOKEN.sub("hf_<hidden>", text)


def finite(value: float) -> str | None:
    # TOML allows nan and inf; a learning rate of either fails only once training runs.
    return None if math.isfinite(value) else f"must be a finite number, got {value}"


def env_name(value: str) -> str | None:
    """hub.token_env names a variable; a name the shell cannot set would never be found."""
    if ENV_NAME.fullmatch(value):
        return None
    return (
        f"{value!r} is not an environment variable name (letters, digits and '_', not "
        'starting with a digit): name the variable that holds the token, e.g. "HF_TOKEN"'
    )


def templates(value: list[str]) -> str | None:
    """Zero-shot templates: at least one, each with exactly one `{}` for the class name and
    no other braces (evaluation calls `template.format(name)`)."""
    if not value:
        return 'give at least one template, e.g. ["a colour fundus photograph of {}."]'
    for number, template in enumerate(value, start=1):
        try:
            fields = [
                name for _, name, _, _ in string.Formatter().parse(template) if name is not None
            ]
            template.format("x")
        except (ValueError, IndexError, KeyError):
            fields = None
        if fields != [""]:
            return (
                f"template {number} ({template!r}) must hold exactly one {{}} for the class "
                "name; write any other brace doubled ({{ or }})"
            )
    return None


def tokens(raw: dict[str, Any]) -> Iterator[tuple[list[str | int], str]]:
    """(where, the token) for each token-shaped text in parsed TOML: in any string value,
    list item (an int in `where`) or key, at any depth. A token in a key is named by the
    key's table and "<a key>"."""

    def walk(value: Any, where: list[str | int]) -> Iterator[tuple[list[str | int], str]]:
        if isinstance(value, str) and TOKEN.search(value):
            yield where, TOKEN.search(value).group()
        elif isinstance(value, list):
            for number, item in enumerate(value):
                yield from walk(item, [*where, number])
        elif isinstance(value, dict):
            for key, item in value.items():
                if TOKEN.search(key):
                    yield [*where, "<a key>"], TOKEN.search(key).group()
                else:
                    yield from walk(item, [*where, key])

    yield from walk(raw, [])


def dotted(where: list[str | int]) -> str:
    """A key path as a profile's reader writes it: eval.templates[1]."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in where)[1:]


TRACKERS = ("tensorboard", "wandb", "mlflow")


def trackers(value: list[str]) -> str | None:
    """train.report_to: known trackers, each once."""
    for name in value:
        if name not in TRACKERS:
            return f"unknown tracker {name!r}: use any of {', '.join(map(repr, TRACKERS))}"
    if len(set(value)) < len(value):
        return "a tracker is named twice: name each once"
    return None
