"""The model card of a finished run (README.md of its hub repo): the data set, its sizes, the
settings, the evaluation's figures, how to load the export, and the RET-CLIP citation. The
YAML front matter is huggingface_hub's ModelCardData. Nothing here knows the token, and no
local path goes into the card: a tower or a data set in a local folder is named by the
folder's name only. The upload is hub/push.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..layout import RunLayout
from ..profile import Profile

TAGS = ["retclip", "clip", "vision-language", "ophthalmology", "fundus", "retina", "medical"]
POOLED = ("BertModel", "RobertaModel", "XLMRobertaModel")  # text towers with a pooler option
FIGURES = "figures"  # the repo folder the evaluation's PNGs go to

CITATION = """\
@inproceedings{du2024retclip,
  title     = {{RET-CLIP}: A Retinal Image Foundation Model Pre-trained with Clinical
               Diagnostic Reports},
  author    = {Du, Jiawei and Guo, Jia and Zhang, Weihang and Yang, Shengzhu and
               Liu, Hanruo and Li, Huiqi and Wang, Ningli},
  booktitle = {Medical Image Computing and Computer Assisted Intervention -- MICCAI 2024},
  year      = {2024},
  eprint    = {2405.14137},
  archivePrefix = {arXiv},
  primaryClass  = {cs.CV},
  url       = {https://arxiv.org/abs/2405.14137}
}"""


def _public(value: str) -> str:
    """A setting as the card may show it: a local path becomes its last part."""
    if value.startswith(("/", "~", ".")) or Path(value).is_absolute():
        return f"{Path(value).name} (a local folder)"
    return value


def dataset_id(profile: Profile) -> tuple[str, str | None]:
    """(as the card shows it, the hub id for the YAML's `datasets` or None)."""
    kind, where = profile.dataset_source()
    if kind == "hub":
        return where, where
    return f"{Path(where).name} (a local folder)", None


def _object(value: Any) -> dict[str, Any]:
    """A JSON object read from a run's files, or {} for anything else (a list, a number, a
    string edited in by hand): the card then shows "?" where the figure was, never a
    traceback."""
    return value if isinstance(value, dict) else {}


def _summary(layout: RunLayout, stage: str) -> dict[str, Any]:
    from ..state import RunState

    return _object(_object(RunState.load(layout.root).stages.get(stage)).get("summary"))


def sizes(layout: RunLayout) -> dict[str, int]:
    """train/test image and pair counts, from the convert stage's record or its report."""
    summary = _summary(layout, "convert")
    if summary:
        return {k: int(v) for k, v in summary.items() if isinstance(v, int)}
    try:
        report = json.loads(layout.convert_report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    out = {}
    for split, figures in _object(_object(report).get("splits")).items():
        figures = _object(figures)
        out[f"{split}_images"] = figures.get("images_written", "?")
        out[f"{split}_pairs"] = figures.get("pairs_written", "?")
    return out


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def settings_rows(profile: Profile, trained: dict[str, Any]) -> list[list[Any]]:
    model, train, data = profile.model, profile.train, profile.data
    rows = [
        ["vision tower", _public(model.vision)],
        ["text tower", _public(model.text)],
        ["started from", _started_from(model)],
        ["context length", model.context_length],
        ["image size (stored)", f"{data.image_size} px"],
        ["eyes", data.eyes],
        ["epochs", trained.get("epochs", train.epochs)],
        ["steps", trained.get("steps", "")],
        ["batch", train.batch_size],
        ["gradient accumulation", train.accumulation],
        ["learning rate", train.lr],
        ["weight decay", train.weight_decay],
        ["warm-up steps", train.warmup_steps],
        ["precision", _precision(train.precision, trained.get("precision"))],
        ["frozen towers", model.freeze],
        ["sizing", profile.sizing.mode],
    ]
    return [row for row in rows if row[1] != ""]


def _started_from(model) -> str:
    """What the towers' weights were before training: a checkpoint (model.init), each
    tower's pretrained weights, or a random initialisation (the tiny preset)."""
    from ..model.sources import TINY

    if model.init:
        return _public(model.init)
    random = [kind for kind in ("vision", "text") if getattr(model, kind) == TINY]
    if len(random) == 2:
        return "random initialisation (the tiny preset towers)"
    if random:
        other = "text" if random == ["vision"] else "vision"
        return f"random initialisation for the {random[0]} tower (tiny), pretrained {other} tower"
    return "the towers' pretrained weights"


def _precision(asked: str, used: str | None) -> str:
    """The precision training computed in: "auto" as it resolved ("bf16 (auto)")."""
    if asked == "auto":
        return (
            f"{used} (auto)"
            if used
            else "auto (bf16 on a GPU that has it, else fp16; fp32 on the CPU)"
        )
    return asked


def metrics_tables(results: dict[str, Any]) -> list[str]:
    """The evaluation's figures as markdown tables: retrieval (instance and class level),
    zero-shot classification, the linear probe."""
    out, rows = [], []
    results = _object(results)
    for level in ("instance", "class"):
        block = _object(results.get("retrieval")).get(level)
        if not isinstance(block, dict):
            continue
        for direction in ("image_to_text", "text_to_image"):
            v = _object(block.get(direction))
            rows.append(
                [f"{level}-level", direction.replace("_", " ")]
                + [v.get(k, "") for k in ("R@1", "R@5", "R@10", "mean_recall")]
            )
        rows.append(
            [f"{level}-level", "both (mean of six)", "", "", "", block.get("mean_recall_all", "")]
        )
    if rows:
        out += [_table(["retrieval", "direction", "R@1", "R@5", "R@10", "mean recall"], rows), ""]
    rows = []
    for source, result in _object(results.get("zero_shot")).items():
        if isinstance(result, dict) and "accuracy" in result:
            auc = _object(result.get("auc_ovr")).get("macro", "n/a")
            rows.append(
                [source.replace("_", " "), result["accuracy"]]
                + [result.get(k, "") for k in ("balanced_accuracy", "macro_f1")]
                + [auc]
            )
    if rows:
        header = ["zero-shot prompts", "accuracy", "balanced accuracy", "macro-F1", "AUC (OvR)"]
        out += [_table(header, rows), ""]
    probe = results.get("linear_probe")
    if isinstance(probe, dict) and "accuracy" in probe:
        row = [probe["accuracy"], probe.get("balanced_accuracy", ""), probe.get("macro_f1", "")]
        out += [_table(["linear probe accuracy", "balanced accuracy", "macro-F1"], [row]), ""]
    return out


def _architecture(export: Path, tower: str) -> str:
    try:
        config = json.loads((export / tower / "config.json").read_text(encoding="utf-8"))
        return (config.get("architectures") or [config.get("model_type", "?")])[0]
    except (OSError, ValueError):
        return "?"


def _figures_section(figures: list[str]) -> list[str]:
    if not figures:
        return []
    out = ["## Figures", ""]
    titled = [
        ("training_curves.png", "training curves"),
        *((name, "confusion matrix") for name in figures if name.startswith("confusion_")),
        *((name, "per-class F1") for name in figures if name.startswith("per_class_f1_")),
    ]
    for name, title in titled:
        if name in figures:
            source = Path(name).stem.removeprefix("confusion_").removeprefix("per_class_f1_")
            caption = title if name == "training_curves.png" else f"{title} ({source})"
            caption = caption.replace("_", " ")
            out += [f"![{caption}]({FIGURES}/{name})", ""]
    examples = [name for name in figures if name.startswith("example_")]
    if examples:
        out += [
            "Retrieval examples (a green frame marks an image of the query's class): "
            + ", ".join(f"[{Path(name).stem}]({FIGURES}/{name})" for name in examples),
            "",
        ]
    return out


def _loading_section(repo_id: str, export: Path, context_length: int) -> list[str]:
    vision, text = _architecture(export, "vision"), _architecture(export, "text")
    # the export keeps no pooler (RET-CLIP reads the [CLS] state): don't build a random one
    pooler = ", add_pooling_layer=False" if text in POOLED else ""
    return [
        "## How to load it",
        "",
        "The repository is the run's export: `vision/` and `text/` (transformers "
        "`save_pretrained` folders, the tokenizer in `text/`), the projection heads and logit "
        "scale in `heads.pt` with `retclip_config.json`, and the same weights in the RET-CLIP "
        "reference code's layout in `retclip_state_dict.pt`.",
        "",
        "With this project's `retclip_pipeline` package installed, the whole model (towers "
        "and heads), giving the embeddings training learnt:",
        "",
        "```python",
        "from pathlib import Path",
        "",
        "import torch",
        "from huggingface_hub import snapshot_download",
        "from retclip_pipeline.model.export import load_exported",
        "from retclip_pipeline.model.tokenizer import encode_texts",
        "",
        f'folder = Path(snapshot_download("{repo_id}"))',
        "model, tokenizer = load_exported(folder)",
        f'ids, mask = encode_texts(tokenizer, ["optic disc swelling"], {context_length})',
        "with torch.no_grad():",
        "    texts = model.encode_text(ids, mask)[0]  # patient-level text features",
        "    # images: a batch of 3 x H x W tensors, CLIP-normalised",
        "    size = model.visual.config.image_size",
        "    images = model.encode_image(torch.zeros(1, 3, size, size))[0]",
        "```",
        "",
        "The towers alone, with transformers (their outputs before RET-CLIP's projection heads):",
        "",
        "```python",
        "from transformers import AutoModel, AutoTokenizer",
        "",
        f'vision = AutoModel.from_pretrained("{repo_id}", subfolder="vision")  # {vision}',
        f'text = AutoModel.from_pretrained("{repo_id}", subfolder="text"{pooler})  # {text}',
        f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}", subfolder="text")',
        "```",
        "",
        "A run folder of the pipeline loads with `from retclip_pipeline import api; "
        'run = api.load("runs/NAME")`, which also encodes image files '
        "(`run.encode_images`, `run.encode_texts`, `run.classify`).",
        "",
    ]


def build(
    layout: RunLayout,
    profile: Profile,
    results: dict[str, Any],
    repo_id: str,
    figures: list[str],
    license: str = "other",
):
    """The card, as a huggingface_hub ModelCard."""
    from huggingface_hub import ModelCard, ModelCardData

    shown, hub_id = dataset_id(profile)
    results = _object(results)
    trained = _summary(layout, "train")
    counts = sizes(layout)
    data = ModelCardData(
        license=license,
        library_name="transformers",
        tags=TAGS,
        datasets=[hub_id] if hub_id else None,
        pipeline_tag="zero-shot-image-classification",
    )
    size_rows = [
        [split, counts.get(f"{split}_images", "?"), counts.get(f"{split}_pairs", "?")]
        for split in ("train", "test")
    ]
    # Paired eyes: one record is a patient (a left and a right image), one pair a patient's.
    paired = profile.data.eyes == "paired"
    things = "patients" if paired else "images"
    header = (
        ["split", "patients (two eye images each)", "patient-text pairs"]
        if paired
        else ["split", "images", "image-text pairs"]
    )
    tested = _object(results.get("sizes"))
    body = [
        f"# {repo_id.split('/')[-1]}",
        "",
        f"A RET-CLIP retinal vision-language model (run `{profile.name}`), trained with the "
        "retclip pipeline: contrastive image-text pre-training on fundus photographs and "
        "their reports, after RET-CLIP (Du et al., MICCAI 2024).",
        "",
        "## Data",
        "",
        f"Data set: `{shown}`",
        "",
        _table(header, size_rows),
        "",
        "## Settings",
        "",
        _table(["setting", "value"], settings_rows(profile, trained)),
        "",
        "## Evaluation",
        "",
        f"On the test split ({tested.get('test_images', '?')} {things}, "
        f"{tested.get('test_texts', '?')} texts), checkpoint "
        f"`{_checkpoint_name(str(results.get('checkpoint', '?')))[0]}`:",
        "",
        *metrics_tables(results),
    ]
    caveats = results.get("caveats") or []
    caveats = [caveats] if isinstance(caveats, str) else caveats
    if isinstance(caveats, list) and caveats:
        body += ["Before citing these figures:", ""] + [f"- {c}" for c in caveats] + [""]
    body += _figures_section(figures)
    body += _loading_section(repo_id, layout.export, profile.model.context_length)
    body += ["## Citation", "", "```bibtex", CITATION, "```"]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body) + "\n")


def public_results(results: dict[str, Any]) -> dict[str, Any]:
    """The evaluation results as the repo gets them: the checkpoint by its file name only."""
    out = dict(_object(results))
    if "checkpoint" in out:
        name, rest = _checkpoint_name(str(out["checkpoint"]))
        out["checkpoint"] = f"{name} {rest}" if rest else name
    return out


def _checkpoint_name(said: str) -> tuple[str, str]:
    """ "/content/drive/My Drive/.../best.pt (best epoch 3 ...)" as ("best.pt", "(best ...)"):
    the path may hold spaces, so it ends where the parenthesis begins."""
    path, paren, rest = said.partition(" (")
    return Path(path).name, (paren.strip() + rest) if paren else ""
