"""The profiles users run, as shipped: smoke.toml and full.toml pointed at local stand-ins
(a data set in the hub set's layout, CSVs shaped like the real ones, real-size towers with
random weights). Where --check passes, the run must pass."""

import re
import shutil
import tomllib

import pytest

from retclip_pipeline import profile as profiles

from .conftest import PATIENCE_S, ROOT, run_cli, shipped_profile


def test_every_key_of_a_shipped_profile_says_why():
    for path in sorted((ROOT / "profiles").glob("*.toml")):
        lines = path.read_text(encoding="utf-8").splitlines()
        tomllib.loads("\n".join(lines))
        for number, line in enumerate(lines, start=1):
            if not re.match(r"^\s*[\w.\"-]+\s*=", line):
                continue
            commented = "#" in line.split("=", 1)[1] or lines[number - 2].lstrip().startswith("#")
            assert commented, f"{path.name}:{number}: {line!r} has no comment saying why"


def test_full_profile_passes_check_and_dry_run_with_real_size_towers(
    tmp_path, real_towers, real_data
):
    profile = shipped_profile("full", tmp_path, real_towers, real_data)
    check = run_cli("--profile", str(profile), "--check", "--gpu", "a100-40gb", timeout=PATIENCE_S)
    out = check.stdout
    if check.returncode != 0:
        assert_only_this_machine_lacks_space(out, tmp_path)
    assert "191.87 M parameters" in out and "12,985 train pairs" in out  # 12,989 rows, 4 left out
    assert "memory on A100 40GB at batch 128 (bf16)" in out
    assert "assumed 30% of its 312 TFLOP/s bf16 peak" in out
    assert "data set train" in out and "12985 rows usable, 4 left out" in out
    assert "checkpoints and the export" in out  # the disk check counts what training keeps
    assert "[warn] prompt fit" in out and "Chinese vocabulary" in out
    dry = run_cli("--profile", str(profile), "--dry-run", "--gpu", "h100", timeout=PATIENCE_S)
    assert dry.returncode == 0 and "Traceback" not in dry.stderr, dry.stderr
    assert "memory on H100 80GB SXM at batch 128" in dry.stdout
    assert "time per epoch on H100 80GB SXM: about" in dry.stdout
    assert not (tmp_path / "run").exists()  # neither wrote anything


def assert_only_this_machine_lacks_space(out: str, where) -> None:
    """The full profile needs about 23 GB of disk (eight kept 2.3 GB checkpoints): on a
    machine with less free, the disk check must fail, and it alone."""
    failed = [line for line in out.splitlines() if line.lstrip().startswith("[FAIL]")]
    assert len(failed) == 1 and "disk space:" in failed[0], out
    amounts = re.search(r"about ([\d.]+ \w+) needed.*?([\d.]+ \w+) free", failed[0]).groups()
    needed, free = (in_bytes(amount) for amount in amounts)
    assert free < needed, failed[0]
    assert abs(shutil.disk_usage(where).free - free) < 2e9, failed[0]  # the free figure is true


def in_bytes(amount: str) -> float:
    number, unit = amount.split()
    return float(number) * {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}[unit]


@pytest.mark.slow
def test_smoke_profile_checks_then_runs_every_stage_on_the_cpu_and_promotes(
    tmp_path, real_towers, real_data
):
    """About 4 minutes on two cores: ViT-B/16 and BERT-base train 3 steps of 32 pairs."""
    profile = shipped_profile("smoke", tmp_path, real_towers, real_data, **{"train.epochs": 1})
    check = run_cli("--profile", str(profile), "--check", timeout=PATIENCE_S)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "[warn] batch size: batches of 32" in check.stdout
    result = run_cli("--profile", str(profile), timeout=PATIENCE_S)
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stderr
    assert "Traceback" not in log and "it/s]" not in log  # no library progress bars
    assert "FutureWarning" not in log and "use_cache" not in log  # nor library warnings
    assert log.count("no GPU found") <= 1 and " 0.0 samples/s" not in log
    assert "training uses batches of 32 instead of train.batch_size = 128" in log
    assert "[smoke] [pass] evaluation produced" in log
    assert "smoke checklist passed" in log and "promote --run" in log
    run = tmp_path / "run"
    assert (run / "evaluation" / "evaluation_results.json").exists()
    assert (run / "logs" / "smoke" / "export" / "vision" / "config.json").exists()
    promoted = run_cli("promote", "--run", str(run))
    assert promoted.returncode == 0, promoted.stderr
    full = tmp_path / "smoke-full" / "profile.toml"
    settings = profiles.load(full)
    assert settings.sizing.mode == "full" and settings.train.grad_checkpointing
    assert settings.model.vision == str(real_towers["vision"]) and settings.name == "smoke-full"
    assert settings.workdir_path() == tmp_path / "smoke-full"
    dry = run_cli("--profile", str(full), "--dry-run", timeout=PATIENCE_S)
    assert dry.returncode == 0, dry.stderr
    assert f"in {tmp_path / 'smoke-full'}" in dry.stdout and "12,985 train pairs" in dry.stdout
