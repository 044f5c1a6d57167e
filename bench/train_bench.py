"""Training throughput: the data loader alone, and full training steps of a model.

    python bench/train_bench.py --loader            # 224 px pairs, augmentation, 2 workers
    python bench/train_bench.py --arch tiny         # steps of the tiny model on this device
    python bench/train_bench.py --arch vit-b-16+bert-base --batch 128 --context 100
                                                    # RET-CLIP's shapes, random weights (no hub)

Prints samples/s, step time, peak memory and model FLOPs utilisation (MFU, on GPUs whose peak
is known). Goals: the loader delivers >= 1000 samples/s on a 2-core machine; on a GPU,
ViT-B/16 + BERT-base at context 100, bf16, batch 128 reaches >= 35% MFU.
"""

from __future__ import annotations

import argparse
import io
import random
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


def make_lmdb(folder: Path, pairs: int, size: int) -> Path:
    """An LMDB split of synthetic 224 px fundus pairs (reused when present)."""
    import base64
    import pickle

    from retclip_pipeline import demo
    from retclip_pipeline.lmdb_store import COUNT_KEYS, build_env

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

    split = make_lmdb(args.dir, 1024, args.image_size)
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


def build_model(args):
    from transformers import BertConfig, BertModel, ChineseCLIPVisionConfig, ChineseCLIPVisionModel

    from retclip_pipeline.model.build import ModelSpec, build
    from retclip_pipeline.model.retclip import RetClip

    if args.arch == "tiny":
        model, tokenizer = build(ModelSpec("tiny", "tiny", args.context, args.image_size))
        return model, len(tokenizer)
    vision = ChineseCLIPVisionModel(
        ChineseCLIPVisionConfig(
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            image_size=args.image_size,
            patch_size=16,
        )
    )
    text = BertModel(
        BertConfig(
            vocab_size=21128,
            hidden_size=768,
            num_hidden_layers=12,
            num_attention_heads=12,
            intermediate_size=3072,
        ),
        add_pooling_layer=False,
    )
    return RetClip(vision, 768, text, 768, 512), 21128


def flops_per_sample(model, args) -> float:
    """Training FLOPs for one pair (one image encoded, as for single-eye data, and one text):
    3 x (2 x weights x tokens + attention's 4 x layers x tokens^2 x width)."""

    def tower(module, tokens: int) -> float:
        config = module.config
        weights = sum(p.numel() for n, p in module.named_parameters() if "embed" not in n)
        return 2 * weights * tokens + 4 * config.num_hidden_layers * tokens**2 * config.hidden_size

    patches = (args.image_size // model.visual.config.patch_size) ** 2 + 1
    return 3 * (tower(model.visual, patches) + tower(model.bert, args.context))


def bench_steps(args) -> None:
    import torch

    from retclip_pipeline.loss import retclip_loss
    from retclip_pipeline.training.optim import make_optimizer

    device = torch.device("cuda" if torch.cuda.is_available() and args.device != "cpu" else "cpu")
    model, vocab = build_model(args)
    model.to(device).train()
    if args.grad_checkpointing:
        model.visual.gradient_checkpointing_enable()
        model.bert.gradient_checkpointing_enable()
    optimizer = make_optimizer(model, 1e-5, 0.001)
    dtype = torch.bfloat16 if device.type == "cuda" else None
    images = torch.randn(args.batch, 3, args.image_size, args.image_size, device=device)
    ids = torch.randint(5, vocab, (args.batch, args.context), device=device)
    mask = torch.ones_like(ids)

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss, _ = retclip_loss(model(images, None, ids, mask))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

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
    achieved = flops_per_sample(model, args) * rate
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    if device.type == "cuda":
        memory = f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB"
    else:
        import resource

        memory = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB (RSS)"
    mfu = f"{achieved / peak:.1%} of {peak / 1e12:.0f} TFLOP/s" if peak else "n/a (peak unknown)"
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(
        f"device: {name}; model: {args.arch} ({params:.1f} M parameters), batch {args.batch}, "
        f"{args.image_size} px, context {args.context}, {'bf16' if dtype else 'fp32'}"
    )
    print(
        f"step: {seconds * 1000:.1f} ms, {rate:.1f} samples/s, {achieved / 1e12:.2f} TFLOP/s, "
        f"MFU {mfu}, peak memory {memory}"
    )
    if peak:
        epoch_min = 12989 / rate / 60
        print(f"10 epochs of 12,989 pairs: {10 * epoch_min:.1f} min at this rate")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loader", action="store_true", help="measure the data loader alone")
    parser.add_argument("--arch", default="tiny", choices=("tiny", "vit-b-16+bert-base"))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--context", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu"))
    parser.add_argument("--grad-checkpointing", action="store_true")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/retclip-train-bench"))
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    if args.loader:
        bench_loader(args)
    else:
        bench_steps(args)


if __name__ == "__main__":
    main()
