"""RET-CLIP's training loss: three symmetric InfoNCE losses (patient, left, right), 1:1:1."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .retclip import RetClipOutput


def info_nce(images: torch.Tensor, texts: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Symmetric cross-entropy over scaled cosine similarities; pair i matches pair i."""
    logits = scale * images @ texts.t()
    labels = torch.arange(images.shape[0], device=images.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2


def retclip_loss(out: RetClipOutput, gather=None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The summed loss and its parts (detached, for logging: reading them waits for the
    device, so callers do it seldom). `gather` collects a feature set across processes
    (local first), so that each loss sees the global batch."""
    if gather is not None:
        feats = [
            gather(x)
            for x in (out.image, out.left, out.right, out.text, out.text_left, out.text_right)
        ]
        out = RetClipOutput(*feats, out.scale, out.scale_left, out.scale_right)
    parts = {
        "patient": info_nce(out.image, out.text, out.scale),
        "left": info_nce(out.left, out.text_left, out.scale_left),
        "right": info_nce(out.right, out.text_right, out.scale_right),
    }
    total = parts["patient"] + parts["left"] + parts["right"]
    return total, {name: value.detach() for name, value in parts.items()}
