"""The conversion stage: prompt CSVs + a data set -> data/{split}_imgs.tsv and
data/{split}_texts.jsonl in the RET-CLIP layout, plus data/{split}_images.jsonl (labels and
perceptual hashes) and a report.

Images are converted in chunks; each finished chunk is kept as a part file under
data/.parts/<fingerprint>/, so a killed run resumes at the first unfinished chunk and the
joined outputs are byte-identical to an uninterrupted run's.
"""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from .. import ownership
from ..atomic import atomic_open, concat_files, write_json, write_text
from ..data import conversion
from ..data import report as convert_report
from ..data.conversion import SplitResult
from ..data.join import drop_unmatched, join_split, things
from ..data.prompts import read_prompts, stratified_sample
from ..data.sampling import plan_counts, sample_size, split_plan
from ..errors import UserError
from ..fingerprint import file_digest, fingerprint, material, pick
from ..hub.local import SplitSource
from ..hub.splits import open_splits
from ..layout import RunLayout
from ..profile import Profile
from ..stage import Stage, StageContext


def _outputs(profile: Profile, workdir: Path) -> list[Path]:
    layout = RunLayout.of(profile, workdir)
    out = []
    for name, _, _ in split_plan(profile):
        out += [layout.imgs_tsv(name), layout.texts_jsonl(name), layout.images_jsonl(name)]
    return out + [layout.convert_report]


def _inputs(profile: Profile, workdir: Path) -> list[str]:
    kind, where = profile.dataset_source()
    csvs = [str(profile.resolve(csv)) for _, csv, _ in split_plan(profile)]
    return [f"{kind} data set {where}"] + csvs


def _extra_fingerprint(profile: Profile) -> dict[str, Any]:
    # The CSVs' content, not their paths: an edited CSV makes the conversion stale.
    digests = {}
    for name, csv, _ in split_plan(profile):
        path = profile.resolve(csv)
        digests[name] = file_digest(path) if path.is_file() else "missing"
    return {"csv": digests, "format": 1}


def _parts_key(profile: Profile) -> str:
    """What part files were made with, named as data/.parts/<key>/: the stage's settings
    and CSVs, a local data set by its kind only. A rerun after a bad image was fixed (which
    changes the stage's fingerprint, the data set's files being part of it) goes on from
    the finished chunks and retries those that recorded bad images."""
    data = material(profile, content=False)
    sections = {name: pick(data, name) for name in STAGE.sections}
    return fingerprint({"sections": sections, "extra": _extra_fingerprint(profile)})


def _resumable(profile: Profile, workdir: Path) -> bool:
    return (RunLayout.of(profile, workdir).parts / _parts_key(profile)).is_dir()


def _finished(meta_path: Path, retry_bad: bool) -> bool:
    """Whether a part file holds the chunk; with `retry_bad`, one that recorded bad images
    does not: the user may have fixed them since."""
    if not meta_path.exists():
        return False
    return not (retry_bad and json.loads(meta_path.read_text(encoding="utf-8"))["bad"])


def _submit(
    pool: ProcessPoolExecutor, source: SplitSource, chunk: list[int], meta_path: Path, data
) -> tuple[dict[int, str | None], list] | None:
    """Start the workers on a chunk, unless a finished part file already holds it."""
    if _finished(meta_path, retry_bad=data.on_bad_row == "error"):
        return None
    rows = source.rows(chunk)
    labels = {index: label for index, (_, label) in zip(chunk, rows, strict=True)}
    jobs = [(index, refs) for index, (refs, _) in zip(chunk, rows, strict=True)]
    futures = [
        pool.submit(
            conversion.convert_batch,
            jobs[i : i + conversion.BATCH],
            data.image_size,
            data.jpeg_quality,
            data.crop_border,
        )
        for i in range(0, len(jobs), conversion.BATCH)
    ]
    return labels, futures


def _write_chunk(parts: Path, number: int, labels: dict[int, str | None], futures: list) -> None:
    """Collect a chunk's results into its part files: the TSV first, then the JSON that marks
    the chunk finished."""
    meta: dict[str, Any] = {"images": [], "bad": []}
    with atomic_open(parts / f"{number:05d}.tsv", "w", newline="\n") as tsv:
        for future in futures:
            for index, b64s, hashes, error in future.result():
                if b64s is None:
                    meta["bad"].append([index, error])
                    continue
                eyes = b64s if len(b64s) == 2 else b64s * 2
                tsv.write(f"{index}\t{eyes[0]}\t{eyes[1]}\n")
                meta["images"].append([index, labels[index], [f"{h:064x}" for h in hashes]])
    write_json(parts / f"{number:05d}.json", meta)


def _convert_split(
    ctx: StageContext, pool: ProcessPoolExecutor, source: SplitSource, result: SplitResult
) -> None:
    data = ctx.profile.data
    parts = ctx.layout.parts / _parts_key(ctx.profile) / result.name
    # A folder of part files named by our settings, each claimed as it is written.
    ownership.claim_folder(parts.parent, [f"{result.name}/"])
    parts.mkdir(parents=True, exist_ok=True)
    chunks = [
        result.selected[i : i + conversion.CHUNK]
        for i in range(0, len(result.selected), conversion.CHUNK)
    ]
    task = f"{result.name} images"
    total, done = len(result.selected), 0
    ctx.emit.progress(task, 0, total, "images")
    # One chunk in flight ahead of the one being written, so the workers never wait on us.
    pending = _submit(pool, source, chunks[0], parts / "00000.json", data) if chunks else None
    for number, chunk in enumerate(chunks):
        current = pending
        if number + 1 < len(chunks):
            pending = _submit(
                pool, source, chunks[number + 1], parts / f"{number + 1:05d}.json", data
            )
        meta_path = parts / f"{number:05d}.json"
        if current is not None:
            _write_chunk(parts, number, *current)
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        for index, label, hashes in meta["images"]:
            result.images[index] = {"label": label, "phash": hashes}
        for index, reason in meta["bad"]:
            result.bad[index] = reason
        done += len(chunk)
        ctx.emit.progress(task, done, total, "images")
    what = "skipped" if data.on_bad_row == "skip" else "bad"
    places = _places(result)
    for index, reason in sorted(result.bad.items()):
        ctx.emit.warn(f"{result.name}: {what} image at {places[index]}: {reason}")
    if result.selected and not result.images:
        index, reason = next(iter(sorted(result.bad.items())))
        raise UserError(
            f"no image of the {result.name} split could be read (index {index}: "
            f"{reason}): check hub.dataset and data.image_column"
        )


def _places(result: SplitResult) -> dict[int, str]:
    """'index 7 (prompts_train.csv line 9)' for each bad image: its data set row and the CSV
    lines that point to it."""
    lines: dict[int, list[str]] = {index: [] for index in result.bad}
    for row in result.table.rows:
        if row.index in lines:
            lines[row.index].append(str(row.line))
    places = {}
    for index, found in lines.items():
        shown = ", ".join(found[:3]) + (", ..." if len(found) > 3 else "")
        places[index] = (
            f"index {index} ({result.table.path.name} line{'s' * (len(found) > 1)} {shown})"
        )
    return places


def check_bad_images(results: list[SplitResult], on_bad_row: str) -> None:
    """With data.on_bad_row = "error", any unreadable or rejected image stops the conversion
    with one line naming it; the finished part files stay, so a rerun resumes."""
    bad = [(r, i, reason) for r in results for i, reason in sorted(r.bad.items())]
    if not bad or on_bad_row != "error":
        return
    places = {r.name: _places(r) for r in results if r.bad}
    shown = "; ".join(f"{r.name} split, {places[r.name][i]}: {reason}" for r, i, reason in bad[:3])
    more = f" and {len(bad) - 3} more (listed in the warnings above)" if len(bad) > 3 else ""
    raise UserError(
        f"{len(bad)} image(s) could not be converted: {shown}{more}; fix the image or remove "
        f'its CSV row(s), or set data.on_bad_row = "skip" to leave such images out'
    )


def _write_split(ctx: StageContext, result: SplitResult) -> None:
    """Join a converted split's part files into its outputs."""
    data = ctx.profile.data
    parts = ctx.layout.parts / _parts_key(ctx.profile) / result.name
    chunks = -(-len(result.selected) // conversion.CHUNK)
    layout = ctx.layout
    concat_files([parts / f"{n:05d}.tsv" for n in range(chunks)], layout.imgs_tsv(result.name))
    _write_texts(layout.texts_jsonl(result.name), result, data.eyes == "paired")
    first = {}
    for row in result.table.rows:
        first.setdefault(row.index, row)
    with atomic_open(layout.images_jsonl(result.name), "w", newline="\n") as out:
        for index in sorted(result.images):
            image = result.images[index]
            label = image["label"] or result.csv_labels.get(index)
            record = {"image_id": index, "label": label, "phash": image["phash"]}
            record |= _row_extras(first.get(index))
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


def _row_extras(row) -> dict[str, Any]:
    """What a CSV row adds to its image's or text's record: the key it was joined by, and
    each eye's class where the CSV gives them."""
    extras: dict[str, Any] = {}
    if row is None:
        return extras
    if row.key is not None:
        extras["key"] = row.key
    for side in ("left", "right"):
        if getattr(row, f"{side}_label") is not None:
            extras[f"label_{side}"] = getattr(row, f"{side}_label")
    return extras


def _write_texts(path: Path, result: SplitResult, paired: bool) -> None:
    """One line per kept CSV row, in CSV order: every text of an image is its own pair."""
    chosen = set(result.images)
    with atomic_open(path, "w", newline="\n") as out:
        text_id = 0
        for row in result.table.rows:
            if row.index not in chosen:
                continue
            record: dict[str, Any] = {
                "text_id": text_id,
                "text": row.text,
                "image_ids": [row.index],
            }
            if paired:
                record["text_left"] = row.left_text
                record["text_right"] = row.right_text
            if row.label is not None:
                record["label"] = row.label
            record |= _row_extras(row)
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            text_id += 1


def _prepare(ctx: StageContext) -> list[tuple[SplitSource, SplitResult]]:
    """Open each split, read its CSV and choose its sample (cheap; no image is touched)."""
    profile = ctx.profile
    prepared = []
    train = None
    sources = open_splits(profile, [split for _, _, split in split_plan(profile)], ctx.emit)
    for name, csv, split in split_plan(profile):
        source = sources[split]
        keyed = profile.data.join != "index"
        table = read_prompts(profile.resolve(csv), profile.data, None if keyed else len(source))
        for line, reason in table.skipped:
            ctx.emit.warn(f"{table.path.name} line {line}: skipped: {reason}")
        if keyed:
            source, unmatched = join_split(profile.data, table, source)
            for warning in drop_unmatched(profile.data, table, unmatched):
                ctx.emit.warn(warning)
        labels = {index: rows[0].label for index, rows in table.by_index().items()}
        count = sample_size(profile, name, len(labels), train)
        train = train or (count, len(labels))
        smoke = profile.sizing.mode == "smoke"
        selected = stratified_sample(labels, count, profile.sizing.seed, runs=smoke)
        ctx.emit.log(
            f"{name}: {table.rows_read} rows, {len(labels)} distinct {things(profile.data)}, "
            f"converting {len(selected)}"
        )
        prepared.append((source, SplitResult(name, table, selected, labels)))
    return prepared


def run(ctx: StageContext) -> dict[str, Any]:
    profile = ctx.profile
    ctx.layout.data.mkdir(parents=True, exist_ok=True)
    with conversion.make_pool() as pool:  # the workers boot while the data set loads
        try:
            prepared = _prepare(ctx)
            # Token lengths in a worker process, beside the image work: loading a tokenizer
            # takes seconds (and importing transformers in a thread races with datasets).
            tables = {result.name: result.table for _, result in prepared}
            measured = pool.submit(convert_report.measure_tokens, profile.model.text, tables)
            for source, result in prepared:
                _convert_split(ctx, pool, source, result)
            results = [result for _, result in prepared]
            check_bad_images(results, profile.data.on_bad_row)
            measured_tokens = measured.result()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    for result in results:
        _write_split(ctx, result)
    report = convert_report.build(profile, results, measured_tokens)
    write_json(ctx.layout.convert_report, report)
    text = convert_report.render(report)
    write_text(ctx.layout.convert_report_text, text)
    for line in text.splitlines():
        ctx.emit.log(line)
    _clear_parts(ctx.layout.parts)
    return convert_report.summary(report)


def _clear_parts(parts: Path) -> None:
    ownership.remove(parts)


def _plan_lines(profile: Profile, gpu: str | None) -> list[str]:
    """Rows and images per split, and what the sizing costs."""
    from ..preflight.costs import sizing_lines

    lines = [
        f"{split}: {counts['rows']} CSV rows on {counts['images']} {things(profile.data)}, "
        f"{counts['sampled']} {things(profile.data)} in this run"
        for split, counts in plan_counts(profile).items()
    ]
    return lines + sizing_lines(profile)


STAGE = Stage(
    name="convert",
    description="CSV + data set -> TSV/JSONL",
    sections=("hub.dataset", "data", "sizing"),
    needs=(),
    run=run,
    inputs=_inputs,
    outputs=_outputs,
    scratch=lambda profile, workdir: [RunLayout.of(profile, workdir).parts],
    extra_fingerprint=_extra_fingerprint,
    plan_lines=_plan_lines,
    resumable=_resumable,
    resumes_by_settings=True,
)
