"""The Hugging Face token: where it comes from (the profile's variable, then the stored login),
and never shown."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..profile import Profile


@dataclass
class Token:
    value: str | None
    origin: str  # "HF_TOKEN", "stored login" or "none"

    def __repr__(self) -> str:  # never print the secret
        return f"Token(origin={self.origin!r}, present={self.value is not None})"


def resolve_token(profile: Profile) -> Token:
    """The profile's environment variable first, then the hub client's stored login."""
    value = os.environ.get(profile.hub.token_env, "").strip()
    if value:
        return Token(value, profile.hub.token_env)
    if profile.hub.use_stored_login:
        from huggingface_hub import get_token

        stored = get_token()
        if stored:
            return Token(stored, "stored login")
    return Token(None, "none")
