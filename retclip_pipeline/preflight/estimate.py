"""Before a long run: parameters, memory at the chosen batch size, and time per epoch, for
this machine's device and for a GPU the user names (`--gpu` or `train.gpu`).

Everything comes from the towers' configs, built on the meta device (no weights are read).
Memory: 4 bytes per parameter for the fp32 weights (plus 2 for the half-precision copies
autocast keeps), 4 for gradients and 8 for AdamW's moments per trained parameter, and the
activations a training step keeps. Those follow Korthikanti et al. (2022), s*h*34 bytes per
layer and sample in pure half precision, with the constant measured here: 46 under bf16
autocast (the residual stream and the norms stay fp32; an H200 at batch 128) and 68 in fp32
(a CPU), plus 5*a*s^2 (half) where the attention keeps its probabilities (on the CPU with
attention dropout; fused GPU kernels keep none). Gradient checkpointing keeps each layer's
input and one layer recomputed at a time (two on a CPU, whose allocator holds the freed one);
a frozen tower keeps nothing. Time: training FLOPs (3 forward passes' worth, 4 with checkpointing, 1 for a
frozen tower) over the GPU's bf16 peak at an assumed utilisation, or over this CPU's
measured matrix rate; measured over a few steps on a GPU that is present.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import UserError
from ..profile import GPU_CHOICES, Profile
from ..units import about
from ..units import memory as size

GiB = 2**30
# Share of the bf16 peak a training step reaches (bench/gpu_check.sh measures it).
ASSUMED_UTILISATION = 0.30
CPU_EFFICIENCY = 0.6  # training's share of a plain matrix product's rate on a CPU
SMALL_MODEL = 10_000_000  # parameters: below this, a few CPU steps are quick to measure
CPU_PROCESS_BYTES = 1.2 * GiB  # Python, torch and transformers themselves, loader workers
GPU_CONTEXT_BYTES = 0.6 * GiB  # the CUDA context and kernels, outside the allocator


@dataclass(frozen=True)
class Gpu:
    name: str
    memory: float  # bytes
    peak: float  # dense half-precision FLOP/s: bf16, or fp16 where there is no bf16
    bf16: bool = True


GPUS = {
    "a100-40gb": Gpu("A100 40GB", 40 * 1e9, 312e12),
    "a100-80gb": Gpu("A100 80GB", 80 * 1e9, 312e12),
    "h100": Gpu("H100 80GB SXM", 80 * 1e9, 989e12),
    "l4": Gpu("L4 24GB", 24 * 1e9, 121e12),
    "t4": Gpu("T4 16GB", 16 * 1e9, 65e12, bf16=False),
}
assert set(GPUS) == set(GPU_CHOICES) - {""}


@dataclass
class Memory:
    weights: float
    gradients: float
    optimizer: float
    activations: float
    overhead: float

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations + self.overhead

    def text(self) -> str:
        parts = [
            ("weights", self.weights),
            ("gradients", self.gradients),
            ("optimizer", self.optimizer),
            ("activations", self.activations),
            ("runtime", self.overhead),
        ]
        return " + ".join(f"{name} {size(v)}" for name, v in parts if v) + f" = {size(self.total)}"


@dataclass
class Target:
    """The run on one device: where, its memory, whether it fits, and time per epoch."""

    device: str
    memory: Memory
    capacity: float | None  # bytes available on that device, when known
    epoch_seconds: float | None
    how: str  # how the time was obtained
    measured_peak: float | None = None
    advice: str = "lower train.batch_size"  # what to change when it does not fit

    @property
    def fits(self) -> bool:
        if self.capacity is None:
            return True
        if self.measured_peak is not None:  # a step ran at this batch: trust what it used
            return self.measured_peak + GPU_CONTEXT_BYTES < 0.95 * self.capacity
        return self.memory.total < 0.92 * self.capacity

    def lines(self, batch: int, precision: str) -> list[str]:
        where = f"on {self.device}"
        verdict = ""
        if self.capacity:
            verdict = f" of {size(self.capacity)}: " + (
                "fits" if self.fits else f"DOES NOT FIT: {self.advice}"
            )
        out = [f"memory {where} at batch {batch} ({precision}): {self.memory.text()}{verdict}"]
        if self.measured_peak is not None:
            out.append(f"measured peak {where}: {size(self.measured_peak)} (allocator)")
        if self.epoch_seconds is not None:
            out.append(f"time per epoch {where}: {about(self.epoch_seconds)} ({self.how})")
        else:
            out.append(f"time per epoch {where}: not estimated ({self.how})")
        return out


@dataclass
class Estimate:
    parameters: int
    trainable: int
    batch: int
    pairs: int
    here: Target  # this machine's device, where the run would train
    named: Target | None = None  # the GPU named by --gpu or train.gpu
    precision_here: str = "fp32"
    precision_named: str = "bf16"

    @property
    def fits(self) -> bool:
        return self.here.fits and (self.named is None or self.named.fits)

    def lines(self) -> list[str]:
        out = [
            f"{self.parameters / 1e6:.2f} M parameters ({self.trainable / 1e6:.2f} M trained), "
            f"{self.pairs:,} train pairs"
        ]
        out += self.here.lines(self.batch, self.precision_here)
        if self.named is not None:
            out += self.named.lines(self.batch, self.precision_named)
        return out


@dataclass
class Shapes:
    """What the estimate needs of the model: parameter counts and each tower's geometry."""

    parameters: int
    trainable: int
    towers: dict[str, dict]  # "vision" / "text": layers, width, heads, weights, dropout, trained
    patches: int  # tokens per image, [CLS] included


def model_shapes(profile: Profile) -> Shapes:
    """Build the model on the meta device from the towers' configs: nothing is allocated
    and no weights are read."""
    import torch

    from ..model.build import build
    from ..training.device import freeze

    spec = profile.model_spec()
    with torch.device("meta"):
        model, _ = build(spec, weights=False)
    freeze(model, profile.model.freeze)
    return shapes_of(model)


def shapes_of(model) -> Shapes:
    """The estimate's view of a built RetClip model (on any device, the meta one too)."""
    towers = {}
    for key, tower in (("vision", model.visual), ("text", model.bert)):
        config = tower.config
        towers[key] = {
            "layers": config.num_hidden_layers,
            "width": config.hidden_size,
            "heads": config.num_attention_heads,
            "weights": sum(p.numel() for n, p in tower.named_parameters() if "embed" not in n),
            "dropout": float(getattr(config, "attention_probs_dropout_prob", 0.0) or 0.0)
            + float(getattr(config, "attention_dropout", 0.0) or 0.0),
            "trained": any(p.requires_grad for p in tower.parameters()),
        }
    config = model.visual.config
    return Shapes(
        sum(p.numel() for p in model.parameters()),
        sum(p.numel() for p in model.parameters() if p.requires_grad),
        towers,
        (config.image_size // config.patch_size) ** 2 + 1,
    )


def forward_flops(tower: dict, tokens: int) -> float:
    """One forward pass of a transformer tower over `tokens` tokens: 2 FLOPs per weight and
    token, plus attention's 4 * layers * tokens^2 * width."""
    return 2 * tower["weights"] * tokens + 4 * tower["layers"] * tokens**2 * tower["width"]


AUTOCAST_LAYER_BYTES = 46  # per token and width: measured, bf16 autocast (Korthikanti: 34)
FP32_LAYER_BYTES = 68


def _layer_bytes(tower: dict, tokens: int, fp32: bool, keeps_probabilities: bool) -> float:
    s, h, a = tokens, tower["width"], tower["heads"]
    probabilities = 5 * a * s * s * (2 if fp32 else 1) if keeps_probabilities else 0
    return s * h * (FP32_LAYER_BYTES if fp32 else AUTOCAST_LAYER_BYTES) + probabilities


def activation_bytes(
    tower: dict, tokens: int, *, fp32: bool, checkpointing: bool, cpu: bool
) -> float:
    """Bytes one sample's pass through a tower keeps for the backward pass."""
    if not tower["trained"]:
        return 0.0
    keeps = cpu and tower["dropout"] > 0  # fused GPU attention keeps no probabilities
    layer = _layer_bytes(tower, tokens, fp32, keeps)
    if checkpointing:  # each layer's input, and the layer (or two) being recomputed
        return tower["layers"] * tokens * tower["width"] * (4 if fp32 else 2) + layer * (
            2 if cpu else 1
        )
    return tower["layers"] * layer


def passes(profile: Profile) -> tuple[int, int]:
    """(images, texts) a training sample sends through the towers: one image when both eyes
    are the same image; three texts with per-eye prompts."""
    paired = profile.data.eyes == "paired"
    return (2, 3) if paired else (1, 1)


def sample_flops(profile: Profile, shapes: Shapes) -> tuple[float, float]:
    """(training FLOPs, forward FLOPs) per sample."""
    images, texts = passes(profile)
    vision, text = shapes.towers["vision"], shapes.towers["text"]
    context = profile.model.context_length
    forward = images * forward_flops(vision, shapes.patches) + texts * forward_flops(text, context)
    factor = 4 if profile.train.grad_checkpointing else 3
    train = 0.0
    for tower, tokens, count in ((vision, shapes.patches, images), (text, context, texts)):
        train += count * forward_flops(tower, tokens) * (factor if tower["trained"] else 1)
    return train, forward


def memory(profile: Profile, shapes: Shapes, batch: int, *, fp32: bool, cpu: bool) -> Memory:
    images, texts = passes(profile)
    checkpointing = profile.train.grad_checkpointing
    per_sample = images * activation_bytes(
        shapes.towers["vision"], shapes.patches, fp32=fp32, checkpointing=checkpointing, cpu=cpu
    ) + texts * activation_bytes(
        shapes.towers["text"],
        profile.model.context_length,
        fp32=fp32,
        checkpointing=checkpointing,
        cpu=cpu,
    )
    return Memory(
        weights=shapes.parameters * (4 if fp32 else 6),
        gradients=4 * shapes.trainable,
        optimizer=8 * shapes.trainable,
        activations=per_sample * batch,
        overhead=CPU_PROCESS_BYTES if cpu else GPU_CONTEXT_BYTES,
    )


def memory_advice(profile: Profile) -> str:
    """What lowers the memory, of what the profile has not done yet."""
    more = []
    if not profile.train.grad_checkpointing:
        more.append("set train.grad_checkpointing = true")
    if profile.model.freeze != "both":
        more.append("freeze a tower (model.freeze)")
    return "lower train.batch_size" + (f", or {' or '.join(more)}" if more else "")


def cpu_flops() -> float:
    """This CPU's fp32 matrix-product rate, measured for a fifth of a second."""
    import time

    import torch

    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    start, count = time.perf_counter(), 0
    while time.perf_counter() - start < 0.2:
        a @ b
        count += 1
    return 2 * 1024**3 * count / (time.perf_counter() - start)


def available_ram() -> float | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def estimate(
    profile: Profile, pairs: int, gpu: str | None = None, measure: bool = True, test_pairs: int = 0
) -> Estimate:
    """The estimate for `pairs` train pairs (and `test_pairs` validated each epoch); `gpu` (a
    GPUS key) adds that GPU; `measure` times a few steps on a GPU that is present."""
    import torch

    from ..profile import train_batch_size
    from ..training.measure import measure_steps

    shapes = model_shapes(profile)
    batch, _ = train_batch_size(profile, pairs)
    train_flops, forward = sample_flops(profile, shapes)
    epoch_flops = train_flops * pairs + forward * test_pairs
    cfg = profile.train
    cuda = torch.cuda.is_available() and cfg.device != "cpu"
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise UserError(
            'train.device = "cuda" but this machine has no GPU: set it to "auto" or "cpu", '
            "or run on a GPU machine"
        )
    if cuda:
        here, precision_here = _present_gpu(profile, shapes, batch, pairs, measure)
    else:
        fp32 = cfg.precision != "bf16"
        if shapes.parameters < SMALL_MODEL and measure:  # overheads dominate: time it
            seconds, _ = measure_steps(profile, "cpu", batch)
            epoch_seconds = seconds * math.ceil(pairs / batch)
            how = f"measured over 3 steps of {batch} on the CPU"
        else:
            rate = cpu_flops() * CPU_EFFICIENCY
            epoch_seconds = epoch_flops / rate
            how = (
                f"{epoch_flops / 1e12:,.1f} TFLOP per epoch at {rate / 1e9:.0f} GFLOP/s, "
                f"{CPU_EFFICIENCY:.0%} of this CPU's measured matrix rate"
            )
        here = Target(
            "this machine's CPU (no GPU found)",
            memory(profile, shapes, batch, fp32=fp32, cpu=True),
            available_ram(),
            epoch_seconds,
            how,
        )
        precision_here = "bf16" if not fp32 else "fp32"
    named = None
    precision_named = "bf16"
    gpu = gpu or cfg.gpu
    if gpu:
        card = GPUS[gpu]
        fp32 = cfg.precision == "fp32"
        precision_named = "fp32" if fp32 else ("bf16" if card.bf16 else "fp16")
        peak = card.peak / (4 if fp32 else 1)  # no tensor cores for fp32 matrices
        named = Target(
            card.name,
            memory(profile, shapes, batch, fp32=fp32, cpu=False),
            card.memory,
            epoch_flops / (peak * ASSUMED_UTILISATION),
            f"{epoch_flops / 1e12:,.0f} TFLOP per epoch at an assumed "
            f"{ASSUMED_UTILISATION:.0%} of its {peak / 1e12:.0f} TFLOP/s {precision_named} peak",
        )
    for target in (here, named):
        if target is not None:
            target.advice = memory_advice(profile)
    return Estimate(
        shapes.parameters,
        shapes.trainable,
        batch,
        pairs,
        here,
        named,
        precision_here,
        precision_named,
    )


def _present_gpu(profile, shapes, batch, pairs, measure) -> tuple[Target, str]:
    import torch

    from ..training.device import resolve_precision
    from ..training.measure import measure_steps

    device = torch.device("cuda")
    dtype = resolve_precision(profile.train.precision, device)
    precision = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")
    props = torch.cuda.get_device_properties(0)
    estimated = memory(profile, shapes, batch, fp32=dtype is None, cpu=False)
    if not measure:
        return Target(props.name, estimated, props.total_memory, None, "not measured"), precision
    seconds, peak = measure_steps(profile, "cuda", batch)
    steps = math.ceil(pairs / batch)
    return (
        Target(
            props.name,
            estimated,
            props.total_memory,
            seconds * steps,
            f"measured over 3 steps of {batch} on this GPU",
            measured_peak=peak,
        ),
        precision,
    )
