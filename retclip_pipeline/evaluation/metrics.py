"""Metrics from saved features, pure and fast (all of them for 3,253 pairs well under 1 s).

Retrieval comes in two flavours, labelled everywhere: instance-level (a hit is the paired
item, the reference's definition) and class-level (a hit is any item of the query's class).
Prompts that describe the class rather than the image cap instance-level recall; the
ceiling that a perfect class-aware model would reach is reported beside it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

KS = (1, 5, 10)


def _ranked(sims: torch.Tensor) -> np.ndarray:
    """Each row's first K candidates (K the largest of KS, or every candidate when fewer),
    most similar first, ties to the lower index as in the reference's stable sort."""
    k = min(max(KS), sims.shape[1])
    values, ranked = sims.topk(k, dim=1)
    # topk orders tied candidates as it likes, and the data holds exact duplicate images:
    # rows with a tie among their first k or at its edge are ranked by the stable sort.
    tied = (values[:, 1:] == values[:, :-1]).any(dim=1)
    tied |= (sims >= values[:, -1:]).sum(dim=1) > k
    rows = tied.nonzero().flatten()
    ranked[rows] = sims[rows].sort(dim=1, descending=True, stable=True).indices[:, :k]
    return ranked.numpy()


def _recalls(match: np.ndarray) -> dict[str, float]:
    """Unrounded R@K; match[q, r]: the r-th ranked candidate of query q is relevant. With
    fewer than K candidates, R@K counts a relevant one among all of them."""
    return {f"R@{k}": float(match[:, :k].any(axis=1).mean()) for k in KS}


def _level(i2t_match: np.ndarray, t2i_match: np.ndarray) -> dict[str, Any]:
    """Both directions' recalls, each direction's mean and the mean of all six (the figure
    papers cite), averaged before rounding."""
    directions = {"image_to_text": _recalls(i2t_match), "text_to_image": _recalls(t2i_match)}
    out: dict[str, Any] = {
        name: {k: round(v, 4) for k, v in recalls.items()}
        | {"mean_recall": round(float(np.mean(list(recalls.values()))), 4)}
        for name, recalls in directions.items()
    }
    every = [v for recalls in directions.values() for v in recalls.values()]
    out["mean_recall_all"] = round(float(np.mean(every)), 4)
    return out


def _codes(values: list) -> np.ndarray:
    index: dict = {}
    return np.array([index.setdefault(v, len(index)) for v in values])


def retrieval(
    images: torch.Tensor,
    texts: torch.Tensor,
    image_ids: list,
    text_image_ids: list,
    image_labels: list | None,
    text_labels: list | None,
) -> dict[str, Any]:
    """Recall@1/5/10 image->text and text->image, instance- and class-level, and per level
    the mean of the six (`mean_recall_all`)."""
    sims = F.normalize(images.float(), dim=-1) @ F.normalize(texts.float(), dim=-1).t()
    i2t = _ranked(sims)  # (images, up to 10) text indices
    t2i = _ranked(sims.t())  # (texts, up to 10) image indices
    position = {image_id: row for row, image_id in enumerate(image_ids)}
    # Each text's owner images as a padded matrix of image rows (-1 pads).
    width = max(len(ids) for ids in text_image_ids)
    owners = np.full((len(text_image_ids), width), -1)
    for row, ids in enumerate(text_image_ids):
        owners[row, : len(ids)] = [position.get(i, -1) for i in ids]
    image_rows = np.arange(len(image_ids))
    i2t_match = (owners[i2t] == image_rows[:, None, None]).any(axis=2)
    t2i_match = (owners[:, None, :] == t2i[:, :, None]).any(axis=2)
    result: dict[str, Any] = {"instance": _level(i2t_match, t2i_match)}
    labelled = image_labels and text_labels and all(image_labels) and all(text_labels)
    if labelled:
        codes = _codes(list(image_labels) + list(text_labels))
        image_codes, text_codes = codes[: len(image_labels)], codes[len(image_labels) :]
        result["class"] = _level(
            text_codes[i2t] == image_codes[:, None], image_codes[t2i] == text_codes[:, None]
        )
        result["instance_ceiling"] = instance_ceiling(image_labels, text_labels)
    return result


def instance_ceiling(image_labels: list, text_labels: list) -> dict[str, dict[str, float]]:
    """Expected instance-level recall of a perfect model that knows only the class: it ranks
    the items of the right class first, in random order, so R@K = min(1, K / class size); 0
    for a query whose class the other side lacks (nothing of it can be found)."""
    images, texts = Counter(image_labels), Counter(text_labels)

    def expected(queries: list, pool: Counter) -> dict[str, float]:
        return {
            f"R@{k}": round(
                float(np.mean([min(1.0, k / pool[q]) if pool[q] else 0.0 for q in queries])), 4
            )
            for k in KS
        }

    return {
        "image_to_text": expected(image_labels, texts),
        "text_to_image": expected(text_labels, images),
    }


def class_embeddings(text_features: torch.Tensor, owners: list[int], count: int) -> torch.Tensor:
    """Per class, the normalised mean of its normalised text embeddings."""
    features = F.normalize(text_features.float(), dim=-1)
    sums = torch.zeros(count, features.shape[1])
    sums.index_add_(0, torch.tensor(owners), features)
    return F.normalize(sums, dim=-1)


def headline(truth: list[int], predicted, count: int) -> dict[str, float]:
    """Accuracy, balanced accuracy and macro-F1, the F1 averaged over the classes the test
    split holds (a class with no test item has no F1 to average): one definition for the
    zero-shot figures and the linear probe."""
    from sklearn import metrics

    _, _, f1, support = metrics.precision_recall_fscore_support(
        truth, predicted, labels=list(range(count)), zero_division=0
    )
    return {
        "accuracy": round(float(metrics.accuracy_score(truth, predicted)), 4),
        "balanced_accuracy": round(float(metrics.balanced_accuracy_score(truth, predicted)), 4),
        "macro_f1": round(float(f1[support > 0].mean()), 4),
    }


def classification(truth: list[int], scores: np.ndarray, names: list[str]) -> dict[str, Any]:
    """Accuracy, balanced accuracy, macro-F1, per-class P/R/F1, one-vs-rest AUC, confusion."""
    from sklearn import metrics

    predicted = scores.argmax(axis=1)
    labels = list(range(len(names)))
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        truth, predicted, labels=labels, zero_division=0
    )
    out: dict[str, Any] = headline(truth, predicted, len(names)) | {
        "per_class": {
            name: {
                "precision": round(float(p), 4),
                "recall": round(float(r), 4),
                "f1": round(float(f), 4),
                "support": int(s),
            }
            for name, p, r, f, s in zip(names, precision, recall, f1, support, strict=True)
        },
        "confusion_matrix": metrics.confusion_matrix(truth, predicted, labels=labels).tolist(),
        "classes": names,
    }
    present = sorted(set(truth))
    if len(present) > 1:
        probs = torch.softmax(torch.tensor(scores, dtype=torch.float64) * 100, dim=1).numpy()
        aucs = {
            names[c]: round(float(metrics.roc_auc_score(np.equal(truth, c), probs[:, c])), 4)
            for c in present
        }
        out["auc_ovr"] = {"macro": round(float(np.mean(list(aucs.values()))), 4), "per_class": aucs}
    return out


def linear_probe(
    train_x: torch.Tensor,
    train_y: list[int],
    test_x: torch.Tensor,
    test_y: list[int],
    seed: int = 0,
) -> dict[str, float]:
    """A logistic regression on frozen, normalised image features: fit on train, score test."""
    from sklearn.linear_model import LogisticRegression

    classifier = LogisticRegression(max_iter=2000, random_state=seed)
    classifier.fit(F.normalize(train_x.float(), dim=-1).numpy(), train_y)
    predicted = classifier.predict(F.normalize(test_x.float(), dim=-1).numpy())
    return headline(test_y, predicted, max([*train_y, *test_y]) + 1)
