"""One table across runs' evaluations (for example the same data with different text
towers): the rows, as plain text and as markdown. The command is cli/compare.py."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..layout import RunLayout

COLUMNS = [
    ("run", "run"),
    ("towers", "towers"),
    ("checkpoint", "checkpoint"),
    ("inst. i2t R@1", "instance.image_to_text.R@1"),
    ("inst. i2t mean", "instance.image_to_text.mean_recall"),
    ("class i2t mean", "class.image_to_text.mean_recall"),
    ("class t2i mean", "class.text_to_image.mean_recall"),
    ("zero-shot acc", "zero_shot.templates.accuracy"),
    ("zero-shot bal.", "zero_shot.templates.balanced_accuracy"),
    ("zero-shot F1", "zero_shot.templates.macro_f1"),
    ("prompt-proto acc", "zero_shot.train_prompts.accuracy"),
    ("probe acc", "linear_probe.accuracy"),
]


def _dig(data: dict[str, Any], dotted: str) -> Any:
    value: Any = data
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return ""
        value = value[part]
    return value


def read_results(path: Path) -> dict[str, Any]:
    """A run's evaluation results, or one line naming the file: damaged, not UTF-8, or
    JSON that is not an object (a list, a number) were a traceback."""
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSON's are ValueErrors
        raise UserError(
            f"{path} cannot be read ({type(exc).__name__}): rerun that run's evaluate stage "
            f"(--stages evaluate)"
        ) from None
    if not isinstance(results, dict):
        raise UserError(
            f"{path} holds {type(results).__name__} where the evaluation's results (a JSON "
            f"object) should be: rerun that run's evaluate stage (--stages evaluate)"
        )
    return results


def row(run_dir: Path) -> dict[str, Any]:
    layout = RunLayout.of_folder(run_dir)
    results_path = layout.results
    if not results_path.exists():
        raise UserError(
            f"{run_dir} has no evaluation/evaluation_results.json: run its evaluate stage first"
        )
    results = read_results(results_path)
    flat = {
        "run": results.get("run", run_dir.name),
        "checkpoint": Path(str(results.get("checkpoint", ""))).name.split(" ")[0],
    }
    profile_path = layout.resolved_profile
    try:
        model = tomllib.loads(profile_path.read_text(encoding="utf-8")).get("model", {})
    except (OSError, ValueError):  # missing, damaged or not UTF-8: the towers read "?"
        model = None
    if isinstance(model, dict):
        flat["towers"] = f"{model.get('vision', '?')} + {model.get('text', '?')}"
    retrieval = results.get("retrieval", {})
    for title, key in COLUMNS[3:]:
        source = retrieval if key.startswith(("instance", "class")) else results
        flat[title] = _dig(source, key)
    return flat


def markdown(rows: list[dict[str, Any]]) -> str:
    titles = [title for title, _ in COLUMNS]
    lines = ["| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)]
    lines += ["| " + " | ".join(str(r.get(t, "")) for t in titles) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def plain(rows: list[dict[str, Any]]) -> str:
    titles = [title for title, _ in COLUMNS]
    widths = [max(len(t), *(len(str(r.get(t, ""))) for r in rows)) for t in titles]
    lines = ["  ".join(t.ljust(w) for t, w in zip(titles, widths, strict=True))]
    lines += [
        "  ".join(str(r.get(t, "")).ljust(w) for t, w in zip(titles, widths, strict=True))
        for r in rows
    ]
    return "\n".join(lines) + "\n"
