"""bench/convert_memory_bench.py in its quick mode, so that it does not rot unseen."""

from __future__ import annotations

import re
import subprocess
import sys

from .conftest import PATIENCE_S, ROOT


def test_convert_memory_bench_quick_prints_the_peak():
    done = subprocess.run(
        [sys.executable, "bench/convert_memory_bench.py", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=PATIENCE_S,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "rows: 5000 train + 1000 test images" in done.stdout
    assert re.search(r"peak memory \(process, [^)]*\): \d+ MiB", done.stdout), done.stdout
