"""Requests and bytes to fetch the smoke sample and the full set, in each fetch mode.

    python bench/fetch_bench.py [--scale 100] [--quick]

A local stand-in hub (tests/hubstand.py) serves a set with the real set's row counts and
class sizes (Peacein/color-fundus-eye: train 12,989, test 3,253 rows, rows grouped by class)
in the layout `datasets.push_to_hub` gives a 2.3 GB image set: 500 MB parquet shards (train
4, test 1) of 100-row row groups. Images are random bytes `--scale` times smaller than the
real 142 KB average, so bytes are also printed scaled back up. The pipeline's own code
lists, downloads or streams, and reads every selected row as conversion does; the stand-in
counts what was asked of it. Each case starts from an empty hub cache. --quick: images
10,000 times smaller, a check that it runs (the bytes then are mostly parquet overhead).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
_HOME = Path(tempfile.mkdtemp(prefix="retclip-fetch-bench-"))
os.environ["HF_HOME"] = str(_HOME / "hf")  # before huggingface_hub is imported
os.environ.pop("HF_HUB_OFFLINE", None)

from retclip_pipeline import profile as profiles  # noqa: E402
from retclip_pipeline.data import conversion  # noqa: E402
from retclip_pipeline.events import Emitter  # noqa: E402
from retclip_pipeline.stage import StageContext  # noqa: E402
from retclip_pipeline.stages import convert  # noqa: E402
from tests import hubstand  # noqa: E402
from tests.realsize import CLASS_ROWS as CLASSES  # noqa: E402

REAL_IMAGE_BYTES = 142_000  # 2.3 GB / 16,242 images
SHARDS = {"train": 4, "test": 1}


def build_set(folder: Path, image_bytes: int) -> dict[str, bytes]:
    names = sorted(CLASSES)
    files = {}
    for column, split in enumerate(("train", "test")):
        labels = [k for k, name in enumerate(names) for _ in range(CLASSES[name][column])]
        images = [os.urandom(image_bytes) for _ in labels]
        files |= hubstand.parquet_shards(split, images, labels, names, SHARDS[split])
        with open(folder / f"{split}.csv", "w", encoding="utf-8") as csv:
            csv.write("dataset_index,label,prompt\n")
            for index, label in enumerate(labels):
                csv.write(f'{index},{names[label]},"fundus photograph, {names[label]}"\n')
    return files


def measure(folder: Path, hub: hubstand.Hub, mode: str, sizing: str) -> dict:
    from huggingface_hub import constants

    constants.HF_HOME = str(folder / f"hf-{mode}-{sizing}")
    constants.HF_HUB_CACHE = str(Path(constants.HF_HOME) / "hub")
    path = folder / f"{mode}-{sizing}.toml"
    path.write_text(
        f'name = "bench"\n[hub]\ndataset = "org/fundus"\nfetch = "{mode}"\n'
        f'[data]\ntrain_csv = "train.csv"\ntest_csv = "test.csv"\n'
        f'[sizing]\nmode = "{sizing}"\n',
        encoding="utf-8",
    )
    profile = profiles.load(path)
    ctx = StageContext(profile, folder / "run", Emitter(lambda e: None, "convert"), "bench")
    hub.log.clear()
    start = time.perf_counter()
    rows = 0
    for source, result in convert._prepare(ctx):
        for i in range(0, len(result.selected), conversion.CHUNK):
            rows += len(source.rows(result.selected[i : i + conversion.CHUNK]))
    seconds = time.perf_counter() - start
    files = [r for r in hub.log if "/resolve/" in r.path]
    return {
        "rows": rows,
        "requests": len(hub.log),
        "file requests": len(files),
        "bytes": hub.bytes_sent(),
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=100, help="image size divisor")
    parser.add_argument("--quick", action="store_true", help="--scale 10000: that it runs")
    args = parser.parse_args()
    if args.quick:
        args.scale = 10_000
    image_bytes = REAL_IMAGE_BYTES // args.scale
    folder = _HOME
    hub = hubstand.Hub({"org/fundus": hubstand.Repo(build_set(folder, image_bytes))})
    url, server = hubstand.serve(hub)
    os.environ["HF_ENDPOINT"] = url
    data_bytes = sum(len(b) for b in hub.repos["org/fundus"].files.values())
    print(
        f"stand-in set: {sum(c for pair in CLASSES.values() for c in pair)} rows, "
        f"{sum(SHARDS.values())} shards, {data_bytes / 1e6:.1f} MB "
        f"(x{args.scale} = {data_bytes * args.scale / 1e9:.2f} GB at real image sizes)"
    )
    print(
        f"{'case':<18}{'rows':>7}{'requests':>10}{'file req':>10}{'MB':>9}{'MB real':>10}{'s':>7}"
    )
    try:
        for sizing in ("smoke", "full"):
            for mode in ("stream", "download"):
                m = measure(folder, hub, mode, sizing)
                print(
                    f"{sizing + ' ' + mode:<18}{m['rows']:>7}{m['requests']:>10}"
                    f"{m['file requests']:>10}{m['bytes'] / 1e6:>9.1f}"
                    f"{m['bytes'] * args.scale / 1e6:>10.0f}{m['seconds']:>7.1f}"
                )
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
