"""The hub client's settings, read at call time: the endpoint (a mirror, or a test's stand-in
hub, set after huggingface_hub was imported still applies) and offline mode. A leaf: the
model code asks it where weights come from without knowing the pipeline."""

from __future__ import annotations

import os


def hub_endpoint() -> str | None:
    """HF_ENDPOINT, or None for the client's default."""
    return os.environ.get("HF_ENDPOINT") or None


def hub_api():
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub_endpoint())


def offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)
