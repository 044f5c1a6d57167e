"""Training on several GPUs (or CPU processes) under torchrun: process group, data shards,
and the feature gather that lets every rank's loss see the global batch."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def from_env() -> World:
    """What torchrun set in the environment (one process when it did not run us)."""
    return World(
        int(os.environ.get("RANK", 0)),
        int(os.environ.get("WORLD_SIZE", 1)),
        int(os.environ.get("LOCAL_RANK", 0)),
    )


def start(world: World, device_type: str) -> None:
    if world.size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")


def stop(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()


def gather(features: torch.Tensor, world: World) -> torch.Tensor:
    """Every rank's features, this rank's first (with their gradient), the others after in
    rank order. Every rank orders images and texts alike, so pair i still matches pair i."""
    if world.size == 1:
        return features
    parts = [torch.empty_like(features) for _ in range(world.size)]
    dist.all_gather(parts, features.contiguous())
    others = [part for rank, part in enumerate(parts) if rank != world.rank]
    return torch.cat([features, *others])


def gather_objects(value, world: World) -> list:
    if world.size == 1:
        return [value]
    out = [None] * world.size
    dist.all_gather_object(out, value)
    return out


def any_rank(flag: bool, world: World) -> bool:
    """Whether any rank's flag is set (every rank must call it at the same point)."""
    if world.size == 1:
        return flag
    value = torch.tensor([int(flag)], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())
