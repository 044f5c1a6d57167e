"""The evaluation stage: features of the test split under a checkpoint, retrieval
(instance- and class-level), zero-shot classification (from templates and from the training
prompts), a linear probe, figures, evaluation_results.json and report.md. The measures live
in evaluation/ (features, metrics, zero_shot, figures, report); this module runs them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .. import ownership
from ..atomic import write_json, write_text
from ..fingerprint import file_identity
from ..layout import RunLayout
from ..profile import Profile
from ..stage import Stage, StageContext

SCHEMA_VERSION = 1


def _outputs(profile: Profile, workdir: Path) -> list[Path]:
    layout = RunLayout.of(profile, workdir)
    return [
        layout.results,
        layout.report,
        layout.features("test_imgs"),
        layout.features("test_texts"),
    ]


def _inputs(profile: Profile, workdir: Path) -> list[str]:
    from ..evaluation.choice import checkpoint_path

    return [
        str(RunLayout.of(profile, workdir).lmdb_split("test")),
        checkpoint_path(profile, workdir),
    ]


def _extra_fingerprint(profile: Profile) -> dict[str, Any]:
    # The checkpoint's identity: a newly trained one makes the evaluation stale.
    from ..evaluation.choice import checkpoint_path

    path = checkpoint_path(profile, profile.workdir_path())
    if path == "init":
        return {"checkpoint": "init"}
    return {"checkpoint": file_identity(Path(path)) if Path(path).is_file() else "missing"}


def _ready(profile: Profile, workdir: Path) -> None:
    from ..errors import UserError
    from ..evaluation.choice import missing_checkpoint

    problem = missing_checkpoint(profile, workdir)
    if problem:  # said before the earlier evaluation is removed
        raise UserError(problem)


def _check_class_names(profile: Profile, records: list[dict[str, Any]]) -> None:
    """eval.class_names keys that are no class of the run's labels (a typo, another data
    set's label) changed no prompt, silently: one line naming them and the classes."""
    from ..errors import UserError

    keys = ("label", "label_left", "label_right")
    classes = {str(r[k]) for r in records for k in keys if r.get(k) is not None}
    unknown = [name for name in profile.eval.class_names if name not in classes]
    if classes and unknown:
        raise UserError(
            f"eval.class_names names {', '.join(map(repr, unknown))}, no class of this run's "
            f"labels ({', '.join(sorted(classes))}): write each label as the data gives it, "
            f"or remove it"
        )


def run(ctx: StageContext) -> dict[str, Any]:
    from ..data.converted import read_records
    from ..evaluation import features as feats
    from ..evaluation import figures, metrics, per_eye, report, zero_shot
    from ..model.build import image_size_of
    from ..training.device import resolve_device, resolve_precision

    profile, workdir, emit, layout = ctx.profile, ctx.workdir, ctx.emit, ctx.layout
    checkpoint = feats.checkpoint_path(profile, workdir)
    model, tokenizer, described = feats.load_model(profile, checkpoint)
    # The converted records it reads are checked first: a damaged line is said while the
    # finished evaluation is still there.
    read = (layout.images_jsonl("test"), layout.texts_jsonl("test"), layout.texts_jsonl("train"))
    records = [r for path in read if path.exists() for r in read_records(path)]
    _check_class_names(profile, records)
    # Only now is the earlier evaluation removed: a checkpoint that is refused (damaged,
    # naming a class, of another model) leaves the finished evaluation as it was.
    ownership.remove(layout.evaluation)
    layout.evaluation.mkdir(parents=True, exist_ok=True)
    device = resolve_device(profile.train.device, emit, warn_cpu=False)
    emit.log(f"evaluating {described} on the {'GPU' if device.type == 'cuda' else 'CPU'}")
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
    _save_pt(layout.features("test_imgs"), test_images)
    _save_pt(layout.features("test_texts"), text_record)
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
    if per_eye.has_eye_texts(test_texts):

        def encode_side(side: str, texts: list[str]):
            return feats.text_features(
                model, tokenizer, texts, context, cfg.batch_size, device, dtype
            )[side]

        train_texts = feats.split_texts(workdir, "train")
        results["per_eye"], eye_vectors = per_eye.evaluate(
            encode_side, test_images, test_texts, train_texts, cfg
        )
        text_record |= {f"eye_{side}": vectors for side, vectors in eye_vectors.items()}
        _save_pt(layout.features("test_texts"), text_record)
    labels = test_images["labels"]
    if all(labels):
        train_texts = feats.split_texts(workdir, "train")
        classes = sorted({*labels, *(t.get("label") for t in train_texts if t.get("label"))})
        index = {name: i for i, name in enumerate(classes)}
        truth = [index[label] for label in labels]

        def encode(texts: list[str]):
            return feats.text_features(
                model, tokenizer, texts, context, cfg.batch_size, device, dtype
            )["patient"]

        results["zero_shot"], class_record = zero_shot.evaluate(
            encode, test_images["patient"], classes, truth, train_texts, cfg
        )
        _save_pt(layout.features("class_embeddings"), class_record)
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
            _save_pt(layout.features("train_imgs"), train_images)
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
    results["caveats"] = report.caveats(layout, profile)
    figures.write_all(results, layout, test_images, text_record, cfg.examples)
    write_json(layout.results, results)
    write_text(layout.report, report.render(results))
    for line in report.summary_lines(results):
        emit.log(line)
    return report.summary(results)


def _save_pt(path: Path, data: dict[str, Any]) -> None:
    import torch

    from ..atomic import atomic_open

    with atomic_open(path, "wb") as handle:
        torch.save(data, handle)


STAGE = Stage(
    name="evaluate",
    description="evaluation on the test split",
    sections=("data.image_size", "model", "eval"),
    needs=("lmdb",),
    run=run,
    inputs=_inputs,
    outputs=_outputs,
    # No scratch removed before the run: run() clears the earlier evaluation once the
    # checkpoint has loaded.
    extra_fingerprint=_extra_fingerprint,
    ready=_ready,
    refuses=lambda profile: (
        ""
        if profile.data.test_csv
        else "the evaluate stage needs a test split and data.test_csv is empty: set it, or "
        "run the other stages alone (--stages convert,lmdb,train)"
    ),
)
