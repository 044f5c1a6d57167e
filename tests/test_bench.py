"""The bench scripts in their quick modes, so that none of them rots unseen."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import ROOT


def _run(*command: str, timeout: int = 600) -> subprocess.CompletedProcess:
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
