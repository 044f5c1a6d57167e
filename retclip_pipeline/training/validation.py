"""Validation during training: the loss and in-batch retrieval accuracy on the test split,
in a fixed order, each epoch."""

from __future__ import annotations

from typing import Any

from .device import forward


def validation_figures(model, batches, device, labels: dict[int, str], size: int) -> dict:
    """Loss and in-batch accuracy (image->text, text->image, and class-level: the text
    picked for an image has the image's label); chance is 1 / `size`."""
    import torch

    from ..model.loss import retclip_loss

    totals = {"val_loss": 0.0, "val_i2t": 0.0, "val_t2i": 0.0, "val_i2t_class": 0.0}
    count = labelled = 0
    with torch.no_grad():
        for batch in batches:
            out = forward(model, batch, device)
            loss, _ = retclip_loss(out)
            sims = (out.image @ out.text.t()).float()
            truth = torch.arange(sims.shape[0], device=sims.device)
            totals["val_loss"] += float(loss)
            totals["val_i2t"] += float((sims.argmax(1) == truth).float().mean())
            totals["val_t2i"] += float((sims.argmax(0) == truth).float().mean())
            ids = batch["text_ids"].tolist()
            if all(i in labels for i in ids):
                names = [labels[i] for i in ids]
                picked = sims.argmax(1).tolist()
                totals["val_i2t_class"] += _class_hits(names, picked) / len(ids)
                labelled += 1
            count += 1
    result: dict[str, Any] = {k: v / count for k, v in totals.items() if k != "val_i2t_class"}
    if labelled:
        result["val_i2t_class"] = totals["val_i2t_class"] / labelled
    result["val_chance"] = 1 / size
    return {k: round(v, 5) for k, v in result.items()}


def _class_hits(names: list[str], picked: list[int]) -> int:
    return sum(names[p] == names[i] for i, p in enumerate(picked))
