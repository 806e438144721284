"""Two gloo processes under DDP compute the gradients of one process on the combined batch."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

import seglab


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    # No BN (per-process batch statistics differ from the combined batch) and no dropout.
    return seglab.create_model("unet", num_classes=3, base_channels=4, dropout=0.0)


def make_batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.rand(4, 3, 32, 32, generator=gen), torch.randint(0, 3, (4, 32, 32), generator=gen)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    model = DistributedDataParallel(make_model())
    images, targets = make_batch()
    half = slice(2 * rank, 2 * rank + 2)
    sum(model(images[half], targets[half]).values()).backward()
    if rank == 0:
        torch.save({n: p.grad for n, p in model.module.named_parameters()}, out)
    dist.barrier()  # neither rank tears gloo down while the other still uses it
    dist.destroy_process_group()


def test_ddp_gradients_equal_single_process(tmp_path: Path) -> None:
    out = str(tmp_path / "grads.pt")
    mp.spawn(_worker, args=(free_port(), out), nprocs=2, join=True)
    ddp_grads = torch.load(out, weights_only=True)
    model = make_model()
    images, targets = make_batch()
    sum(model(images, targets).values()).backward()
    for name, param in model.named_parameters():
        torch.testing.assert_close(ddp_grads[name], param.grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.slow
def test_torchrun_trains_with_two_processes(tiny_recipe_file: Path, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
           "-m", "seglab.cli.app", "train", "--recipe", str(tiny_recipe_file), "--quiet",
           "--set", "schedule.steps=4", "--set", "data.batch_size=2", "--out", str(tmp_path / "ddp")]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "ddp" / "final" / "model.safetensors").is_file()
    assert "x 2 processes" in " ".join(result.stdout.split())
