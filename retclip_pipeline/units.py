"""Numbers as people read them: sizes in MB and GB, durations as h:mm:ss, counts and rates
in their unit. The one place the console, the estimates, the checks and the wizard format
them."""

from __future__ import annotations

BYTE_UNITS = ("bytes", "B")  # "B": events files of earlier versions


def size(count: float) -> str:
    """Bytes in decimal units (as disks and downloads are sold): 512 B, 3.4 MB, 2.4 GB."""
    for scale, suffix in ((1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if abs(count) >= scale:
            return f"{count / scale:.1f} {suffix}"
    return f"{count:.0f} B"


def memory(count: float) -> str:
    """Memory in binary units, as GPUs and `free` report it: 14.9 GiB, 612 MiB."""
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.0f} MiB"


def duration(seconds: float) -> str:
    """Seconds under a minute, h:mm:ss beyond: 4.2 s, 38 s, 0:12:05, 6:38:46."""
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    whole = int(round(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def about(seconds: float) -> str:
    """An estimated duration: "about 38 s", "about 0:12:05"; below a second "under 1 s"
    (never "about 0.0 s")."""
    return "under 1 s" if seconds < 1 else f"about {duration(seconds)}"


def amount(value: float, unit: str | None) -> str:
    """A count in its unit: bytes as sizes, anything else as a number with thousands."""
    if unit in BYTE_UNITS:
        return size(value)
    return f"{value:,.0f} {unit or ''}".rstrip()


def rate(per_second: float, unit: str | None) -> str:
    """A rate that never reads 0/s: slow ones per minute or hour, fractions kept."""
    if unit in BYTE_UNITS:
        return f"{size(per_second)}/s"
    name = unit or "items"
    for scale, per in ((1, "s"), (60, "min"), (3600, "h")):
        value = per_second * scale
        if value >= 1 or per == "h":
            digits = 0 if value >= 100 else (1 if value >= 10 else 2)
            return f"{value:,.{digits}f} {name}/{per}"
    return f"0 {name}/h"
