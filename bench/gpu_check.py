"""The GPU check behind bench/gpu_check.sh: one table of what a GPU does with RET-CLIP.

1. Training steps of ViT-B/16 + BERT-base (random weights), bf16, batch 128, context 100,
   SDPA attention: step time, samples/s, MFU, and peak memory estimated against measured;
   with gradient checkpointing (as the shipped profiles) and without.
2. A real-size run through the pipeline (convert, LMDB, train) with the data loader in the
   loop: 52 steps of 128 at 224 px, samples/s against the steps alone, and GPU utilisation.
3. The out-of-memory path forced: a batch far too large, and where `train.oom_retry` lands.
4. `--check` on that run: the estimate next to the peak measured on this GPU.
5. The demo profile through training on CUDA.

    python bench/gpu_check.py [--out DIR] [--quick]

`--quick` shrinks every part to seconds (the tests run it on the CPU to keep it working).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS: list[tuple[str, str, str]] = []  # (part, verdict, figures)


def record(part: str, verdict: str, figures: str) -> None:
    RESULTS.append((part, verdict, figures))
    print(f"[{verdict}] {part}: {figures}", flush=True)


def run(command: list[str], timeout: float, log: Path, env: dict | None = None):
    """A command's output goes to `log`; returns (exit code, seconds, output)."""
    started = time.monotonic()
    try:
        done = subprocess.run(
            command,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
        )
        output, code = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as exc:
        output, code = f"{exc.stdout or ''}{exc.stderr or ''}\ntimed out after {timeout} s", 124
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(f"$ {' '.join(command)}\n{output}\n")
    return code, time.monotonic() - started, output


class Utilisation:
    """GPU utilisation sampled every 0.2 s while a block runs (NVML, else nvidia-smi)."""

    def __init__(self):
        self.samples: list[tuple[float, float]] = []  # (time.time(), percent)
        self.stop = threading.Event()

    def _read(self):
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            return lambda: float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        except Exception:
            query = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]
            return lambda: float(subprocess.run(query, capture_output=True, text=True).stdout)

    def _loop(self) -> None:
        try:
            read = self._read()
            while not self.stop.wait(0.2):
                self.samples.append((time.time(), read()))
        except Exception:
            return

    def __enter__(self):
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=5)

    def between(self, start: float, end: float) -> list[float]:
        return [value for when, value in self.samples if start <= when <= end]


STEP_VARIANTS = {"plain": [], "checkpointing": ["--grad-checkpointing"], "compiled": ["--compile"]}


def part_steps(args, log: Path, variants: tuple[str, ...]) -> dict:
    rows = {}
    for variant in variants:
        flags = STEP_VARIANTS[variant]
        command = [sys.executable, "bench/train_bench.py", "--arch", args.arch]
        command += ["--batch", str(args.batch), "--context", "100"]
        command += ["--steps", str(args.steps), "--warmup", "3", *flags]
        code, _, output = run(command, 400, log)
        label = f"steps, {args.arch}, batch {args.batch}, {variant}"
        if code:
            record(label, "FAIL", output.strip().splitlines()[-1][:200])
            continue
        row = json.loads(next(x for x in reversed(output.splitlines()) if x.startswith("{")))
        rows[variant] = row
        mfu = f"{row['mfu']:.1%} MFU" if row.get("mfu") is not None else "MFU n/a"
        record(
            label,
            "ok" if row.get("mfu") is None or row["mfu"] >= 0.35 else "below 35%",
            f"{row['device']}, {row['precision']}, {row['step_ms']} ms a step, "
            f"{row['samples_per_s']} samples/s, {row['tflops']} TFLOP/s, {mfu}; peak memory "
            f"{row['peak_measured_gib']} GiB measured, {row['peak_estimated_gib']} GiB estimated"
            f" (attention: {row.get('attention', '?')})",
        )
    return rows


def _profile_text(folder: Path, towers: dict, csvs: dict, name: str, batch: int, **train) -> str:
    import tomli_w

    profile = {
        "name": name,
        "workdir": str(folder / "run"),
        "hub": {"dataset": str(folder / "set")},
        "data": {
            "train_csv": str(csvs["train"]),
            "test_csv": str(csvs["test"]),
            "on_bad_row": "skip",
        },
        "sizing": {"mode": "custom", "samples": batch * 52 + 4, "test_samples": 256},
        "model": {"vision": str(towers["vision"]), "text": str(towers["text"])},
        "train": {"batch_size": batch, "epochs": 1, "warmup_steps": 5} | train,
    }
    return tomli_w.dumps(profile)


def part_loader_run(args, log: Path, steps_rate: float | None) -> Path | None:
    from tests import realsize

    folder = args.work / "real"
    towers = {"vision": folder / "vit-b-16", "text": folder / "bert-base"}
    if not (towers["text"] / "config.json").exists():
        shape = realsize.SMALL if args.quick else None
        realsize.build_vision(towers["vision"], shape)
        realsize.build_text(towers["text"], realsize.chinese_vocab(), shape)
    csvs = realsize.write_prompt_csvs(folder / "prompts")
    side = 64 if args.quick else 256
    realsize.write_hub_layout_set(folder / "set", image_side=side, distinct=16)
    profile = folder / "run.toml"
    text = _profile_text(folder, towers, csvs, "loop", args.batch, workers=args.workers)
    profile.write_text(text, encoding="utf-8")
    with Utilisation() as gpu:
        code, seconds, output = run(
            [sys.executable, "-m", "retclip_pipeline", "--profile", str(profile)]
            + ["--stages", "convert,lmdb,train"],
            600,
            log,
        )
    if code:
        record("real-size run with the loader", "FAIL", output.strip().splitlines()[-1][:300])
        return None
    events = [json.loads(line) for line in (folder / "run" / "events.jsonl").open()]
    progress = [e for e in events if e.get("kind") == "progress" and e.get("stage") == "train"]
    # The rate between the 10th and the last step: the loader and GPU in their stride.
    first = next((e for e in progress if e["done"] >= 10), progress[0])
    last = progress[-1]
    rate = (last["done"] - first["done"]) * args.batch / max(1e-9, last["time"] - first["time"])
    busy = gpu.between(first["time"], last["time"])  # the training steps alone
    utilisation = f"{sum(busy) / len(busy):.0f}% mean GPU utilisation" if busy else "no NVML"
    keeps_up = steps_rate is None or rate >= 0.9 * steps_rate
    versus = f" against {steps_rate:.0f} without the loader" if steps_rate else ""
    record(
        f"real-size run with the loader ({last['done']} steps of {args.batch})",
        "ok" if keeps_up else "loader-bound",
        f"{rate:.0f} samples/s{versus}; {utilisation}; whole run {seconds:.0f} s",
    )
    return folder


def part_oom(args, folder: Path, log: Path) -> None:
    towers = {"vision": folder / "vit-b-16", "text": folder / "bert-base"}
    csvs = {"train": folder / "prompts/retclip_prompts_full.csv"}
    csvs["test"] = folder / "prompts/retclip_prompts_test.csv"
    too_big = args.batch * 32  # about 400 GB of activations at 128 x 32
    profile = folder / "oom.toml"
    text = _profile_text(
        folder, towers, csvs, "oom", args.batch, oom_retry=True, workers=args.workers
    )
    profile.write_text(text.replace(f"batch_size = {args.batch}\n", f"batch_size = {too_big}\n"))
    code, seconds, output = run(
        [sys.executable, "-m", "retclip_pipeline", "--profile", str(profile), "--stages", "train"],
        600,
        log,
    )
    landed = [line for line in output.splitlines() if "retrying with" in line]
    verdict = "ok" if code == 0 and landed else "FAIL"
    figures = landed[0].split("retrying with ", 1)[1] if landed else output.strip()[-200:]
    record(f"out of memory forced at batch {too_big}", verdict, f"{figures}; {seconds:.0f} s")


def part_check(args, folder: Path, log: Path) -> None:
    code, _, output = run(
        [sys.executable, "-m", "retclip_pipeline", "--profile", str(folder / "run.toml")]
        + ["--check"],
        300,
        log,
    )
    lines = [line for line in output.splitlines() if "training estimate" in line]
    parts = lines[0].split("; ")[1:] if lines else [output.strip()[-300:]]
    record(
        "--check on this GPU: estimate and measured peak",
        "ok" if code == 0 else "FAIL",
        "; ".join(parts)[:700],
    )


def part_demo(args, log: Path) -> None:
    from retclip_pipeline import profile as profiles

    workdir = args.work / "demo"
    demo = ROOT / "profiles" / "demo.toml"
    if args.quick:  # two epochs of the same profile
        settings = profiles.load(demo)
        settings.train.epochs = 2
        demo = args.work / "demo.toml"
        demo.write_text(profiles.dumps(settings, resolved=True), encoding="utf-8")
    command = [sys.executable, "-m", "retclip_pipeline", "--profile", str(demo)]
    command += ["--workdir", str(workdir), "--stages", "convert,lmdb,train"]
    code, seconds, output = run(command, 600, log)
    metrics = workdir / "logs" / "demo" / "metrics.jsonl"
    if code or not metrics.exists():
        record("demo through training on CUDA", "FAIL", output.strip()[-200:])
        return
    final = json.loads(metrics.read_text().splitlines()[-1])
    record(
        "demo through training on CUDA",
        "ok",
        f"{final['epoch']} epochs in {seconds:.0f} s; val_i2t {final.get('val_i2t')}, "
        f"val_i2t_class {final.get('val_i2t_class')}, chance {final.get('val_chance')}",
    )


def guarded(part: str, work):
    """A part that breaks is a FAIL row with its reason; the other parts still run."""
    try:
        return work()
    except Exception as exc:
        record(part, "FAIL", f"{type(exc).__name__}: {exc}"[:300])
        return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="folder for the table, the JSON and the log")
    parser.add_argument("--work", type=Path, default=Path("/tmp/retclip-gpu-check"))
    parser.add_argument("--quick", action="store_true", help="every part in seconds")
    args = parser.parse_args()
    args.arch, args.batch, args.steps, args.workers = "vit-b-16+bert-base", 128, 20, 8
    if args.quick:
        args.arch, args.batch, args.steps, args.workers = "small", 4, 2, 1
    args.work.mkdir(parents=True, exist_ok=True)
    out = args.out or args.work
    out.mkdir(parents=True, exist_ok=True)
    log = out / "gpu_check.log"
    started = time.monotonic()
    variants = ("plain", "checkpointing")
    rows = guarded("training steps", lambda: part_steps(args, log, variants)) or {}
    steps_rate = rows.get("plain", {}).get("samples_per_s")
    folder = guarded("real-size run", lambda: part_loader_run(args, log, steps_rate))
    if folder is not None:
        guarded("--check", lambda: part_check(args, folder, log))
        if args.quick:  # no GPU to run out of
            record("out of memory forced", "skipped", "quick mode")
        else:
            guarded("out of memory", lambda: part_oom(args, folder, log))
    guarded("demo", lambda: part_demo(args, log))
    if not args.quick:  # last: compiling takes minutes, and the other parts matter more
        rows |= guarded("compiled steps", lambda: part_steps(args, log, ("compiled",))) or {}
    table = ["| part | verdict | figures |", "| --- | --- | --- |"]
    table += [f"| {part} | {verdict} | {figures} |" for part, verdict, figures in RESULTS]
    text = "\n".join(table) + f"\n\n{time.monotonic() - started:.0f} s in all\n"
    print("\n" + text)
    (out / "gpu_check.md").write_text(text, encoding="utf-8")
    (out / "gpu_check.json").write_text(json.dumps({"steps": rows, "table": RESULTS}, indent=2))
    return 0 if all(v != "FAIL" for _, v, _ in RESULTS) else 1


if __name__ == "__main__":
    sys.exit(main())
