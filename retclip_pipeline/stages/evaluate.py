"""The evaluation stage: features of the test split under a checkpoint, retrieval
(instance- and class-level), zero-shot classification (from templates and from the training
prompts), a linear probe, figures, evaluation_results.json and report.md."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from ..atomic import write_json, write_text
from ..profile import Profile, file_identity
from ..stage import Stage, StageContext

SCHEMA_VERSION = 1
DIRECTIONS = ("image_to_text", "text_to_image")  # the keys of each retrieval level


def out_dir(workdir: Path) -> Path:
    return workdir / "evaluation"


def _outputs(profile: Profile, workdir: Path) -> list[Path]:
    folder = out_dir(workdir)
    return [
        folder / "evaluation_results.json",
        folder / "report.md",
        folder / "test_imgs_features.pt",
        folder / "test_texts_features.pt",
    ]


def _inputs(profile: Profile, workdir: Path) -> list[str]:
    from ..evaluation.features import checkpoint_path

    return [str(workdir / "lmdb" / "test"), checkpoint_path(profile, workdir)]


def _extra_fingerprint(profile: Profile) -> dict[str, Any]:
    # The checkpoint's identity: a newly trained one makes the evaluation stale.
    from ..evaluation.features import checkpoint_path

    path = checkpoint_path(profile, profile.workdir_path())
    if path == "init":
        return {"checkpoint": "init"}
    return {"checkpoint": file_identity(Path(path)) if Path(path).is_file() else "missing"}


def class_name(label: str, names: dict[str, str]) -> str:
    """How a label reads in a prompt: the profile's choice, or the label in lower case
    without bracketed notes ("Central Serous Chorioretinopathy [Color Fundus]")."""
    if label in names:
        return names[label]
    return re.sub(r"\s*[\[(].*?[\])]", "", label).strip().lower()


def run(ctx: StageContext) -> dict[str, Any]:
    import torch

    from ..evaluation import features as feats
    from ..evaluation import metrics
    from ..model.build import image_size_of
    from ..training.device import resolve_device, resolve_precision

    profile, workdir, emit = ctx.profile, ctx.workdir, ctx.emit
    folder = out_dir(workdir)
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = feats.checkpoint_path(profile, workdir)
    model, tokenizer, described = feats.load_model(profile, checkpoint)
    emit.log(f"evaluating {described}")
    device = resolve_device(profile.train.device, emit)
    dtype = resolve_precision(profile.train.precision, device)
    model.to(device)
    size = image_size_of(profile.model_spec())
    cfg, context = profile.eval, profile.model.context_length
    started = time.perf_counter()

    def progress(task: str):
        return lambda done, total: emit.progress(task, done, total, "images")

    workers = profile.train.workers
    test_images = feats.image_features(
        model,
        workdir,
        "test",
        size,
        cfg.batch_size,
        device,
        dtype,
        progress("test image features"),
        workers,
    )
    test_texts = feats.split_texts(workdir, "test")
    text_vectors = feats.text_features(
        model, tokenizer, [t["text"] for t in test_texts], context, cfg.batch_size, device, dtype
    )
    text_record = {
        "ids": [t["text_id"] for t in test_texts],
        "labels": [t.get("label") for t in test_texts],
        "image_ids": [t["image_ids"] for t in test_texts],
        **text_vectors,
    }
    _save_pt(folder / "test_imgs_features.pt", test_images)
    _save_pt(folder / "test_texts_features.pt", text_record)
    extraction_s = time.perf_counter() - started

    started = time.perf_counter()
    results: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "run": profile.name,
        "checkpoint": described,
        "fingerprint": ctx.fingerprint,
        "sizes": {"test_images": len(test_images["ids"]), "test_texts": len(test_texts)},
        "retrieval": metrics.retrieval(
            test_images["patient"],
            text_record["patient"],
            test_images["ids"],
            text_record["image_ids"],
            test_images["labels"],
            text_record["labels"],
        ),
    }
    labels = test_images["labels"]
    if all(labels):
        train_texts = feats.split_texts(workdir, "train")
        classes = sorted({*labels, *(t.get("label") for t in train_texts if t.get("label"))})
        index = {name: i for i, name in enumerate(classes)}
        truth = [index[label] for label in labels]
        names = [class_name(c, cfg.class_names) for c in classes]
        prompts = [template.format(name) for name in names for template in cfg.templates]
        owners = [i for i in range(len(classes)) for _ in cfg.templates]
        template_vectors = feats.text_features(
            model, tokenizer, prompts, context, cfg.batch_size, device, dtype
        )["patient"]
        image_vectors = torch.nn.functional.normalize(test_images["patient"], dim=-1)
        # Saved, so that every zero-shot figure can be recomputed from files alone.
        class_record = {
            "classes": classes,
            "templates": metrics.class_embeddings(template_vectors, owners, len(classes)),
        }
        zero_shot = {
            "templates": metrics.classification(
                truth, (image_vectors @ class_record["templates"].t()).numpy(), classes
            )
        }
        labelled = [t for t in train_texts if t.get("label") in index]
        if labelled:
            train_vectors = feats.text_features(
                model,
                tokenizer,
                [t["text"] for t in labelled],
                context,
                cfg.batch_size,
                device,
                dtype,
            )["patient"]
            prototypes = metrics.class_embeddings(
                train_vectors, [index[t["label"]] for t in labelled], len(classes)
            )
            class_record["train_prompts"] = prototypes
            zero_shot["train_prompts"] = metrics.classification(
                truth, (image_vectors @ prototypes.t()).numpy(), classes
            )
        _save_pt(folder / "class_embeddings.pt", class_record)
        results["zero_shot"] = zero_shot | {
            "class_names": dict(zip(classes, names, strict=True)),
            "templates_used": cfg.templates,
        }
        if cfg.linear_probe:
            train_images = feats.image_features(
                model,
                workdir,
                "train",
                size,
                cfg.batch_size,
                device,
                dtype,
                progress("train image features"),
                workers,
            )
            _save_pt(folder / "train_imgs_features.pt", train_images)
            known = [i for i, label in enumerate(train_images["labels"]) if label in index]
            if len({train_images["labels"][i] for i in known}) > 1:
                results["linear_probe"] = metrics.linear_probe(
                    train_images["eye"][known],
                    [index[train_images["labels"][i]] for i in known],
                    test_images["eye"],
                    truth,
                    profile.train.seed,
                )
    else:
        results["note"] = "the test images carry no labels: retrieval only"
    results["seconds"] = {
        "features": round(extraction_s, 2),
        "metrics": round(time.perf_counter() - started, 2),
    }
    results["caveats"] = _caveats(workdir, profile)
    _figures(results, workdir, folder, model, test_images, text_record, device, dtype, cfg)
    write_json(folder / "evaluation_results.json", results)
    write_text(folder / "report.md", _report(results))
    for line in _summary_lines(results):
        emit.log(line)
    return _summary(results)


def _save_pt(path: Path, data: dict[str, Any]) -> None:
    import torch

    from ..atomic import atomic_open

    with atomic_open(path, "wb") as handle:
        torch.save(data, handle)


def _caveats(workdir: Path, profile: Profile) -> list[str]:
    """What a reader must know before citing the figures."""
    out = []
    report_path = workdir / "data" / "convert_report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    near = report.get("near_duplicates")
    if near and near.get("test_images_with_train_match"):
        out.append(
            f"{near['test_images_with_train_match']} of {near['test_images']} test images "
            f"are near duplicates of train images (perceptual hash within "
            f"{near['bits']} bits): test figures are optimistic."
        )
    tokens = report.get("tokens", {})
    if tokens.get("truncated"):
        out.append(
            f"{tokens['truncated']} of {tokens['prompts']} prompts "
            f"({tokens['truncated_share']:.0%}) exceed the context length "
            f"{tokens['context_length']} and were truncated."
        )
    per_class = report.get("splits", {}).get("train", {}).get("texts_per_class", {})
    if per_class:
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


def _figures(results, workdir, folder, model, test_images, texts, device, dtype, cfg) -> None:
    from ..evaluation import figures

    for source, result in results.get("zero_shot", {}).items():
        if isinstance(result, dict) and "confusion_matrix" in result:
            figures.confusion(
                result,
                folder / f"confusion_{source}.png",
                f"zero-shot ({source.replace('_', ' ')})",
            )
            figures.per_class_f1(
                result,
                folder / f"per_class_f1_{source}.png",
                f"per-class F1, zero-shot ({source.replace('_', ' ')})",
            )
    history_path = None
    for path in sorted((workdir / "logs").glob("*/metrics.jsonl")):
        history_path = path
    if history_path:
        history = [json.loads(line) for line in history_path.read_text().splitlines()]
        if history:
            figures.curves(history, folder / "training_curves.png")
    if cfg.examples and results["sizes"]["test_images"] >= 5:
        _examples(workdir, folder, test_images, texts, cfg.examples)


def _examples(workdir, folder, images, texts, count: int) -> None:
    import torch
    from torch.nn import functional as F

    from ..data.lmdb_io import LmdbReader
    from ..evaluation import figures
    from ..evaluation.features import split_texts
    from ..training.data import decode

    words = {t["text_id"]: t["text"] for t in split_texts(workdir, "test")}
    reader = LmdbReader(workdir / "lmdb" / "test")
    sims = F.normalize(images["patient"], dim=-1) @ F.normalize(texts["patient"], dim=-1).t()
    generator = torch.Generator().manual_seed(0)
    for number in range(count):
        query = int(torch.randint(len(texts["ids"]), (1,), generator=generator))
        top = sims[:, query].topk(5).indices.tolist()
        pictures = [
            decode(reader.images_b64(images["ids"][i])[0]).permute(1, 2, 0).numpy() for i in top
        ]
        hits = [images["labels"][i] == texts["labels"][query] for i in top]
        figures.text_query(
            words[texts["ids"][query]],
            pictures,
            hits,
            folder / f"example_text_query_{number + 1}.png",
        )
        image = int(torch.randint(len(images["ids"]), (1,), generator=generator))
        best = sims[image].topk(5).indices.tolist()
        figures.image_query(
            decode(reader.images_b64(images["ids"][image])[0]).permute(1, 2, 0).numpy(),
            [words[texts["ids"][i]] for i in best],
            [texts["labels"][i] == images["labels"][image] for i in best],
            folder / f"example_image_query_{number + 1}.png",
        )
    reader.close()


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


def _report(results: dict[str, Any]) -> str:
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


def _summary_lines(results: dict[str, Any]) -> list[str]:
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
    if "linear_probe" in results:
        lines.append(
            "linear probe: " + ", ".join(f"{k} {v}" for k, v in results["linear_probe"].items())
        )
    lines.append(f"report: {results.get('run')} -> evaluation/report.md")
    return lines


def _summary(results: dict[str, Any]) -> dict[str, Any]:
    out = {}
    retrieval = results["retrieval"]
    for flavour in ("instance", "class"):
        if flavour in retrieval:
            out[f"{flavour}_i2t_mean_recall"] = retrieval[flavour]["image_to_text"]["mean_recall"]
            out[f"{flavour}_mean_recall_all"] = retrieval[flavour]["mean_recall_all"]
    templates = results.get("zero_shot", {}).get("templates")
    if templates:
        out["zero_shot_accuracy"] = templates["accuracy"]
    return out


STAGE = Stage(
    name="evaluate",
    description="evaluation on the test split",
    sections=("data.image_size", "model", "eval"),
    needs=("lmdb",),
    run=run,
    inputs=_inputs,
    outputs=_outputs,
    scratch=lambda profile, workdir: [out_dir(workdir)],
    extra_fingerprint=_extra_fingerprint,
)
