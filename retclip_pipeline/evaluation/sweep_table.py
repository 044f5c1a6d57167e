"""A sweep's comparison: one row a variant (its varied settings, the mean of the six
retrieval recalls at the instance and class level, zero-shot accuracy and macro-F1), as
markdown, CSV, JSON and a bar chart. The rows come from compare.py; the sweep is sweep.py."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from ..layout import RunLayout
from .compare import read_results
from .compare import row as compare_row

# (title, where in evaluation_results.json): what a sweep compares
METRICS = [
    ("instance mean recall", "retrieval.instance.mean_recall_all"),
    ("class mean recall", "retrieval.class.mean_recall_all"),
    ("zero-shot acc", "zero_shot.templates.accuracy"),
    ("zero-shot macro-F1", "zero_shot.templates.macro_f1"),
]
TITLES = ["variant", "towers", *(title for title, _ in METRICS)]


def _dig(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return ""
        data = data[part]
    return data


def rows(variants: list[tuple[str, Path]]) -> list[dict[str, Any]]:
    """One row per (label, run folder); a variant not evaluated yet has empty figures."""
    out = []
    for label, folder in variants:
        results_path = RunLayout.of_folder(folder).results
        if not results_path.exists():
            out.append({"variant": label, "towers": "", "note": "not evaluated"})
            continue
        flat = compare_row(folder)
        results = read_results(results_path)
        entry = {"variant": label, "towers": flat.get("towers", ""), "run": str(folder)}
        entry |= {title: _dig(results, key) for title, key in METRICS}
        out.append(entry)
    return out


def _cell(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def markdown(table: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(TITLES) + " |", "|" + "---|" * len(TITLES)]
    lines += ["| " + " | ".join(_cell(r.get(t, "")) for t in TITLES) + " |" for r in table]
    return "\n".join(lines) + "\n"


def plain(table: list[dict[str, Any]]) -> str:
    cells = [TITLES] + [[_cell(r.get(t, "")) for t in TITLES] for r in table]
    widths = [max(len(line[i]) for line in cells) for i in range(len(TITLES))]
    return "".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() + "\n"
        for line in cells
    )


def to_csv(table: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(TITLES)
    writer.writerows([[_cell(r.get(t, "")) for t in TITLES] for r in table])
    return out.getvalue()


def figure(table: list[dict[str, Any]], path: Path) -> None:
    """Grouped bars: each metric's value for each variant."""
    import matplotlib

    matplotlib.use("Agg")  # files only
    import matplotlib.pyplot as plt

    from ..atomic import atomic_open

    titles = [title for title, _ in METRICS]
    count = max(1, len(table))
    width = 0.8 / count
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(titles) + 0.4 * count), 4.2))
    for number, entry in enumerate(table):
        values = [v if isinstance(v, int | float) else 0.0 for v in (entry.get(t) for t in titles)]
        offsets = [i + (number - (count - 1) / 2) * width for i in range(len(titles))]
        ax.bar(offsets, values, width, label=entry["variant"])
    ax.set_xticks(range(len(titles)), [t.replace(" ", "\n", 1) for t in titles])
    ax.set_ylim(0, 1)
    ax.set_ylabel("test split")
    ax.set_title("sweep: the variants compared")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1)
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def save(table: list[dict[str, Any]], layout: RunLayout) -> list[Path]:
    """The table as .md, .csv and .json and the figure, in the sweep folder."""
    from ..atomic import write_json, write_text

    write_text(layout.sweep_table(".md"), markdown(table))
    write_text(layout.sweep_table(".csv"), to_csv(table))
    write_json(layout.sweep_table(".json"), table)
    figure(table, layout.sweep_figure)
    return [layout.sweep_table(s) for s in (".md", ".csv", ".json")] + [layout.sweep_figure]


def load(layout: RunLayout) -> list[dict[str, Any]]:
    """A saved sweep's table (the wizard shows it), or [] when the folder has none."""
    try:
        table = json.loads(layout.sweep_table(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return table if isinstance(table, list) else []
