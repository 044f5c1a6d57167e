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


# The figures best.pt can be kept by, as a report names them.
FIGURE_LABELS = {
    "val_loss": "val loss",
    "val_i2t": "val i2t R@1",
    "val_t2i": "val t2i R@1",
    "val_i2t_class": "val class-level i2t R@1",
}


def lower_is_better(name: str) -> bool:
    """A loss falls as training improves; a recall or accuracy rises."""
    return "loss" in name


def default_figure(metrics: dict[str, Any]) -> str:
    """The class-level image->text figure when the test texts carry labels, else the loss."""
    return "val_i2t_class" if "val_i2t_class" in metrics else "val_loss"


def update_best(progress, cfg, metrics: dict[str, Any], emit) -> bool:
    """After a validation: whether the figure best.pt is kept by improved (the best so far,
    its epoch and the epochs without improvement are in `progress`, saved with every
    checkpoint). False when nothing was validated."""
    if "val_loss" not in metrics:
        return False
    name = progress.best_metric or cfg.best_metric or cfg.early_stop or default_figure(metrics)
    if name not in metrics:
        fallback = default_figure(metrics)
        emit.warn(
            f"train.best_metric: validation has no {name} (the test texts carry no labels): "
            f"best.pt is kept by {fallback}"
        )
        name = fallback
    progress.best_metric, value = name, metrics[name]
    best = progress.best
    if best is None or (value < best if lower_is_better(name) else value > best):
        progress.best, progress.best_epoch, progress.bad_epochs = value, progress.epoch, 0
        return True
    progress.bad_epochs += 1
    return False


def best_note(best: dict[str, Any]) -> str:
    """'best epoch 7 of 30 by val class-level i2t R@1 = 0.61' from a checkpoint's "best"."""
    label = FIGURE_LABELS.get(best["metric"], best["metric"])
    return f"best epoch {best['epoch']} of {best['epochs']} by {label} = {best['value']:.4g}"
