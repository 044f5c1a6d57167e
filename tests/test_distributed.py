"""Training with several processes (gloo on the CPU, as torchrun would start them)."""

import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from retclip_pipeline.model.loss import retclip_loss
from retclip_pipeline.model.retclip import RetClipOutput
from retclip_pipeline.training.distributed import World, gather

from .conftest import PATIENCE_S, ROOT, demo_toml, run_cli, write_profile


def _features(seed: int, n: int = 8, dim: int = 16) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.nn.functional.normalize(torch.randn(n, dim, generator=generator), dim=-1)
        for _ in range(6)
    ]


def _output(feats, start=0, stop=None):
    scales = [torch.tensor(10.0), torch.tensor(20.0), torch.tensor(30.0)]
    return RetClipOutput(*(f[start:stop] for f in feats), *scales)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _rank(rank: int, world: int, port: int, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    feats = _features(0)
    half = len(feats[0]) // world
    local = _output(feats, rank * half, (rank + 1) * half)
    loss, _ = retclip_loss(local, lambda x: gather(x, World(rank, world, rank)))
    results[rank] = float(loss)
    dist.destroy_process_group()


def test_two_processes_see_the_loss_of_one_on_the_global_batch():
    expected, _ = retclip_loss(_output(_features(0)))
    results = mp.Manager().dict()
    mp.spawn(_rank, args=(2, _free_port(), results), nprocs=2, join=True)
    assert results[0] == pytest.approx(float(expected), rel=1e-5)
    assert results[1] == pytest.approx(float(expected), rel=1e-5)


@pytest.mark.slow
def test_torchrun_trains_on_two_cpu_processes(tmp_path, demo_root):
    workdir = tmp_path / "run"
    text = demo_toml(
        demo_root, workdir=str(workdir), name="ddp", train={"batch_size": 8, "epochs": 2}
    )
    profile = write_profile(tmp_path, text)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = ["-m", "retclip_pipeline", "--profile", str(profile), "--stages"]
    prepared = subprocess.run(
        [sys.executable, *command, "convert,lmdb"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=PATIENCE_S,
    )
    assert prepared.returncode == 0, prepared.stderr
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(_free_port()),
    ]
    result = subprocess.run(
        [*torchrun, *command, "train"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=PATIENCE_S,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    checkpoint = torch.load(workdir / "logs/ddp/checkpoints/epoch_latest.pt", weights_only=True)
    assert checkpoint["epoch"] == 2 and len(checkpoint["rng"]) == 2
    # 65 pairs, 8 per process and step, 2 processes: 4 steps an epoch.
    assert checkpoint["step"] == 8
    assert "[train] done" in result.stderr


def test_torchrun_refuses_the_data_stages(tmp_path, demo_profile):
    env = dict(os.environ, WORLD_SIZE="2", RANK="1")
    result = run_cli("--profile", str(demo_profile), env=env, timeout=PATIENCE_S)
    assert result.returncode == 2
    assert "under torchrun, run only the train stage" in result.stderr
