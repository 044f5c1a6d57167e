"""What a sizing costs before anything runs: images per split, disk in the run folder,
conversion time, and the bytes and time to fetch a hub data set. The wizard's Sizing step
and `--dry-run` print the same lines."""

from __future__ import annotations

import os

from ..profile import Profile
from ..units import about, size

IMAGE_BYTES = 142_000  # the real set's average image (2.3 GB / 16,242)
CONVERT_PER_CORE = 125  # images/s a core, from bench/convert_bench.py on 2 cores (257/s)
LINK = 50e6  # bytes/s: the low end of a Colab or cloud link
# Bytes per pixel of a 95-quality fundus JPEG, measured on the demo and real-like images.
JPEG_BYTES_PER_PIXEL = 0.35


def estimate_output_bytes(profile: Profile, images: int) -> int:
    """Data and LMDB: the TSV and the LMDB hold each image base64-encoded (4/3), twice (both
    eyes), and the LMDB build keeps a working copy until its compacted copy is done."""
    jpeg = profile.data.image_size**2 * JPEG_BYTES_PER_PIXEL
    return int(images * jpeg * 4 / 3 * 2 * 3 * 1.2)


def kept_checkpoints(profile: Profile) -> int:
    """Checkpoint files on disk during training, at most: epoch_latest.pt (and its
    replacement while it is written), epoch{N}.pt every save_every epochs and the last (the
    newest train.keep_last of them), and best.pt when there is a test split to validate on."""
    cfg = profile.train
    epoch_files = cfg.epochs // cfg.save_every + (1 if cfg.epochs % cfg.save_every else 0)
    if cfg.keep_last:
        epoch_files = min(epoch_files, cfg.keep_last)
    return 2 + epoch_files + (1 if profile.data.test_csv else 0)


def training_output_bytes(profile: Profile, parameters: int, trainable: int) -> int:
    """Checkpoints (fp32 weights and AdamW's two moments per trained weight) and the export
    (the transformers folders and the RET-CLIP-layout state dict, fp32)."""
    checkpoint = 4 * parameters + 8 * trainable
    return int(kept_checkpoints(profile) * checkpoint * 1.01 + 2 * 4 * parameters)


def sizing_lines(profile: Profile) -> list[str]:
    """The cost lines; a UserError when the CSVs cannot be read."""
    from ..data.join import things
    from ..data.sampling import plan_counts

    counts = plan_counts(profile)
    unit = things(profile.data)
    images = sum(c["sampled"] for c in counts.values())
    available = sum(c["images"] for c in counts.values())
    cores = os.cpu_count() or 1
    lines = [
        ", ".join(f"{name}: {c['sampled']} of {c['images']} {unit}" for name, c in counts.items()),
        f"disk: about {size(estimate_output_bytes(profile, images))} of data and LMDB in the "
        f"run folder",
        f"conversion: {about(images / (CONVERT_PER_CORE * cores))} on {cores} cores",
    ]
    kind, _ = profile.dataset_source()
    if kind != "hub":
        return lines + ["fetch: none (a local data set)"]
    from ..hub.parquet import fetch_mode

    mode = fetch_mode(profile)
    fetched = available * IMAGE_BYTES
    if mode == "stream":  # row groups of 100 rows: a smoke run reads about two a class
        fetched = min(fetched, images * IMAGE_BYTES * (25 if images <= 200 else 1.1))
    return lines + [
        f"fetch ({mode}): about {size(fetched)}, {about(fetched / LINK)} at 50 MB/s "
        "(nothing if already in the hub cache)"
    ]
