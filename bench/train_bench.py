"""Training throughput and memory: the data loader alone, training steps of a model, and the
memory estimate against what a training step really takes.

    python bench/train_bench.py --loader            # 224 px pairs, augmentation, 2 workers
    python bench/train_bench.py --arch tiny         # steps of the tiny model on this device
    python bench/train_bench.py --arch vit-b-16+bert-base --batch 128 --context 100
                                                    # RET-CLIP's shapes, random weights (no hub)
    python bench/train_bench.py --memory            # estimated vs measured peak memory, two
                                                    # model sizes, with and without checkpointing
    python bench/train_bench.py --quick             # a few seconds of each (run by the tests)

Prints samples/s, step time, peak memory and model FLOPs utilisation (MFU, on GPUs whose peak
is known). Goals: the loader delivers >= 1000 samples/s on a 2-core machine; on a GPU,
ViT-B/16 + BERT-base at context 100, bf16, batch 128 reaches >= 35% MFU.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PEAK_BF16 = {
    "A100": 312e12,
    "H100": 989e12,
    "H200": 989e12,
    "L4": 121e12,
    "A10": 125e12,
    "T4": 65e12,
    "V100": 125e12,
}
# Tower shapes: (layers, width, heads), a 16 px patch ViT and a BERT with 21,128 tokens.
ARCHS = {"small": (4, 256, 4), "vit-b-16+bert-base": (12, 768, 12)}


def make_lmdb(folder: Path, pairs: int, size: int) -> Path:
    """An LMDB split of synthetic fundus pairs (reused when present)."""
    import base64
    import pickle

    from retclip_pipeline.data import demo
    from retclip_pipeline.data.lmdb_io import COUNT_KEYS, build_env

    split = folder / f"lmdb-{pairs}-{size}"
    if (split / "pairs" / "data.mdb").exists():
        return split
    rng = random.Random(0)
    images, texts = [], []
    for index in range(pairs):
        label = demo.CLASSES[index % len(demo.CLASSES)]
        out = io.BytesIO()
        demo.fundus_image(label, rng, (size, size)).save(out, "JPEG", quality=95)
        b64 = base64.urlsafe_b64encode(out.getvalue()).decode()
        images.append((str(index).encode(), pickle.dumps((b64, b64), protocol=4), 1))
        texts.append(
            (
                str(index).encode(),
                pickle.dumps((index, index, demo.prompt_for(label, rng)), protocol=4),
                1,
            )
        )
    build_env(split / "imgs", folder / ".b1", iter(images), COUNT_KEYS["imgs"], 1)
    build_env(split / "pairs", folder / ".b2", iter(texts), COUNT_KEYS["pairs"], 1)
    return split


def bench_loader(args) -> None:
    import torch

    from retclip_pipeline.model.tokenizer import load_tokenizer
    from retclip_pipeline.training.data import Collate, EpochBatches, TrainPairs, image_transform

    pairs = 128 if args.quick else 1024
    split = make_lmdb(args.dir, pairs, args.image_size)
    dataset = TrainPairs(split, image_transform(args.image_size, True, True), 0)
    collate = Collate(load_tokenizer("tiny"), args.context)
    for epoch in range(2):  # the first epoch warms the page cache and the workers up
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_sampler=EpochBatches(len(dataset), 64, 0, epoch),
            num_workers=args.workers,
            collate_fn=collate,
        )
        start, count = time.perf_counter(), 0
        for batch in loader:
            count += batch["left"].shape[0]
        rate = count / (time.perf_counter() - start)
    print(
        f"loader: {rate:.0f} samples/s ({args.image_size} px pairs, augmentation and flips, "
        f"{args.workers} workers, tokenised at context {args.context})"
    )


def build_model(arch: str, image_size: int, context: int):
    """(RetClip with random weights, vocabulary size) for an ARCHS entry or `tiny`."""
    from transformers import BertConfig, BertModel, ChineseCLIPVisionConfig, ChineseCLIPVisionModel

    from retclip_pipeline.model.build import ModelSpec, build
    from retclip_pipeline.model.retclip import RetClip

    if arch == "tiny":
        model, tokenizer = build(ModelSpec("tiny", "tiny", context, image_size))
        return model, len(tokenizer)
    layers, width, heads = ARCHS[arch]
    vision = ChineseCLIPVisionModel(
        ChineseCLIPVisionConfig(
            hidden_size=width,
            intermediate_size=4 * width,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            image_size=image_size,
            patch_size=16,
        )
    )
    text = BertModel(
        BertConfig(
            vocab_size=21128,
            hidden_size=width,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=4 * width,
        ),
        add_pooling_layer=False,
    )
    return RetClip(vision, width, text, width, 512), 21128


def _settings(args):
    """A profile carrying what the estimate reads: context, checkpointing, single eyes."""
    from retclip_pipeline.profile import Profile

    profile = Profile()
    profile.model.context_length = args.context
    profile.train.grad_checkpointing = args.grad_checkpointing
    return profile


def bench_steps(args) -> dict:
    import torch

    from retclip_pipeline.model.loss import retclip_loss
    from retclip_pipeline.preflight.estimate import memory, sample_flops, shapes_of
    from retclip_pipeline.training.device import checkpointing
    from retclip_pipeline.training.optim import make_optimizer

    device = torch.device("cuda" if torch.cuda.is_available() and args.device != "cpu" else "cpu")
    model, vocab = build_model(args.arch, args.image_size, args.context)
    shapes = shapes_of(model)
    model.to(device).train()
    if args.grad_checkpointing:
        checkpointing(model)
    optimizer = make_optimizer(model, 1e-5, 0.001)
    forward = torch.compile(model) if args.compile else model
    dtype = torch.bfloat16 if device.type == "cuda" else None
    images = torch.randn(args.batch, 3, args.image_size, args.image_size, device=device)
    ids = torch.randint(5, vocab, (args.batch, args.context), device=device)
    mask = torch.ones_like(ids)

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss, _ = retclip_loss(forward(images, None, ids, mask))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    rss_before = _rss()
    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / args.steps
    rate = args.batch / seconds
    train_flops, _ = sample_flops(_settings(args), shapes)
    achieved = train_flops * rate
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    estimated = memory(
        _settings(args), shapes, args.batch, fp32=dtype is None, cpu=device.type == "cpu"
    )
    if device.type == "cuda":
        measured = torch.cuda.max_memory_allocated()
        estimated_bytes = estimated.total - estimated.overhead  # the allocator's share
    else:
        measured = _peak_rss()
        estimated_bytes = estimated.total
    result = {
        "device": name,
        "arch": args.arch,
        "parameters_m": round(shapes.parameters / 1e6, 1),
        "batch": args.batch,
        "checkpointing": args.grad_checkpointing,
        "precision": "bf16" if dtype else "fp32",
        "step_ms": round(seconds * 1000, 1),
        "samples_per_s": round(rate, 1),
        "tflops": round(achieved / 1e12, 2),
        "mfu": round(achieved / peak, 3) if peak else None,
        "peak_measured_gib": round(measured / 2**30, 2),
        "peak_estimated_gib": round(estimated_bytes / 2**30, 2),
        "rss_before_steps_gib": round(rss_before / 2**30, 2),
        "attention": getattr(model.visual.config, "_attn_implementation", None),
        "compiled": args.compile,
    }
    print(json.dumps(result))
    return result


def _peak_rss() -> int:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, it does not keep the
    forking parent's peak across exec)."""
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _rss() -> int:
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * 4096


def bench_memory(args) -> None:
    """Estimated against measured peak memory, each case in a fresh process (a process's
    peak RSS never goes down)."""
    cases = [("small", 16)]
    if not args.quick:
        cases += [("small", 4), ("vit-b-16+bert-base", 2), ("vit-b-16+bert-base", 8)]
    print(
        "| model | batch | checkpointing | estimated | measured | estimate / measured |\n"
        "| --- | --- | --- | --- | --- | --- |"
    )
    for arch, batch in cases:
        for checkpointing in (False, True):
            command = [
                sys.executable,
                __file__,
                "--arch",
                arch,
                "--batch",
                str(batch),
                "--steps",
                "1",
                "--warmup",
                "1",
                "--device",
                args.device,
                "--context",
                str(args.context),
            ]
            if checkpointing:
                command.append("--grad-checkpointing")
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            row = json.loads(done.stdout.strip().splitlines()[-1])
            ratio = row["peak_estimated_gib"] / row["peak_measured_gib"]
            print(
                f"| {arch} ({row['parameters_m']} M) | {batch} | {'on' if checkpointing else 'off'}"
                f" | {row['peak_estimated_gib']:.2f} GiB | {row['peak_measured_gib']:.2f} GiB"
                f" | {ratio:.2f} |",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loader", action="store_true", help="measure the data loader alone")
    parser.add_argument("--memory", action="store_true", help="estimated vs measured memory")
    parser.add_argument("--quick", action="store_true", help="a few seconds of each mode")
    parser.add_argument("--arch", default="tiny", choices=("tiny", *ARCHS))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--context", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu"))
    parser.add_argument("--grad-checkpointing", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/retclip-train-bench"))
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    if args.quick:
        args.steps, args.warmup, args.batch = 1, 1, min(args.batch, 4)
        bench_loader(args)
        bench_steps(args)
        args.device = "cpu"
        bench_memory(args)
        return
    if args.loader:
        bench_loader(args)
    elif args.memory:
        bench_memory(args)
    else:
        bench_steps(args)


if __name__ == "__main__":
    main()
