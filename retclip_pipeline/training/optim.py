"""The reference's optimiser and schedule: AdamW (0.9, 0.98, eps 1e-6) without weight decay on
norms, biases and temperatures; per-step linear warm-up, then cosine to zero."""

from __future__ import annotations

import math

import torch


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
