"""Peak memory of the conversion report (near-duplicate check included) at N rows.

    python bench/convert_memory_bench.py [--rows 200000] [--quick]

Synthetic splits stand in for a converted data set: `rows` train images and a fifth as many
test images, one CSV row each, with random 256-bit hashes held as the conversion holds them
(SplitResult.images, read back from part-file JSON). Prints the memory the splits take, the
peak while the report is built, and the time. Goal: the conversion's process stays under
1.5 GB at 200,000 rows.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from retclip_pipeline.data import report as convert_report  # noqa: E402
from retclip_pipeline.data.conversion import CHUNK, SplitResult  # noqa: E402
from retclip_pipeline.data.prompts import PromptRow, PromptTable  # noqa: E402
from retclip_pipeline.profile import Profile  # noqa: E402

CLASSES = [f"class {n}" for n in range(10)]
GOAL_MIB = 1.5e9 / 2**20


def _rss_mib(field: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak() -> bool:
    """Start VmHWM afresh (Linux), so the peak is the report's, not the set-up's."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def synthetic_split(name: str, count: int, first_line: int, rng) -> SplitResult:
    """A converted split of `count` images, as `convert._convert_split` leaves it."""
    rows = [
        PromptRow(first_line + i, i, CLASSES[i % 10], f"a fundus photograph of {CLASSES[i % 10]}")
        for i in range(count)
    ]
    table = PromptTable(Path(f"prompts_{name}.csv"), rows, count)
    result = SplitResult(
        name, table, list(range(count)), {i: CLASSES[i % 10] for i in range(count)}
    )
    words = rng.integers(0, 2**64, (count, 4), dtype=np.uint64, endpoint=False)
    for start in range(0, count, CHUNK):  # through JSON, as the part files are read back
        meta = json.loads(
            json.dumps(
                {
                    "images": [
                        [i, CLASSES[i % 10], ["".join(f"{w:016x}" for w in words[i])]]
                        for i in range(start, min(count, start + CHUNK))
                    ]
                }
            )
        )
        for index, label, hashes in meta["images"]:
            result.images[index] = {"label": label, "phash": hashes}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="train images (one row each)")
    parser.add_argument("--quick", action="store_true", help="5,000 rows: a check that it runs")
    args = parser.parse_args()
    rows = 5_000 if args.quick else args.rows
    start_mib = _rss_mib("VmRSS")
    rng = np.random.default_rng(0)
    results = [synthetic_split("train", rows, 2, rng), synthetic_split("test", rows // 5, 2, rng)]
    measured = {
        "by_line": {r.name: {row.line: [[12, 0]] for row in r.table.rows} for r in results},
        "vocab": "en",
    }
    held_mib = _rss_mib("VmRSS")
    reset = _reset_peak()
    started = time.perf_counter()
    report = convert_report.build(Profile(), results, measured)
    convert_report.render(report)
    seconds = time.perf_counter() - started
    peak_mib = _rss_mib("VmHWM")  # since the reset; without one, the set-up's peak too
    print(f"rows: {rows} train + {rows // 5} test images, random 256-bit hashes")
    print(f"splits and token counts held: {held_mib - start_mib:.0f} MiB")
    print(
        f"report: {seconds:.1f} s, {report['near_duplicates']['test_images_with_train_match']} "
        f"near duplicates"
    )
    print(
        f"peak memory (process, {'while building the report' if reset else 'whole run'}): "
        f"{peak_mib:.0f} MiB, "
        f"{peak_mib - held_mib:.0f} MiB over what the splits hold; goal < {GOAL_MIB:.0f} MiB"
    )


if __name__ == "__main__":
    main()
