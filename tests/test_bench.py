"""The bench scripts in their quick modes, so that none of them rots unseen."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys

import pytest

from retclip_pipeline.layout import RunLayout

from .conftest import PATIENCE_S, ROOT


def _run(*command: str, timeout: int = PATIENCE_S) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_train_bench_quick_compares_estimated_and_measured_memory():
    done = _run(sys.executable, "bench/train_bench.py", "--quick")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "loader:" in done.stdout and '"peak_estimated_gib"' in done.stdout
    assert "| small (13.9 M) | 16 | off |" in done.stdout


def test_gpu_check_without_a_gpu_says_so_and_exits_0():
    done = _run("bash", "bench/gpu_check.sh")
    assert done.returncode == 0, done.stderr
    assert "no GPU here" in done.stdout


@pytest.mark.slow
def test_gpu_check_quick_runs_every_part(tmp_path):
    done = _run(sys.executable, "bench/gpu_check.py", "--quick", "--work", str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    table = (tmp_path / "gpu_check.md").read_text()
    for part in ("steps, small", "real-size run with the loader", "--check on this GPU", "demo"):
        assert part in table, table


@pytest.mark.slow
def test_convert_bench_quick_benches_the_conversion_alone(tmp_path):
    done = _run(sys.executable, "bench/convert_bench.py", "--quick", "--dir", str(tmp_path))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "sources: 24 JPEGs 1600x1200" in done.stdout, done.stdout
    assert re.search(r"conversion: \d+ source images/s", done.stdout), done.stdout
    assert re.search(r"lmdb: \d+ MB/s", done.stdout), done.stdout
    assert re.search(r"peak memory \(process tree\): \d+ MiB", done.stdout), done.stdout
    layout = RunLayout.of_folder(tmp_path / "run")
    stages = json.loads(layout.state.read_text())["stages"]
    assert stages["convert"]["status"] == "done" and stages["lmdb"]["status"] == "done"
    assert stages.get("train", {}).get("status") != "done"  # no model, no network
    assert not layout.checkpoints.exists()


def test_fetch_bench_quick_measures_every_case():
    done = _run(sys.executable, "bench/fetch_bench.py", "--quick")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "stand-in set: 16242 rows, 5 shards" in done.stdout, done.stdout
    rows = {}
    for line in done.stdout.splitlines():
        found = re.match(r"(smoke|full) (stream|download) +(\d+) +(\d+)", line)
        if found:
            rows[found[1], found[2]] = (int(found[3]), int(found[4]))
    assert set(rows) == {(s, m) for s in ("smoke", "full") for m in ("stream", "download")}
    assert rows["full", "stream"][0] == rows["full", "download"][0] == 16242, rows
    assert 0 < rows["smoke", "stream"][0] < 16242, rows
    assert all(requests > 0 for _, requests in rows.values()), rows


def test_tui_bench_paints_the_first_screen_without_heavy_imports():
    done = _run(sys.executable, "bench/tui_bench.py")
    assert done.returncode == 0, done.stderr[-3000:]
    painted = re.search(r"first screen painted [\d.]+ s after start; heavy: (.*)", done.stdout)
    after = re.search(r"heavy once the first screen's workers are done: (.*)", done.stdout)
    assert painted and after, done.stdout
    assert ast.literal_eval(painted[1]) == [] and ast.literal_eval(after[1]) == [], done.stdout
