"""Per-eye figures of a paired-eyes run: each eye's retrieval (the eye's mapped image
feature against the eye's own prompt, read by the eye's own text head), instance-level and,
where the CSV names each eye's class, class-level; and each eye's zero-shot classification
over the classes the eyes' labels name."""

from __future__ import annotations

from typing import Any

SIDES = ("left", "right")


def has_eye_texts(texts: list[dict[str, Any]]) -> bool:
    return bool(texts) and all("text_left" in t and "text_right" in t for t in texts)


def evaluate(encode, images: dict[str, Any], texts: list, train_texts: list, cfg) -> dict:
    """{side: {"retrieval": ..., "zero_shot": ... (with eye labels)}} and the eye text
    features by side. `encode(side, texts)` gives that side's text head's features."""
    from . import metrics, zero_shot

    out: dict[str, Any] = {}
    features = {}
    classes = sorted(
        {
            label
            for side in SIDES
            for label in [
                *images.get(f"labels_{side}", []),
                *(t.get(f"label_{side}") for t in train_texts),
            ]
            if label
        }
    )
    for side in SIDES:
        vectors = encode(side, [t[f"text_{side}"] for t in texts])
        features[side] = vectors
        image_labels = images.get(f"labels_{side}")
        result: dict[str, Any] = {
            "retrieval": metrics.retrieval(
                images[side],
                vectors,
                images["ids"],
                [t["image_ids"] for t in texts],
                image_labels,
                [t.get(f"label_{side}") for t in texts],
            )
        }
        if image_labels and all(image_labels) and len(classes) > 1:
            index = {name: i for i, name in enumerate(classes)}
            side_train = [
                {"text": t[f"text_{side}"], "label": t.get(f"label_{side}")}
                for t in train_texts
                if f"text_{side}" in t
            ]
            result["zero_shot"], _ = zero_shot.evaluate(
                lambda batch, side=side: encode(side, batch),
                images[side],
                classes,
                [index[label] for label in image_labels],
                side_train,
                cfg,
            )
        out[side] = result
    return out, features
