"""Before a long run: parameters, memory at the chosen batch size, and time per epoch.

Memory follows Korthikanti et al. (2022) for transformer activations: s*h*(34 + 5*a*s/h)
bytes per layer and sample in half precision (twice that in fp32; 2*s*h with gradient
checkpointing), plus 16 bytes per trainable parameter (fp32 weights, gradients and AdamW's
two moments) and 4 per frozen one. Time comes from a few measured steps on a GPU, or from
FLOPs at the rate measured on a small CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UserError
from .profile import Profile

CPU_FLOPS = 0.13e12  # measured with bench/train_bench.py on the 2-core development machine
SMALL_MODEL = 10_000_000  # parameters: below this, a few CPU steps are quick to measure


@dataclass
class Estimate:
    parameters: int
    trainable: int
    memory_bytes: int
    device: str
    device_memory: int | None
    epoch_seconds: float | None
    how: str  # how the time was obtained

    def lines(self, batch_size: int) -> list[str]:
        fits = ""
        if self.device_memory:
            verdict = "fits" if self.fits else "DOES NOT FIT: lower train.batch_size"
            fits = f" of {_size(self.device_memory)}: {verdict}"
        out = [
            f"{self.parameters / 1e6:.2f} M parameters ({self.trainable / 1e6:.2f} M trained)",
            f"memory at batch {batch_size}: about {_size(self.memory_bytes)} on {self.device}{fits}",
        ]
        if self.epoch_seconds is not None:
            out.append(f"time per epoch: about {_duration(self.epoch_seconds)} ({self.how})")
        else:
            out.append(f"time per epoch: not estimated ({self.how})")
        return out

    @property
    def fits(self) -> bool:
        return not self.device_memory or self.memory_bytes < 0.9 * self.device_memory


def _size(count: float) -> str:
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.0f} MiB"


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _activation_bytes(config, tokens: int, half: bool, checkpointing: bool) -> float:
    h, a, layers = config.hidden_size, config.num_attention_heads, config.num_hidden_layers
    if checkpointing:
        per_layer = 2 * tokens * h
    else:
        per_layer = tokens * h * (34 + 5 * a * tokens / h)
    return layers * per_layer * (1 if half else 2)


def estimate(profile: Profile, pairs: int) -> Estimate:
    import torch

    from .model.build import ModelSpec, build
    from .train import freeze

    spec = ModelSpec(
        profile.model.vision,
        profile.model.text,
        profile.model.context_length,
        profile.data.image_size,
    )
    with torch.device("meta"):
        model, _ = build(spec)
    freeze(model, profile.model.freeze)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    cfg = profile.train
    cuda = torch.cuda.is_available() and cfg.device != "cpu"
    half = cuda and cfg.precision != "fp32"
    patches = (model.visual.config.image_size // model.visual.config.patch_size) ** 2 + 1
    eyes = 1 if profile.data.eyes == "single" else 2
    texts = 1 if profile.data.eyes == "single" else 3
    per_sample = eyes * _activation_bytes(
        model.visual.config, patches, half, cfg.grad_checkpointing
    ) + texts * _activation_bytes(
        model.bert.config, profile.model.context_length, half, cfg.grad_checkpointing
    )
    memory = int(16 * trainable + 4 * (total - trainable) + per_sample * cfg.batch_size)
    device_memory = torch.cuda.get_device_properties(0).total_memory if cuda else None
    flops = 3 * (
        eyes * _forward_flops(model.visual, patches)
        + texts * _forward_flops(model.bert, profile.model.context_length)
    )
    if cuda:
        seconds_per_sample, how = _measure(profile, "cuda"), "measured over 3 steps on this GPU"
    elif total < SMALL_MODEL:
        seconds_per_sample, how = _measure(profile, "cpu"), "measured over 3 steps on the CPU"
    else:
        seconds_per_sample, how = flops / CPU_FLOPS, "no GPU: from FLOPs at a small CPU's rate"
    name = torch.cuda.get_device_name(0) if cuda else "the CPU"
    return Estimate(total, trainable, memory, name, device_memory, seconds_per_sample * pairs, how)


def _forward_flops(tower, tokens: int) -> float:
    config = tower.config
    weights = sum(p.numel() for n, p in tower.named_parameters() if "embed" not in n)
    return 2 * weights * tokens + 4 * config.num_hidden_layers * tokens**2 * config.hidden_size


def _measure(profile: Profile, device_type: str) -> float:
    """Seconds per pair from three timed training steps on random data, after one warm-up."""
    import time

    import torch

    from .loss import retclip_loss
    from .model.build import ModelSpec, build
    from .train import freeze, resolve_precision
    from .training.optim import make_optimizer

    cfg = profile.train
    model, tokenizer = build(
        ModelSpec(
            profile.model.vision,
            profile.model.text,
            profile.model.context_length,
            profile.data.image_size,
        )
    )
    freeze(model, profile.model.freeze)
    device = torch.device(device_type)
    model.to(device).train()
    dtype = resolve_precision(cfg.precision, device)
    optimizer = make_optimizer(model, 1e-6, 0.0)
    size = model.visual.config.image_size
    images = torch.randn(cfg.batch_size, 3, size, size, device=device)
    ids = torch.randint(
        5, len(tokenizer), (cfg.batch_size, profile.model.context_length), device=device
    )
    sync = torch.cuda.synchronize if device_type == "cuda" else (lambda: None)
    try:
        for index in range(4):
            if index == 1:
                sync()
                start = time.perf_counter()
            with torch.autocast(device_type, dtype=dtype, enabled=dtype is not None):
                loss, _ = retclip_loss(model(images, None, ids))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        sync()
    except torch.cuda.OutOfMemoryError:
        raise UserError(
            f"out of GPU memory at train.batch_size = {cfg.batch_size} while "
            f"estimating: lower it and raise train.accumulation"
        ) from None
    finally:
        del model, optimizer
        if device_type == "cuda":
            torch.cuda.empty_cache()
    return (time.perf_counter() - start) / 3 / cfg.batch_size
