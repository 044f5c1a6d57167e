"""Zero-shot classification: class embeddings from the profile's templates (and from the
training prompts), and the test images scored against them."""

from __future__ import annotations

import re
from typing import Any


def class_name(label: str, names: dict[str, str]) -> str:
    """How a label reads in a prompt: the profile's choice, or the label in lower case
    without bracketed notes ("Central Serous Chorioretinopathy [Color Fundus]")."""
    if label in names:
        return names[label]
    return re.sub(r"\s*[\[(].*?[\])]", "", label).strip().lower()


def template_prompts(classes: list[str], eval_cfg) -> tuple[list[str], list[int], list[str]]:
    """(every template filled with every class name, the class each prompt is of, the names)."""
    names = [class_name(c, eval_cfg.class_names) for c in classes]
    prompts = [template.format(name) for name in names for template in eval_cfg.templates]
    owners = [i for i in range(len(classes)) for _ in eval_cfg.templates]
    return prompts, owners, names


def evaluate(encode_texts, image_patient, classes: list[str], truth: list[int], train_texts, cfg):
    """(results by class-embedding source, the class embeddings saved beside them).
    `encode_texts(texts)` gives the patient text features of a list of texts."""
    import torch

    from .metrics import class_embeddings, classification

    prompts, owners, names = template_prompts(classes, cfg)
    image_vectors = torch.nn.functional.normalize(image_patient, dim=-1)
    record: dict[str, Any] = {
        "classes": classes,
        "templates": class_embeddings(encode_texts(prompts), owners, len(classes)),
    }
    results: dict[str, Any] = {
        "templates": classification(
            truth, (image_vectors @ record["templates"].t()).numpy(), classes
        )
    }
    index = {name: i for i, name in enumerate(classes)}
    labelled = [t for t in train_texts if t.get("label") in index]
    if labelled:
        prototypes = class_embeddings(
            encode_texts([t["text"] for t in labelled]),
            [index[t["label"]] for t in labelled],
            len(classes),
        )
        record["train_prompts"] = prototypes
        results["train_prompts"] = classification(
            truth, (image_vectors @ prototypes.t()).numpy(), classes
        )
    results |= {
        "class_names": dict(zip(classes, names, strict=True)),
        "templates_used": cfg.templates,
    }
    return results, record
