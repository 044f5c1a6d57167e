"""A sweep: the grid (cartesian product) of a profile's varied keys, each variant a full run
folder under <run folder>/sweep/<name>-<key=value,...>, then one comparison table.

Variants with the same data settings share one conversion and one LMDB: they live in a
run folder of their own, sweep/data-<fingerprint>/ (the lmdb stage's fingerprint, which
covers the convert stage's), run there by the runner (resumable, redone when the data
settings or the CSVs change, which also names a new folder). Each variant's profile points
at it (data_dir) and its state records the data stages done with the shared fingerprints,
so its runner skips them and reads the shared LMDB through RunLayout; a variant never writes
there (runner._writes_inside). The conversion report's token figures are those of the first
variant's text tower with those data settings (the convert stage's fingerprint does not
cover model.text, as in a single run).

A rerun skips the variants whose plan says nothing is left to do (no training, no torch),
resumes the others, and writes the table again.
"""

from __future__ import annotations

import copy
import os
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import ownership
from . import profile as profiles
from .atomic import write_text
from .errors import StageInterrupted, UserError, one_line
from .events import Event, EventSink
from .fingerprint import fingerprint
from .layout import RunLayout
from .lock import run_lock
from .profile_edit import grid, with_values
from .state import RunState

DATA_STAGES = ("convert", "lmdb")  # what variants with the same data settings share
SLUG_LIMIT = 120  # characters of a variant folder's name before it is shortened


@dataclass
class Variant:
    values: dict[str, Any]  # the varied keys' values
    slug: str  # the folder's name
    label: str  # key=value, ... (short key names), for the table
    profile: profiles.Profile  # workdir: its folder; data_dir: the shared data's folder
    data_key: str  # the data stages' fingerprint

    @property
    def layout(self) -> RunLayout:
        return RunLayout.of(self.profile)


@dataclass
class Sweep:
    base: profiles.Profile
    layout: RunLayout  # the base profile's run folder (the sweep lives in its sweep/)
    variants: list[Variant]
    data: dict[str, profiles.Profile]  # data fingerprint -> the shared data folder's profile


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _short_names(keys: list[str]) -> dict[str, str]:
    """train.lr -> lr; the full key where two varied keys end alike (sizing.seed, train.seed)."""
    ends = [key.rpartition(".")[2] for key in keys]
    return {key: end if ends.count(end) == 1 else key for key, end in zip(keys, ends, strict=True)}


def _slug(name: str, values: dict[str, Any], shorts: dict[str, str]) -> str:
    text = ",".join(f"{shorts[key]}={_text(value)}" for key, value in values.items())
    slug = re.sub(r"[^A-Za-z0-9._=,+-]+", "_", f"{name}-{text}")
    if len(slug) > SLUG_LIMIT:  # a long local path as a value: readable start, unique end
        slug = f"{slug[: SLUG_LIMIT - 9]}-{fingerprint(values)[:8]}"
    return slug


def build(base: profiles.Profile, varies: list[str], workdir: Path | None = None) -> Sweep:
    """The variants of `base` the --vary options name, each with its folder and shared data;
    a UserError naming the key for an unknown key or a value the key does not take."""
    from .runner import fingerprints

    layout = RunLayout.of(base, workdir)
    combos = grid(base, varies)
    shorts = _short_names(list(combos[0]))
    slugs = [_slug(base.name, values, shorts) for values in combos]
    variants, data = [], {}
    for values, slug in zip(combos, slugs, strict=True):
        if slugs.count(slug) > 1:  # values that differ only in characters a folder drops
            slug = f"{slug}-{fingerprint(values)[:8]}"
        profile = with_values(base, values)
        key = _kept_key(layout, profile, fingerprints(profile)[DATA_STAGES[-1]])
        if key not in data:
            shared = copy.deepcopy(profile)
            shared.workdir, shared.data_dir = str(layout.sweep_data(key)), ""
            data[key] = shared
        profile.workdir = str(layout.sweep_variant(slug))
        profile.data_dir = str(layout.sweep_data(key))
        label = ", ".join(f"{shorts[k]}={_text(v)}" for k, v in values.items())
        variants.append(Variant(values, slug, label, profile, key))
    return Sweep(base, layout, variants, data)


def _kept_key(layout: RunLayout, profile: profiles.Profile, key: str) -> str:
    """The shared data folder's name: `key`, or the one an earlier version gave the same
    data (its fingerprints named a local data set by its path), when only that is there."""
    from .runner import fingerprints

    if layout.sweep_data(key).exists():
        return key
    earlier = fingerprints(profile, earlier=True)[DATA_STAGES[-1]]
    return earlier if layout.sweep_data(earlier).is_dir() else key


def pending(profile: profiles.Profile, stages: tuple[str, ...] | None = None) -> list[str]:
    """The stages whose plan is not 'done' in the profile's run folder."""
    from .runner import plan

    rows = plan(profile, profile.workdir_path())
    return [
        r.stage.name for r in rows if r.status != "done" and (not stages or r.stage.name in stages)
    ]


def prepare_data(sweep: Sweep, sink: EventSink) -> None:
    """Convert and build the LMDB once for each set of data settings (skipped when done)."""
    from .runner import run

    for key, profile in sweep.data.items():
        users = [v.label for v in sweep.variants if v.data_key == key]
        where = profile.workdir_path()
        if not pending(profile, DATA_STAGES):
            sink(Event("sweep", "log", f"shared data {where.name}: done ({len(users)} variants)"))
            continue
        sink(Event("sweep", "log", f"shared data {where.name}: for {'; '.join(users)}"))
        run(profile, where, sink, selected=list(DATA_STAGES))


def attach(variant: Variant, sweep: Sweep) -> None:
    """Point the variant's folder at its shared data: its resolved profile (which a
    subprocess runs) and the data stages recorded done with the shared fingerprints."""
    layout = variant.layout
    shared = RunState.load(sweep.data[variant.data_key].workdir_path())
    layout.root.mkdir(parents=True, exist_ok=True)
    with ownership.recording(layout.root), run_lock(layout.root):
        text = profiles.dumps(variant.profile, minimal=False, resolved=True)
        path = layout.resolved_profile
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            write_text(path, text)
        state = RunState.load(layout.root)
        for name in DATA_STAGES:
            entry, mine = shared.stages.get(name, {}), state.stages.get(name, {})
            if entry.get("status") != "done":
                continue
            if (mine.get("status"), mine.get("fingerprint")) != ("done", entry["fingerprint"]):
                extra = {"summary": entry.get("summary", {}), "shared": str(layout.data_root)}
                state.mark(name, "done", entry["fingerprint"], **extra)
        if shared.status(DATA_STAGES[0]) == "done":
            _own_tokens(variant)


def _own_tokens(variant: Variant) -> None:
    """The shared conversion report measured one text tower's tokens: a variant with another
    tower or context length measures the converted texts into its tokens.json (once)."""
    import json

    from .atomic import write_json
    from .data import own_tokens

    layout, mine = variant.layout, variant.profile.model
    try:
        report = json.loads(layout.convert_report.read_text(encoding="utf-8"))
        theirs = report["tokens"]["tokenizer"], report["tokens"]["context_length"]
    except (OSError, ValueError, KeyError, TypeError):
        theirs = None
    if (mine.text, mine.context_length) == theirs:
        ownership.remove(layout.own_tokens)
        return
    key = {"text": mine.text, "context_length": mine.context_length, "data": variant.data_key}
    try:
        if json.loads(layout.own_tokens.read_text(encoding="utf-8")).get("key") == key:
            return
    except (OSError, ValueError, AttributeError):
        pass
    write_json(
        layout.own_tokens, {"key": key, "tokens": own_tokens.measure(variant.profile, layout)}
    )


def run_variant(variant: Variant, sink: EventSink) -> None:
    from .runner import run

    run(variant.profile, variant.layout.root, sink)


def subprocess_command(variant: Variant) -> list[str]:
    """The command that runs one variant in a process of its own."""
    profile = str(variant.layout.resolved_profile)
    return [sys.executable, "-m", "retclip_pipeline", "run", "--profile", profile]


def launch(variant: Variant, device: str) -> subprocess.Popen:
    """One variant on one GPU: its own process, CUDA_VISIBLE_DEVICES naming the device, its
    output in the variant's pipeline.log."""
    log = variant.layout.pipeline_log
    ownership.Manifest(variant.layout.root).claim(log)
    env = os.environ | {"CUDA_VISIBLE_DEVICES": device}
    with open(log, "ab") as out:
        return subprocess.Popen(
            subprocess_command(variant), stdout=out, stderr=subprocess.STDOUT, env=env
        )


def schedule(
    jobs: list[Variant],
    devices: list[str],
    sink: EventSink,
    start: Callable[[Variant, str], subprocess.Popen] = launch,
) -> dict[str, int]:
    """Run the jobs side by side, one process per device at a time, each device taking the
    next job when its own ends. Returns each job's exit code by slug."""
    waiting: queue.Queue[Variant] = queue.Queue()
    for job in jobs:
        waiting.put(job)
    codes: dict[str, int] = {}
    lock = threading.Lock()

    def worker(device: str) -> None:
        while True:
            try:
                job = waiting.get_nowait()
            except queue.Empty:
                return
            with lock:
                sink(Event("sweep", "log", f"{job.label}: started on device {device}"))
            process = start(job, device)
            try:
                code = process.wait()
            except BaseException:
                process.terminate()
                raise
            with lock:
                codes[job.slug] = code
                level = "info" if code == 0 else "error"
                sink(Event("sweep", "log", f"{job.label}: exit {code} on {device}", level=level))

    threads = [threading.Thread(target=worker, args=(d,), daemon=True) for d in devices]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return codes


def parse_devices(text: str | None) -> list[str] | None:
    if text is None:
        return None
    devices = [d.strip() for d in text.split(",") if d.strip()]
    # What CUDA_VISIBLE_DEVICES takes: an index, or a GPU's or MIG slice's UUID
    if not devices or any(not re.fullmatch(r"\d+|(?:GPU|MIG)-[\w/-]+", d) for d in devices):
        raise UserError(
            f"--devices {text!r}: give GPU indices (or GPU-/MIG- UUIDs), comma-separated "
            "(e.g. 0,1); nvidia-smi -L lists them"
        )
    if len(set(devices)) < len(devices):
        raise UserError(f"--devices {text!r}: a device is named twice")
    return devices


def run_sweep(sweep: Sweep, sink: EventSink, devices: list[str] | None = None) -> list[dict]:
    """Prepare the shared data, run every unfinished variant, save and return the table."""
    from .evaluation import sweep_table

    layout = sweep.layout
    with ownership.recording(layout.root), run_lock(layout.sweep):
        prepare_data(sweep, sink)
        todo = []
        for variant in sweep.variants:
            attach(variant, sweep)
            left = pending(variant.profile)
            if left:
                todo.append(variant)
                sink(Event("sweep", "log", f"{variant.label}: to run ({', '.join(left)})"))
            else:
                sink(Event("sweep", "log", f"{variant.label}: done and current"))
        failed = _run_all(todo, sink, devices)
        table = sweep_table.rows([(v.label, v.layout.root) for v in sweep.variants])
        saved = sweep_table.save(table, layout)
    shown = ", ".join(str(p.relative_to(layout.root)) for p in saved)
    sink(Event("sweep", "log", f"table saved in {layout.sweep}: {shown}"))
    if failed:
        raise UserError(
            f"{len(failed)} of {len(sweep.variants)} variants failed ({'; '.join(failed)}): "
            f"see their events.jsonl or pipeline.log, then rerun the sweep to resume"
        )
    return table


def _run_all(todo: list[Variant], sink: EventSink, devices: list[str] | None) -> list[str]:
    """Run the variants (in this process one after another, or one process per device);
    the labels of those that failed."""
    failed = []
    if devices:
        codes = schedule(todo, devices, sink)
        interrupted = [v.label for v in todo if codes.get(v.slug) == 130]
        if interrupted:
            raise StageInterrupted(f"interrupted: {'; '.join(interrupted)}; rerun to resume")
        return [f"{v.label}: exit {codes.get(v.slug)}" for v in todo if codes.get(v.slug) != 0]
    for number, variant in enumerate(todo, 1):
        sink(Event("sweep", "log", f"variant {number} of {len(todo)}: {variant.label}"))
        try:
            run_variant(variant, sink)
        except UserError as exc:
            failed.append(f"{variant.label}: {one_line(exc)}")
            sink(Event("sweep", "log", f"{variant.label}: {one_line(exc)}", level="error"))
    return failed


def dry_run(sweep: Sweep) -> list[str]:
    """What a sweep would do, as lines; nothing is written."""
    from .runner import plan

    lines = [f"sweep of {sweep.base.name}: {len(sweep.variants)} variants in {sweep.layout.sweep}"]
    lefts = {}
    for key, profile in sweep.data.items():
        where = profile.workdir_path()
        left = lefts[key] = pending(profile, DATA_STAGES)
        users = sum(1 for v in sweep.variants if v.data_key == key)
        state = f"to run ({', '.join(left)})" if left else "done"
        lines.append(f"  shared data {where.name} ({users} variants): {state}")
    for variant in sweep.variants:
        lines.append(f"  {variant.label}: {variant.layout.root.name}/")
        rows = plan(variant.profile, variant.layout.root)
        states = []
        for row in rows:
            status = row.status
            if row.stage.name in DATA_STAGES:  # recorded from the shared folder when it runs
                done = row.stage.name not in lefts[variant.data_key]
                status = "done (shared)" if done else "shared: to run"
            states.append(f"{row.stage.name} {status}")
        lines.append(f"    {'; '.join(states)}")
    return lines
