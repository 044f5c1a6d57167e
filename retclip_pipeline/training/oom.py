"""Out of GPU memory: the largest batch size whose training step fits, found by halving."""

from __future__ import annotations

from ..errors import UserError
from ..profile import Profile


def fits(profile: Profile, batch_size: int) -> bool:
    """Whether one training step at this batch size fits the GPU (random data)."""
    import torch

    from .measure import measure_steps

    try:
        measure_steps(profile, "cuda", batch_size)
        return True
    except (torch.cuda.OutOfMemoryError, UserError):
        return False


def largest_fitting_batch(profile: Profile) -> int:
    """Halve the batch size until a step fits; 0 when not even one pair does."""
    batch = profile.train.batch_size // 2
    while batch >= 1 and not fits(profile, batch):
        batch //= 2
    return batch
