"""Checkpoints that resume exactly: weights, optimizer, scheduler, scaler, the random number
generators and the position in the data order, written atomically and read back with
weights_only=True (plain containers and tensors only)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_open
from ..errors import UserError


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(path: Path, payload: dict[str, Any]) -> None:
    with atomic_open(path, "wb") as handle:
        torch.save(payload, handle)


def load(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which and what to do
        raise UserError(
            f"cannot read checkpoint {path} ({exc}): delete it to start the "
            f"training afresh, or restore it"
        ) from None
