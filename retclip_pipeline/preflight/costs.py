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


def sizing_lines(profile: Profile) -> list[str]:
    """The cost lines; a UserError when the CSVs cannot be read."""
    from ..data.join import things
    from ..data.sampling import plan_counts
    from .check import estimate_output_bytes

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
