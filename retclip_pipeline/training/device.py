"""Where and how training computes: the device a profile asks for, the autocast precision,
which towers stay frozen or checkpointed, and one forward pass of a batch."""

from __future__ import annotations

from typing import Any

from ..errors import UserError


def resolve_device(choice: str, emit, warn_cpu: bool = True) -> Any:
    """The device; on the CPU for want of a GPU, a warning (`warn_cpu`: training's, said
    once a run, not again by the evaluation after it)."""
    import torch

    if choice == "cuda" and not torch.cuda.is_available():
        raise UserError(
            'train.device = "cuda" but no GPU is visible: set it to "auto" or '
            '"cpu", or check the GPU driver'
        )
    if choice == "cpu" or not torch.cuda.is_available():
        if choice == "auto" and warn_cpu:
            emit.warn("no GPU found: running on the CPU, which suits the demo and smoke sizes only")
        return torch.device("cpu")
    return torch.device("cuda")


def resolve_precision(choice: str, device) -> Any:
    """The autocast dtype, or None for fp32."""
    import torch

    if device.type == "cpu":
        if choice == "fp16":
            raise UserError('train.precision = "fp16" needs a GPU: use "auto" or "fp32"')
        return torch.bfloat16 if choice == "bf16" else None
    if choice == "fp32":
        return None
    if choice == "fp16" or (choice == "auto" and not torch.cuda.is_bf16_supported()):
        return torch.float16
    return torch.bfloat16


def freeze(model, which: str) -> None:
    """model.freeze: "vision", "text", "both" (the heads alone train) or "none"."""
    towers = {
        "vision": [model.visual],
        "text": [model.bert],
        "both": [model.visual, model.bert],
        "none": [],
    }[which]
    for tower in towers:
        tower.requires_grad_(False)


def checkpointing(model) -> None:
    """Gradient checkpointing on both towers, through transformers' current name for it
    (the old one warns of its removal) and with the text tower's cache off (else each
    forward warns that checkpointing turned it off)."""
    for tower in (model.visual, model.bert):
        if hasattr(tower.config, "use_cache"):
            tower.config.use_cache = False
        enable = getattr(tower, "activation_checkpointing_enable", None)
        (enable or tower.gradient_checkpointing_enable)()


def forward(model, batch: dict[str, Any], device):
    """RetClipOutput for a batch, through the model's own forward (so DDP sees it); with
    per-eye texts, each text head reads its own text."""
    from .data import normalize

    move = {
        k: v.to(device, non_blocking=True)
        for k, v in batch.items()
        if hasattr(v, "to") and k != "text_ids"
    }
    for side in ("left", "right"):
        if side in move:
            move[side] = normalize(move[side])
    eye_texts = None
    if "ids_left" in move:
        eye_texts = (move["ids_left"], move["mask_left"], move["ids_right"], move["mask_right"])
    return model(move["left"], move.get("right"), move["ids"], move["mask"], eye_texts)
