"""The hub client's settings, read at call time: the endpoint (a mirror, or a test's stand-in
hub, set after huggingface_hub was imported still applies) and offline mode. A leaf: the
model code asks it where weights come from without knowing the pipeline."""

from __future__ import annotations

import os

OFFLINE_ENV = "HF_HUB_OFFLINE=1"
# Why the client is held to its cache while hub.reach.cache_only holds it there (the hub did
# not answer: "ConnectError: ..."); None otherwise. It sets the client's offline constant,
# as HF_HUB_OFFLINE=1 does: this tells the two apart.
held_reason: str | None = None


def hub_endpoint() -> str | None:
    """HF_ENDPOINT, or None for the client's default."""
    return os.environ.get("HF_ENDPOINT") or None


def hub_api():
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub_endpoint())


def offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def offline_reason() -> str | None:
    """Why the hub client reads its cache only: HF_HUB_OFFLINE=1, or the hub not answering
    (the reason the probe gave); None when it may ask the hub."""
    if not offline():
        return None
    return held_reason or OFFLINE_ENV
