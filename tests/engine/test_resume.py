"""An interrupted and resumed run ends with exactly the weights of an uninterrupted one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from seglab.engine.train import train
from seglab.errors import ConfigError
from seglab.recipes import load_recipe


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "final" / "model.safetensors")


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"weights differ: {different[:5]}"


def test_resume_mid_epoch_gives_identical_weights(tiny_recipe_file: Path, tmp_path: Path) -> None:
    recipe = load_recipe(tiny_recipe_file)
    train(recipe, out_dir=tmp_path / "full", progress=False)
    # Stop at step 5 (the last checkpoint is at 3, mid-epoch: 4 steps per epoch), then resume.
    train(recipe, out_dir=tmp_path / "cut", progress=False, max_steps=5)
    (tmp_path / "cut" / "final").rename(tmp_path / "cut" / "final_at_5")
    train(recipe, out_dir=tmp_path / "cut", progress=False, resume=True)
    assert_same(weights(tmp_path / "full"), weights(tmp_path / "cut"))
    # ...and the run really learned something different from its start.
    assert not torch.equal(
        weights(tmp_path / "full")["classifier.weight"],
        load_file(tmp_path / "cut" / "final_at_5" / "model.safetensors")["classifier.weight"],
    )


def test_a_time_limit_ends_the_run_as_finished_and_resume_completes_it(tiny_recipe_file: Path, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture) -> None:
    recipe = load_recipe(tiny_recipe_file)
    train(recipe, out_dir=tmp_path / "full", progress=False)
    cut = train(recipe, out_dir=tmp_path / "cut", progress=False, max_seconds=1e-3)  # past it after the first step
    assert cut.steps == 1 and torch.load(tmp_path / "cut" / "last.pt", weights_only=False)["step"] == 1
    assert (tmp_path / "cut" / "final" / "model.safetensors").exists()
    assert "stopped at the time limit" in capsys.readouterr().out
    train(recipe, out_dir=tmp_path / "cut", progress=False, resume=True)
    assert_same(weights(tmp_path / "full"), weights(tmp_path / "cut"))
    with pytest.raises(ConfigError, match="--max-minutes must be above 0"):
        train(recipe, out_dir=tmp_path / "never", progress=False, max_seconds=0)


def test_resume_without_state_is_a_clear_error(tiny_recipe_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no training state"):
        train(load_recipe(tiny_recipe_file), out_dir=tmp_path / "none", resume=True, progress=False)


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted(tiny_recipe_file: Path, tmp_path: Path) -> None:
    base = [sys.executable, "-m", "seglab.cli.app", "train", "--recipe", str(tiny_recipe_file), "--quiet",
            "--set", "schedule.steps=24", "--set", "train.checkpoint_every=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([*base, "--out", str(tmp_path / "full")], check=True, env=env, capture_output=True)

    proc = subprocess.Popen([*base, "--out", str(tmp_path / "cut")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / "cut" / "last.pt"
    deadline = time.time() + 120
    while not state.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed; raise schedule.steps"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "cut" / "final").exists()
    subprocess.run([*base, "--out", str(tmp_path / "cut"), "--resume"], check=True, env=env, capture_output=True)
    assert_same(weights(tmp_path / "full"), weights(tmp_path / "cut"))
