"""The evaluation's figures (PNG): confusion matrix, per-class F1, training curves, and
retrieval examples."""

from __future__ import annotations

import json
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
        if all(isinstance(m.get(key), int | float) for m in history):
            loss_ax.plot(epochs, [m[key] for m in history], marker="o", label=label)
    loss_ax.set_xlabel("epoch")
    if loss_ax.get_legend_handles_labels()[0]:  # a run without validation has no accuracy
        loss_ax.legend()
    for key, label in (
        ("val_i2t", "image->text (in-batch)"),
        ("val_t2i", "text->image (in-batch)"),
        ("val_i2t_class", "image->text, class-level"),
        ("val_chance", "chance"),
    ):
        if all(isinstance(m.get(key), int | float) for m in history):
            acc_ax.plot(
                epochs,
                [m[key] for m in history],
                label=label,
                linestyle="--" if key == "val_chance" else "-",
            )
    acc_ax.set_xlabel("epoch")
    acc_ax.set_ylim(0, 1)
    if acc_ax.get_legend_handles_labels()[0]:
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


def write_all(results, layout, test_images, texts, examples: int) -> None:
    """Every figure of the report, into the evaluation folder."""
    folder = layout.evaluation
    for source, result in results.get("zero_shot", {}).items():
        if isinstance(result, dict) and "confusion_matrix" in result:
            confusion(
                result,
                folder / f"confusion_{source}.png",
                f"zero-shot ({source.replace('_', ' ')})",
            )
            per_class_f1(
                result,
                folder / f"per_class_f1_{source}.png",
                f"per-class F1, zero-shot ({source.replace('_', ' ')})",
            )
    if layout.metrics.exists():  # this run's training, never another name's in logs/
        history = _history(layout.metrics)
        if history:
            curves(history, folder / "training_curves.png")
    if examples and results["sizes"]["test_images"] >= 5:
        _examples(layout, test_images, texts, examples)


def _history(path: Path) -> list[dict[str, Any]]:
    """The epochs' figures for the curves: a line that is not an epoch's record (torn by a
    kill, edited, not UTF-8) is left out of the picture, not a traceback that loses the
    evaluation."""
    history = []
    for raw in path.read_bytes().splitlines():
        try:
            record = json.loads(raw)
        except ValueError:  # JSON's errors and UnicodeDecodeError
            continue
        if isinstance(record, dict) and isinstance(record.get("epoch"), int | float):
            history.append(record)
    return history


def _examples(layout, images, texts, count: int) -> None:
    import torch
    from torch.nn import functional as F

    from ..data.lmdb_io import LmdbReader
    from ..training.data import decode
    from .features import split_texts

    folder = layout.evaluation
    words = {t["text_id"]: t["text"] for t in split_texts(layout.root, "test")}
    reader = LmdbReader(layout.lmdb_split("test"))
    sims = F.normalize(images["patient"], dim=-1) @ F.normalize(texts["patient"], dim=-1).t()
    generator = torch.Generator().manual_seed(0)
    for number in range(count):
        query = int(torch.randint(len(texts["ids"]), (1,), generator=generator))
        top = sims[:, query].topk(5).indices.tolist()
        pictures = [
            decode(reader.images_b64(images["ids"][i])[0]).permute(1, 2, 0).numpy() for i in top
        ]
        hits = [images["labels"][i] == texts["labels"][query] for i in top]
        text_query(
            words[texts["ids"][query]],
            pictures,
            hits,
            folder / f"example_text_query_{number + 1}.png",
        )
        image = int(torch.randint(len(images["ids"]), (1,), generator=generator))
        best = sims[image].topk(5).indices.tolist()
        image_query(
            decode(reader.images_b64(images["ids"][image])[0]).permute(1, 2, 0).numpy(),
            [words[texts["ids"][i]] for i in best],
            [texts["labels"][i] == images["labels"][image] for i in best],
            folder / f"example_image_query_{number + 1}.png",
        )
    reader.close()
