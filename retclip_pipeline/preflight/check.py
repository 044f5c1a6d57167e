"""The preflight (--check): a checklist that passes only if the run will not fail on anything
it could know beforehand. The profile, the CSVs and their columns, the data set and the CSV
indices against its row counts, the token, the towers and tokenizer, the context length,
how the tokenizer fits the prompts, the batch against the pairs, the work directory and the
disk space the kept outputs need, and the memory and time estimate."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..checks import Check
from ..data.join import things
from ..data.prompts import PromptTable, check_columns, read_prompts
from ..errors import UserError
from ..profile import Profile, init_problem, train_batch_size
from ..units import size
from .costs import estimate_output_bytes, kept_checkpoints, training_output_bytes


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def run_checks(profile: Profile, workdir: Path, gpu: str | None = None) -> list[Check]:
    """The checklist. The hub is asked once first whether it answers (when the data set or a
    tower is on it); when it does not, everything after reads the hub client's cache only
    and says so, instead of waiting out a minute of retries."""
    from ..hub.reach import hub_or_cache, not_reached
    from ..model.sources import hub_ids

    kind, _ = profile.dataset_source()
    needed = kind == "hub" or bool(hub_ids([profile.model.vision, profile.model.text]))
    with hub_or_cache(needed) as reason:
        items = [Check.of("profile", True, str(profile.source or "built in"))]
        if reason is not None:
            said = not_reached(reason, "using cached files only")
            items.append(Check.of("hub", True, said, warning=True))
        return _checks(profile, workdir, gpu, reason, items)


def _checks(profile: Profile, workdir: Path, gpu, reason, items) -> list[Check]:
    from ..data.sampling import split_plan

    tables: dict[str, PromptTable] = {}
    for name, csv, _ in split_plan(profile):
        path = profile.resolve(csv)
        try:
            check_columns(path, profile.data)
            table = read_prompts(path, profile.data, None)
            tables[name] = table
            skipped = ""
            if table.skipped:  # named by line, as the conversion's warnings name them
                shown = "; ".join(f"line {line}: {why}" for line, why in table.skipped[:3])
                more = f" and {len(table.skipped) - 3} more" if len(table.skipped) > 3 else ""
                skipped = f", {len(table.skipped)} bad row(s) left out ({shown}{more})"
            items.append(
                Check.of(
                    f"{name} CSV",
                    True,
                    f"{path}: {table.rows_read} rows, {len(table.by_index())} distinct "
                    f"{things(profile.data)}{skipped}",
                )
            )
        except UserError as exc:
            items.append(Check.of(f"{name} CSV", False, str(exc)))
    csv_ok = all(item.ok for item in items)
    access = _token_check(profile, reason)
    items += access
    if all(item.ok for item in access):  # no row counts from a set we cannot read
        items += dataset_checks(profile)
    towers_ok, tower_items = tower_checks(profile)
    items += tower_items
    if tables:
        items.append(_prompt_fit(profile, tables))
    estimated = None
    if csv_ok:
        items.append(_batch_check(profile))
        estimate_item, estimated = _train_check(profile, gpu, towers_ok)
        items.append(estimate_item)
    items += _disk_checks(profile, workdir, csv_ok, estimated)
    if profile.train.report_to:
        items.append(_tracker_check(profile))
    if profile.model.init:
        problem = init_problem(profile)
        items.append(Check.of("model.init", not problem, problem or "found"))
    if profile.eval.checkpoint and profile.eval.checkpoint != "init":
        from ..evaluation.choice import missing_checkpoint

        problem = missing_checkpoint(profile, workdir)
        items.append(Check.of("checkpoint to evaluate", not problem, problem or "found"))
    return items


def _tracker_check(profile: Profile) -> Check:
    """train.report_to's packages (optional extras) are installed."""
    from ..training.tracking import require

    names = ", ".join(profile.train.report_to)
    try:
        require(profile.train.report_to)
    except UserError as exc:
        return Check.of("trackers", False, str(exc))
    return Check.of("trackers", True, f"{names} installed")


def _batch_check(profile: Profile) -> Check:
    from ..data.sampling import train_pairs

    pairs = train_pairs(profile)
    cfg = profile.train
    batch, note = train_batch_size(profile, pairs)
    if pairs < batch:
        return Check.of(
            "batch size",
            False,
            f"the train split will hold {pairs} pairs, fewer than train.batch_size = "
            f"{batch}: lower train.batch_size to at most {pairs}",
        )
    steps = pairs // batch // cfg.accumulation
    if steps == 0:
        return Check.of(
            "batch size",
            False,
            f"{pairs} pairs make {pairs // batch} batches of {batch}, fewer than "
            f"train.accumulation = {cfg.accumulation}: lower train.accumulation",
        )
    detail = f"batches of {batch}, {max(1, steps)} optimizer steps per epoch"
    return Check.of("batch size", True, f"{detail}; {note}" if note else detail, bool(note))


def _train_check(profile: Profile, gpu: str | None, towers_ok: bool):
    """The estimate item (memory must fit where the run trains, and on a named GPU), and the
    estimate itself for the disk check."""
    from ..data.sampling import split_pairs
    from .estimate import estimate

    if not towers_ok:
        return Check.of("training estimate", False, "not computed: the towers cannot be had"), None
    try:
        pairs = split_pairs(profile)
        result = estimate(profile, pairs["train"], gpu, test_pairs=pairs.get("test", 0))
    except UserError as exc:
        return Check.of("training estimate", False, str(exc)), None
    return Check.of("training estimate", result.fits, "; ".join(result.lines())), result


def tower_checks(profile: Profile) -> tuple[bool, list[Check]]:
    """Each tower's config and weights (not read), the tokenizer, and the context length
    against the text tower's positions."""
    from ..model.sources import describe_tower, fetch_advice, tokenizer_problem
    from ..model.tokenizer import load_tokenizer

    items, ok = [], True
    limits: dict = {}
    for kind in ("vision", "text"):
        name = getattr(profile.model, kind)
        try:
            detail, found = describe_tower(name, kind)
            limits |= found
            items.append(Check.of(f"{kind} tower", True, detail))
        except UserError as exc:
            ok = False
            items.append(Check.of(f"{kind} tower", False, str(exc)))
    positions = limits.get("positions")
    try:
        tokenizer = load_tokenizer(profile.model.text)
        problem = tokenizer_problem(tokenizer, limits.get("vocab"))
        ok = ok and problem is None
        detail = f"{type(tokenizer).__name__}, {len(tokenizer):,} tokens"
        items.append(
            Check.of(
                "tokenizer",
                problem is None,
                f"model.text = {profile.model.text!r}: {problem}" if problem else detail,
            )
        )
    except (OSError, ValueError) as exc:
        ok = False
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        items.append(
            Check.of(
                "tokenizer",
                False,
                f"model.text = {profile.model.text!r}: {first}; {fetch_advice([profile.model.text])}",
            )
        )
    context = profile.model.context_length
    if positions and context > positions:
        ok = False
        items.append(
            Check.of(
                "context length",
                False,
                f"model.context_length = {context} is over the text tower's {positions} "
                f"positions: set it to at most {positions}",
            )
        )
    elif positions:
        items.append(Check.of("context length", True, f"{context} of {positions} positions"))
    return ok, items


def _prompt_fit(profile: Profile, tables: dict[str, PromptTable]) -> Check:
    from ..data.report import fit_lines, measure_tokens, prompt_fit

    fit = prompt_fit(profile, tables, measure_tokens(profile.model.text, tables))
    return Check.of("prompt fit", True, "; ".join(fit_lines(fit)), bool(fit["warnings"]))


def _disk_checks(profile: Profile, workdir: Path, csv_ok: bool, estimate) -> list[Check]:
    from ..data.sampling import plan_counts
    from ..layout import check_apart

    try:
        check_apart(profile, workdir)  # the run would refuse a run folder in the data set
    except UserError as exc:
        return [Check.of("work directory", False, str(exc))]
    try:
        parent = _existing_parent(workdir)
        writable = _writable(parent)
        items = [
            Check.of(
                "work directory",
                writable,
                f"{workdir}" + ("" if writable else f": {parent} is not writable"),
            )
        ]
        if not csv_ok:
            return items
        counts = plan_counts(profile)
        images = sum(split["sampled"] for split in counts.values())
        data = estimate_output_bytes(profile, images)
        parts = [f"data and LMDB {size(data)} for {images} images"]
        need = data
        if estimate is not None:
            kept = training_output_bytes(profile, estimate.parameters, estimate.trainable)
            need += kept
            parts.append(f"{kept_checkpoints(profile)} checkpoints and the export {size(kept)}")
        else:
            parts.append("checkpoints not counted (no estimate)")
        free = shutil.disk_usage(parent).free
        verdict = "" if free > need else ": free some space or choose another workdir"
        items.append(
            Check.of(
                "disk space",
                free > need,
                f"about {size(need)} needed ({', '.join(parts)}), "
                f"{size(free)} free at {parent}{verdict}",
            )
        )
        return items
    except OSError as exc:
        return [Check.of("work directory", False, f"{workdir}: {exc}")]


def _writable(path: Path) -> bool:
    import os

    return os.access(path, os.W_OK)


def dataset_checks(profile: Profile, token=None) -> list[Check]:
    """The data set's splits, and the CSV indices against their row counts (a hub set's
    from its parquet footers: no image is downloaded; `token` as hub_split_rows's)."""
    from ..data.sampling import split_plan

    kind, where = profile.dataset_source()
    splits = [split for _, _, split in split_plan(profile)]
    try:
        if kind == "hub":
            from ..hub.parquet import hub_split_rows

            rows = hub_split_rows(profile, where, splits, token)
            classes = {split: None for split in splits}
            sources = {}
        else:
            from ..hub.splits import open_splits

            sources = open_splits(profile, splits)
            rows = {split: len(source) for split, source in sources.items()}
            classes = {
                split: len(s.label_names) if s.label_names else None for split, s in sources.items()
            }
    except UserError as exc:
        return [Check.of("data set rows", False, str(exc))]
    items = []
    for name, csv, split in split_plan(profile):
        detail = f"{where} [{split}]: {rows[split]} rows"
        if profile.data.join == "file":  # one folder of image files for every split
            detail = f"{where}: {rows[split]} files"
        if classes[split]:
            detail += f", {classes[split]} classes"
        try:
            if profile.data.join == "index":
                table = read_prompts(profile.resolve(csv), profile.data, rows[split])
                said = "CSV indices in range"
            else:
                table = read_prompts(profile.resolve(csv), profile.data, None)
                said = _joined(profile, table, sources.get(split))
            left = f", {len(table.skipped)} left out" if table.skipped else ""
            usable = f"{len(table.rows)} rows usable{left}"
            detail += f"; {said} ({usable})"
            outside = [(line, why) for line, why in table.skipped if "outside the split" in why]
            if outside:  # data.on_bad_row = "skip": the run goes on without them
                line, why = outside[0]
                detail = (
                    f"{where} [{split}]: {rows[split]} rows; {len(outside)} CSV rows point "
                    f"outside it and are left out (e.g. line {line}: {why}): check that "
                    f"{csv} indexes the {split} split ({usable})"
                )
            items.append(Check.of(f"data set {name}", True, detail, bool(outside)))
        except UserError as exc:
            items.append(Check.of(f"data set {name}", False, str(exc)))
    return items


def _joined(profile: Profile, table: PromptTable, source) -> str:
    """The CSV's keys or file names joined to the data set as conversion joins them (a
    UserError for those with no image, unless data.on_bad_row = "skip"); a hub data set's
    keys are matched at conversion, where its key column is read."""
    from ..data.join import drop_unmatched, join_split

    data = profile.data
    if source is None:
        return f"{data.key_column} values matched at conversion"
    _, unmatched = join_split(data, table, source)
    drop_unmatched(data, table, unmatched)  # the rows without an image: left out, or an error
    if data.join == "file":
        return "the image files the CSV names found, each once"
    return f"every {data.key_column} matched to one data set row"


def _token_check(profile: Profile, reason: str | None) -> list[Check]:
    """The token and, for a hub data set, access to it: the checks of `token check`, after
    run_checks's probe of the hub (`reason`: why it did not answer)."""
    from ..hub.access import check
    from ..hub.client import resolve_token

    kind, where = profile.dataset_source()
    if kind == "local":
        return [Check.of("token", True, "not needed for a local data set")]
    findings = check(resolve_token(profile), where, reason, probed=True)
    names = {"hub.dataset": "data set"}  # as the checklist calls it
    return [Check(names.get(f.name, f.name), f.state, f.detail) for f in findings]


def space_needed(profile: Profile, stage: str) -> str:
    """About how much free space a stage's outputs take, for a disk-full message ("" when
    it cannot be told)."""
    from ..data.sampling import plan_counts

    try:
        images = sum(split["sampled"] for split in plan_counts(profile).values())
        if stage in ("convert", "lmdb"):
            return size(estimate_output_bytes(profile, images))
        if stage == "train":
            from .estimate import model_shapes

            shapes = model_shapes(profile)
            return size(training_output_bytes(profile, shapes.parameters, shapes.trainable))
        # evaluate: features (four 512-wide float32 vectors an image and text) and figures
        return size(images * 4 * 512 * 4 * 2 + 50e6)
    except Exception:  # an estimate must never hide the disk-full message itself
        return ""


def estimate_lines(profile: Profile) -> tuple[list[str], bool]:
    """The memory and time estimate for the profile's train split, as lines, and whether it
    fits. The hub is asked once first (when a tower is on it); when it does not answer, the
    towers' configs come from the cache only and the first line says so."""
    from ..data.sampling import split_pairs
    from ..hub.reach import hub_or_cache, not_reached
    from ..model.sources import hub_ids
    from .estimate import estimate

    pairs = split_pairs(profile)
    with hub_or_cache(bool(hub_ids([profile.model.vision, profile.model.text]))) as reason:
        try:
            result = estimate(profile, pairs["train"], test_pairs=pairs.get("test", 0))
        except UserError as exc:  # towers not in the cache: why the hub was not asked
            if reason is None:
                raise
            raise UserError(not_reached(reason, str(exc))) from None
    said = [not_reached(reason, "using cached files")] if reason else []
    return said + result.lines(), result.fits
