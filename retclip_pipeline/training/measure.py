"""A few training steps of a profile's model on random data: their time, and on a GPU the
peak memory they took. Estimates time with it; the out-of-memory search probes with it."""

from __future__ import annotations

from ..errors import UserError
from ..profile import Profile


def measure_steps(profile: Profile, device_type: str, batch: int) -> tuple[float, float | None]:
    """(seconds per step, peak allocator bytes on a GPU) from three timed training steps on
    random data, after one warm-up. Out of memory is a user error naming the batch."""
    import time

    import torch

    from ..model.build import build
    from ..model.loss import retclip_loss
    from .device import checkpointing, freeze, resolve_precision
    from .optim import make_optimizer

    cfg = profile.train
    model, tokenizer = build(
        profile.model_spec(),
        weights=False,  # random weights time the same as trained ones
    )
    freeze(model, profile.model.freeze)
    if cfg.grad_checkpointing:
        checkpointing(model)
    device = torch.device(device_type)
    model.to(device).train()
    dtype = resolve_precision(cfg.precision, device)
    optimizer = make_optimizer(model, 1e-6, 0.0)
    side = model.visual.config.image_size
    paired = profile.data.eyes == "paired"
    images = torch.randn(batch, 3, side, side, device=device)
    ids = torch.randint(5, len(tokenizer), (batch, profile.model.context_length), device=device)
    cuda = device_type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    try:
        for index in range(4):
            if index == 1:
                sync()
                start = time.perf_counter()
            with torch.autocast(device_type, dtype=dtype, enabled=dtype is not None):
                eye_texts = (ids, None, ids, None) if paired else None
                loss, _ = retclip_loss(
                    model(images, images if paired else None, ids, None, eye_texts)
                )
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        sync()
        seconds = (time.perf_counter() - start) / 3
        peak = torch.cuda.max_memory_allocated() if cuda else None
    except torch.cuda.OutOfMemoryError:
        raise UserError(
            f"out of GPU memory at train.batch_size = {batch} while estimating: lower it "
            f"and raise train.accumulation, or set train.grad_checkpointing = true"
        ) from None
    finally:
        del model, optimizer
        if cuda:
            torch.cuda.empty_cache()
    return seconds, peak
