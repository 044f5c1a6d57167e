"""The evaluation's words: report.md, the caveats a reader must know before citing the
figures, and the summary lines the console prints."""

from __future__ import annotations

import json
from typing import Any

from ..data import own_tokens
from ..layout import RunLayout
from ..profile import Profile

DIRECTIONS = ("image_to_text", "text_to_image")  # the keys of each retrieval level


def caveats(layout: RunLayout, profile: Profile) -> list[str]:
    """What a reader must know before citing the figures."""
    out = []
    report_path = layout.convert_report
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        report = {}
    except (OSError, ValueError):  # damaged or not UTF-8: said, not a traceback
        report = None
    if not isinstance(report, dict):
        out.append(
            f"the conversion report {report_path} could not be read: its caveats (near "
            f"duplicates, truncated prompts, class balance) are unknown; rerun the convert "
            f"stage to have them"
        )
        report = {}
    near = _obj(report.get("near_duplicates"))
    if near and near.get("test_images_with_train_match"):
        out.append(
            f"{near['test_images_with_train_match']} of {near['test_images']} test images "
            f"are near duplicates of train images (perceptual hash within "
            f"{near['bits']} bits): test figures are optimistic."
        )
    tokens = _obj(own_tokens.read(layout)) or _obj(report.get("tokens"))  # a sweep variant's own
    if tokens.get("truncated"):
        out.append(
            f"{tokens['truncated']} of {tokens['prompts']} prompts "
            f"({tokens['truncated_share']:.0%}) exceed the context length "
            f"{tokens['context_length']} and were truncated."
        )
    per_class = _obj(_obj(_obj(report.get("splits")).get("train")).get("texts_per_class"))
    if per_class and all(isinstance(n, int) for n in per_class.values()):
        smallest, largest = min(per_class.values()), max(per_class.values())
        if largest > 3 * smallest:
            out.append(
                f"classes are imbalanced ({smallest} to {largest} train texts): read "
                f"balanced accuracy and macro-F1 beside accuracy."
            )
    out.append(
        "prompts describe the class, not the image: instance-level recall is capped "
        "(see the ceiling); class-level recall and zero-shot figures are the meaningful "
        "ones."
    )
    return out


def _obj(value: Any) -> dict[str, Any]:
    """A block of the report as an object, {} for JSON of another shape (edited by hand)."""
    return value if isinstance(value, dict) else {}


def _table(rows: list[list[Any]], header: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _retrieval_rows(block: dict[str, Any], flavour: str) -> list[list[Any]]:
    rows = []
    for direction in DIRECTIONS:
        v = block[direction]
        rows.append(
            [flavour, direction.replace("_", " "), *[v[f"R@{k}"] for k in (1, 5, 10)]]
            + [v["mean_recall"]]
        )
    return rows + [[flavour, "both (mean of six)", "", "", "", block["mean_recall_all"]]]


def render(results: dict[str, Any]) -> str:
    out = [
        f"# Evaluation of {results['run']}",
        "",
        f"Checkpoint: {results['checkpoint']}  ",
        f"Test split: {results['sizes']['test_images']} images, "
        f"{results['sizes']['test_texts']} texts.",
        "",
        "## Retrieval",
        "",
    ]
    retrieval = results["retrieval"]
    rows = _retrieval_rows(retrieval["instance"], "instance-level")
    if "class" in retrieval:
        rows += _retrieval_rows(retrieval["class"], "class-level")
    out.append(_table(rows, ["flavour", "direction", "R@1", "R@5", "R@10", "mean"]))
    if "instance_ceiling" in retrieval:
        ceiling = retrieval["instance_ceiling"]
        out += [
            "",
            "Instance-level ceiling of a perfect class-aware model: image->text "
            + ", ".join(f"{k} {v}" for k, v in ceiling["image_to_text"].items())
            + "; text->image "
            + ", ".join(f"{k} {v}" for k, v in ceiling["text_to_image"].items())
            + ".",
        ]
    for source, result in results.get("zero_shot", {}).items():
        if not isinstance(result, dict) or "accuracy" not in result:
            continue
        auc = result.get("auc_ovr", {}).get("macro", "n/a")
        out += [
            "",
            f"## Zero-shot classification ({source.replace('_', ' ')})",
            "",
            _table(
                [[result["accuracy"], result["balanced_accuracy"], result["macro_f1"], auc]],
                ["accuracy", "balanced accuracy", "macro-F1", "AUC (one-vs-rest)"],
            ),
            "",
            _table(
                [
                    [name, v["precision"], v["recall"], v["f1"], v["support"]]
                    for name, v in result["per_class"].items()
                ],
                ["class", "precision", "recall", "F1", "support"],
            ),
            "",
            f"![confusion matrix](confusion_{source}.png)",
            f"![per-class F1](per_class_f1_{source}.png)",
        ]
    out += _per_eye_sections(results.get("per_eye", {}))
    if "linear_probe" in results:
        probe = results["linear_probe"]
        out += [
            "",
            "## Linear probe (logistic regression on frozen single-eye features)",
            "",
            _table(
                [[probe["accuracy"], probe["balanced_accuracy"], probe["macro_f1"]]],
                ["accuracy", "balanced accuracy", "macro-F1"],
            ),
        ]
    if "note" in results:
        out += ["", f"Note: {results['note']}."]
    out += [
        "",
        "## Figures",
        "",
        "![training curves](training_curves.png)",
        "",
        "Retrieval examples: `example_text_query_*.png` (green frame: an image of the query's "
        "class), `example_image_query_*.png`.",
        "",
        "## Caveats",
        "",
    ]
    out += [f"- {caveat}" for caveat in results["caveats"]]
    return "\n".join(out) + "\n"


def _per_eye_sections(per_eye: dict[str, Any]) -> list[str]:
    """Each eye's retrieval (its image against its own prompt) and zero-shot figures."""
    if not per_eye:
        return []
    rows = []
    for side, result in per_eye.items():
        for flavour in ("instance", "class"):
            if flavour in result["retrieval"]:
                rows += [
                    [side, *row] for row in _retrieval_rows(result["retrieval"][flavour], flavour)
                ]
    out = [
        "",
        "## Per-eye retrieval (each eye's image against its own prompt)",
        "",
        _table(rows, ["eye", "flavour", "direction", "R@1", "R@5", "R@10", "mean"]),
    ]
    shots = [
        [side, source.replace("_", " "), r["accuracy"], r["balanced_accuracy"], r["macro_f1"]]
        + [r.get("auc_ovr", {}).get("macro", "n/a")]
        for side, result in per_eye.items()
        for source, r in result.get("zero_shot", {}).items()
        if isinstance(r, dict) and "accuracy" in r
    ]
    if shots:
        out += [
            "",
            "## Per-eye zero-shot classification (each eye's own class)",
            "",
            _table(
                shots,
                ["eye", "class embeddings", "accuracy", "balanced accuracy", "macro-F1", "AUC"],
            ),
        ]
    return out


def _per_eye_lines(per_eye: dict[str, Any]) -> list[str]:
    lines = []
    for side, result in per_eye.items():
        for flavour in ("instance", "class"):
            block = result["retrieval"].get(flavour)
            if block:
                lines.append(
                    f"{side} eye, {flavour}-level: image to text R@5 "
                    f"{block['image_to_text']['R@5']}, text to image R@5 "
                    f"{block['text_to_image']['R@5']}, mean of six {block['mean_recall_all']}"
                )
        templates = result.get("zero_shot", {}).get("templates")
        if templates:
            lines.append(
                f"{side} eye, zero-shot (templates): accuracy {templates['accuracy']}, "
                f"macro-F1 {templates['macro_f1']}"
            )
    return lines


def summary_lines(results: dict[str, Any]) -> list[str]:
    retrieval = results["retrieval"]
    lines = []
    for flavour in ("instance", "class"):
        if flavour in retrieval:
            for direction in DIRECTIONS:
                lines.append(
                    f"{flavour}-level {direction.replace('_', ' ')}: "
                    + ", ".join(f"{k} {v}" for k, v in retrieval[flavour][direction].items())
                )
            lines.append(
                f"{flavour}-level mean of the six recalls: {retrieval[flavour]['mean_recall_all']}"
            )
    for source, result in results.get("zero_shot", {}).items():
        if isinstance(result, dict) and "accuracy" in result:
            lines.append(
                f"zero-shot ({source.replace('_', ' ')}): accuracy {result['accuracy']}, "
                f"balanced {result['balanced_accuracy']}, macro-F1 {result['macro_f1']}"
            )
    lines += _per_eye_lines(results.get("per_eye", {}))
    if "linear_probe" in results:
        lines.append(
            "linear probe: " + ", ".join(f"{k} {v}" for k, v in results["linear_probe"].items())
        )
    lines.append(f"report: {results.get('run')} -> evaluation/report.md")
    return lines


def summary(results: dict[str, Any]) -> dict[str, Any]:
    out = {}
    retrieval = results["retrieval"]
    for flavour in ("instance", "class"):
        if flavour in retrieval:
            out[f"{flavour}_i2t_mean_recall"] = retrieval[flavour]["image_to_text"]["mean_recall"]
            out[f"{flavour}_mean_recall_all"] = retrieval[flavour]["mean_recall_all"]
    templates = results.get("zero_shot", {}).get("templates")
    if templates:
        out["zero_shot_accuracy"] = templates["accuracy"]
    for side, result in results.get("per_eye", {}).items():
        out[f"{side}_instance_mean_recall_all"] = result["retrieval"]["instance"]["mean_recall_all"]
        eye_templates = result.get("zero_shot", {}).get("templates")
        if eye_templates:
            out[f"{side}_zero_shot_accuracy"] = eye_templates["accuracy"]
    return out
