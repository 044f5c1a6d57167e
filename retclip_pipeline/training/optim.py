"""The reference's optimiser and schedule: AdamW (0.9, 0.98, eps 1e-6) without weight decay on
norms, biases and temperatures; per-step linear warm-up, then cosine to zero."""

from __future__ import annotations

import math

import torch

from ..errors import UserError


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "logit_scale" in name else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    # On a GPU the fused kernel updates every tensor in one launch; the CPU has no fused one.
    fused = all(p.is_cuda for p in model.parameters() if p.requires_grad) or None
    return torch.optim.AdamW(
        param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.98), eps=1e-6, fused=fused
    )


def warmup_cosine(warmup: int, total: int):
    """The factor on the peak learning rate at each optimizer step."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def make_scheduler(optimizer: torch.optim.Optimizer, warmup: int, total: int):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(warmup, total))


def epoch_steps(pairs: int, batch: int, processes: int, accumulation: int) -> tuple[int, int]:
    """(batches, optimizer steps) of an epoch, or one line when a step would not have its
    batches: an accumulation over more batches than an epoch holds divided the few it had
    by train.accumulation, and the run trained next to nothing with exit 0."""
    batches = pairs // (batch * processes)
    if batches == 0:
        raise UserError(
            f"the train split has {pairs} pairs, fewer than train.batch_size = {batch} x "
            f"{processes} process(es): lower the batch size"
        )
    if batches < accumulation:
        raise UserError(
            f"the train split's {pairs} pairs make {batches} batch(es) of train.batch_size = "
            f"{batch} x {processes} process(es) an epoch, fewer than train.accumulation = "
            f"{accumulation}: lower train.accumulation to at most {batches}"
        )
    return batches, math.ceil(batches / accumulation)
