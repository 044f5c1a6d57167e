"""Conversion and LMDB throughput on generated 1600x1200 fundus-like JPEGs.

    python bench/convert_bench.py [--images 500] [--size 224] [--dir /tmp/retclip-bench] [--quick]

Runs the convert and lmdb stages only (no model, no network). --quick: 24 images, a check
that it runs (its rates mean nothing).

Prints: conversion source images/s, LMDB build MB/s, the floor (a plain full decode of the same
sources on the same cores) with the ratios, and the peak memory of the whole process tree.
Goals on a 2-core machine: conversion >= 250 images/s, LMDB >= 100 MB/s, peak < 1 GB.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
STAGES = "convert,lmdb"  # the conversion only: training needs a model, evaluation a checkpoint
sys.path.insert(0, str(ROOT))

from retclip_pipeline.data import demo  # noqa: E402
from retclip_pipeline.layout import RunLayout  # noqa: E402


def _make_one(args: tuple[str, int, str]) -> int:
    label, number, path = args
    rng = random.Random(f"bench:{label}:{number}")
    small = demo.fundus_image(label, rng, (400, 300), disc_right=rng.random() < 0.5)
    big = np.asarray(small.resize((1600, 1200), Image.Resampling.BICUBIC), dtype=np.int16)
    noise = np.random.default_rng(number).normal(0, 4, big.shape).astype(np.int16)
    image = Image.fromarray(np.clip(big + noise, 0, 255).astype(np.uint8))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=92)
    Path(path).write_bytes(out.getvalue())
    return len(out.getvalue())


def generate(root: Path, count: int) -> list[Path]:
    """An image-folder train split of `count` images and a prompt CSV; reused when present."""
    marker = root / f".done-{count}"
    jobs, rows = [], []
    for number in range(count):
        label = demo.CLASSES[number * len(demo.CLASSES) // count]
        folder = root / "train" / label
        jobs.append((label, number, str(folder / f"{number:05d}.jpg")))
        rows.append(f'{number},{label},"{demo.prompt_for(label, random.Random(number))}"')
    if not marker.exists():
        for label in demo.CLASSES:
            (root / "train" / label).mkdir(parents=True, exist_ok=True)
        with ProcessPoolExecutor() as pool:
            list(pool.map(_make_one, jobs, chunksize=8))
        (root / "prompts.csv").write_text("dataset_index,label,prompt\n" + "\n".join(rows) + "\n")
        marker.touch()
    return [Path(p) for _, _, p in jobs]


def _decode(path: str) -> int:
    with Image.open(path) as image:
        return image.convert("RGB").size[0]


def floor_rate(paths: list[Path]) -> float:
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(_decode, map(str, paths[:16])))  # start the workers first
        start = time.perf_counter()
        list(pool.map(_decode, map(str, paths), chunksize=16))
        return len(paths) / (time.perf_counter() - start)


def _tree_rss(pid: int) -> int:
    """Resident memory of a process and all its descendants, in bytes (Linux /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(stat[1]), []).append(int(entry.name))
            rss[int(entry.name)] = int(stat[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += rss.get(current, 0)
        todo += children.get(current, [])
    return total


def run_pipeline(profile: Path, workdir: Path) -> tuple[dict, int]:
    """The conversion stages alone (convert, lmdb) in a pipeline process: their state and the
    peak memory of the process tree."""
    env = dict(os.environ, HF_HOME=str(workdir.parent / "hf"), HF_HUB_OFFLINE="1")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "retclip_pipeline",
            "--profile",
            str(profile),
            "--workdir",
            str(workdir),
            "--stages",
            STAGES,
            "--restart",
        ],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = 0

    def sample() -> None:
        nonlocal peak
        while process.poll() is None:
            peak = max(peak, _tree_rss(process.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    _, err = process.communicate()
    sampler.join()
    if process.returncode:
        sys.exit(f"pipeline failed:\n{err}")
    return json.loads(RunLayout.of_folder(workdir).state.read_text())["stages"], peak


def _steady_rate(events_path: Path) -> float | None:
    """Images/s between the first and the last convert progress event (None with fewer than
    two, as a quick run may give)."""
    events = [json.loads(line) for line in events_path.open()]
    last_start = max(i for i, e in enumerate(events) if e["kind"] == "run_started")
    events = events[last_start:]  # the file keeps earlier runs too
    progress = [e for e in events if e["kind"] == "progress" and e["stage"] == "convert"]
    if len(progress) < 2 or progress[-1]["time"] <= progress[0]["time"]:
        return None
    first, last = progress[0], progress[-1]
    return (last["done"] - first["done"]) / (last["time"] - first["time"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/retclip-bench"))
    parser.add_argument("--quick", action="store_true", help="24 images at 64 px: that it runs")
    args = parser.parse_args()
    if args.quick:
        args.images, args.size = 24, 64
    source = args.dir / "source"
    print(f"generating {args.images} source JPEGs of 1600x1200 in {source} ...", flush=True)
    paths = generate(source, args.images)
    mean_kb = sum(p.stat().st_size for p in paths) / len(paths) / 1024
    profile = args.dir / "bench.toml"
    profile.write_text(
        f'name = "bench"\n[hub]\ndataset = "{source}"\n[data]\n'
        f'train_csv = "{source}/prompts.csv"\nimage_size = {args.size}\n'
        f'[model]\ntext = "tiny"\n'
    )
    stages, peak = run_pipeline(profile, args.dir / "run")
    floor = floor_rate(paths)
    convert_s, lmdb_s = stages["convert"]["seconds"], stages["lmdb"]["seconds"]
    layout = RunLayout.of_folder(args.dir / "run")
    inputs = (layout.imgs_tsv("train"), layout.texts_jsonl("train"))
    lmdb_bytes = sum(path.stat().st_size for path in inputs)
    rate = len(paths) / convert_s
    steady = _steady_rate(layout.events)
    print(
        f"cores: {os.cpu_count()}, sources: {len(paths)} JPEGs 1600x1200, {mean_kb:.0f} KB mean, "
        f"target {args.size} px"
    )
    print(
        f"conversion: {rate:.0f} source images/s ({convert_s:.2f} s, whole stage incl. "
        f"data set load and report)"
    )
    shown = f"{steady:.0f} images/s" if steady else "n/a (too few progress events)"
    print(f"conversion, image work alone (first to last progress event): {shown}")
    print(
        f"floor (full decode, same cores): {floor:.0f} images/s; conversion/floor = "
        f"{rate / floor:.2f}"
    )
    print(
        f"lmdb: {lmdb_bytes / 1e6 / lmdb_s:.0f} MB/s ({lmdb_bytes / 1e6:.1f} MB in {lmdb_s:.2f} s)"
    )
    print(f"peak memory (process tree): {peak / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
