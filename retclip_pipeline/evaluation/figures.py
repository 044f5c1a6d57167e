"""The evaluation's figures (PNG): confusion matrix, per-class F1, training curves, and
retrieval examples."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server or in Colab's terminal
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    from ..atomic import atomic_open

    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=120, bbox_inches="tight")


def confusion(result: dict[str, Any], path: Path, title: str) -> None:
    plt = _pyplot()
    matrix, names = result["confusion_matrix"], result["classes"]
    size = max(5, 0.6 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            ax.text(
                j,
                i,
                count,
                ha="center",
                va="center",
                fontsize=7,
                color="white" if count > peak / 2 else "black",
            )
    ax.set_title(title)
    _save(fig, path)
    plt.close(fig)


def per_class_f1(result: dict[str, Any], path: Path, title: str) -> None:
    plt = _pyplot()
    names = list(result["per_class"])
    scores = [result["per_class"][n]["f1"] for n in names]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(names) + 1.5))
    ax.barh(names, scores, color="#3b75af")
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("F1")
    for y, score in enumerate(scores):
        ax.text(score + 0.01, y, f"{score:.2f}", va="center", fontsize=8)
    ax.set_title(title)
    _save(fig, path)
    plt.close(fig)


def curves(history: list[dict[str, Any]], path: Path) -> None:
    plt = _pyplot()
    epochs = [m["epoch"] for m in history]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for key, label in (("train_loss", "train loss"), ("val_loss", "validation loss")):
        if all(key in m for m in history):
            loss_ax.plot(epochs, [m[key] for m in history], marker="o", label=label)
    loss_ax.set_xlabel("epoch")
    loss_ax.legend()
    for key, label in (
        ("val_i2t", "image->text (in-batch)"),
        ("val_t2i", "text->image (in-batch)"),
        ("val_i2t_class", "image->text, class-level"),
        ("val_chance", "chance"),
    ):
        if all(key in m for m in history):
            acc_ax.plot(
                epochs,
                [m[key] for m in history],
                label=label,
                linestyle="--" if key == "val_chance" else "-",
            )
    acc_ax.set_xlabel("epoch")
    acc_ax.set_ylim(0, 1)
    acc_ax.legend(fontsize=8)
    fig.suptitle("training and validation")
    _save(fig, path)
    plt.close(fig)


def text_query(text: str, images: list, hits: list[bool], path: Path) -> None:
    """A text query and its top images, a green frame on those of the query's class."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(images), figsize=(2.2 * len(images), 3))
    for ax, image, hit in zip(axes, images, hits, strict=True):
        ax.imshow(image)
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_edgecolor("#2ca02c" if hit else "#d62728")
            spine.set_linewidth(4)
    fig.suptitle(textwrap.fill(text, 110), fontsize=8)
    _save(fig, path)
    plt.close(fig)


def image_query(image, texts: list[str], hits: list[bool], path: Path) -> None:
    """An image query and its top texts, marked when of the image's class."""
    plt = _pyplot()
    fig, (image_ax, text_ax) = plt.subplots(
        1, 2, figsize=(11, 3.2), gridspec_kw={"width_ratios": [1, 3]}
    )
    image_ax.imshow(image)
    image_ax.axis("off")
    text_ax.axis("off")
    lines = [
        f"{'+' if hit else '-'} {rank}. {textwrap.shorten(text, 120)}"
        for rank, (text, hit) in enumerate(zip(texts, hits, strict=True), start=1)
    ]
    text_ax.text(0, 1, "\n\n".join(lines), va="top", fontsize=8, family="monospace")
    fig.suptitle("image query: top texts (+ of the image's class)", fontsize=9)
    _save(fig, path)
    plt.close(fig)
