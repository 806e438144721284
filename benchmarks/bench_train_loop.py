"""seglab's training loop vs a bare PyTorch loop on the same model, batch and data (issue 16 part 2).

The same work in every variant: the ``unet_camvid_cpu`` U-Net (base 32, batch norm, 11 classes, random
init), CamVid train resized to 120x160, random 120x160 crops and flips, batch 4, Adam 1e-3 with the poly
schedule, cross-entropy with ignore 255, ``--steps`` steps. Variants, each timed from start to the last
step in a fresh process (setup included, no evaluation):

- ``bare fp32``: a plain loop (torch DataLoader over seglab's CamVid reader with torchvision v2
  transforms, ``model(x, y)``, backward, step), eager fp32 contiguous;
- ``bare bf16 + channels_last``: the same loop with the two fast paths by hand (where the CPU has bf16);
- ``seglab, fast paths off``: ``seglab.engine.train`` with ``train.precision=fp32``,
  ``train.channels_last=false``, ``data.cache=false`` (its loop overhead: checkpoints, logs, progress);
- ``+ data.cache``, ``+ channels_last``, ``+ bf16`` (the defaults): each fast path added in turn.

Prints images/s per variant (median over ``--rounds``, run in forward then reverse order), seglab-off
over bare (target: within 10 %), each fast path's speed-up, and the data path alone over two epochs
with and without ``data.cache`` (the timed runs stay within the first epoch, where both decode). The random scale of the CPU budget is
left out of both (``data.scale_range=null``) so both loops do the same augmentation.

    python benchmarks/bench_train_loop.py [--steps 40] [--rounds 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time

import torch

RECIPE = "unet_camvid_cpu"
SIZE, BATCH = (120, 160), 4
SEGLAB = {  # recipe overrides of each seglab variant
    "seglab, fast paths off": ["train.precision=fp32", "train.channels_last=false", "data.cache=false"],
    "+ data.cache": ["train.precision=fp32", "train.channels_last=false", "data.cache=true"],
    "+ channels_last": ["train.precision=fp32", "train.channels_last=true", "data.cache=true"],
    "+ bf16 (defaults)": [],
}
BARE = {"bare fp32": False, "bare bf16 + channels_last": True}


def bare_loop(steps: int, fast: bool) -> float:
    """Seconds for ``steps`` steps of a plain PyTorch loop, dataset and model built inside the timing."""
    from torch.utils.data import DataLoader
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    import seglab
    from seglab.data import build_dataset
    from seglab.data.collate import collate_semantic

    start = time.perf_counter()
    transforms = v2.Compose([v2.Resize(list(SIZE), antialias=True),
                             v2.RandomCrop(list(SIZE), pad_if_needed=True, fill={tv_tensors.Image: 0, tv_tensors.Mask: 255}),
                             v2.RandomHorizontalFlip()])
    data = build_dataset("camvid", split="train", transforms=transforms)
    loader = DataLoader(data, batch_size=BATCH, shuffle=True, drop_last=True, collate_fn=collate_semantic,
                        generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = seglab.create_model("unet", num_classes=11, base_channels=32, batch_norm=True).train()
    if fast:
        model = model.to(memory_format=torch.channels_last)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.PolynomialLR(optimiser, total_iters=steps, power=0.9)
    step = 0
    while step < steps:
        for images, targets in loader:
            if fast:
                images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=fast):
                losses = model(images, targets)
            loss = sum(losses.values())
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            loss.item()  # as a loop that logs its loss
            step += 1
            if step == steps:
                break
    return time.perf_counter() - start


def seglab_loop(steps: int, overrides: list[str]) -> float:
    """Seconds for ``steps`` steps of ``seglab.engine.train`` (no evaluation), from building the run."""
    from rich.console import Console

    from seglab.engine.train import train
    from seglab.recipes import load_recipe

    recipe = load_recipe(RECIPE, overrides=[f"schedule.steps={steps}", "data.val_split=null",
                                            "data.scale_range=null", *overrides])
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        train(recipe, out_dir=out, progress=False, console=Console(quiet=True))
        return time.perf_counter() - start


def data_path_seconds(cache: bool, epochs: int = 2) -> float:
    """Seconds to draw ``epochs`` epochs of training batches from seglab's loader alone (no model): what
    ``data.cache`` saves shows from the second epoch, the first decodes every image either way."""
    from seglab.engine.distributed import DistInfo
    from seglab.engine.train import build_train_loader
    from seglab.recipes import load_recipe

    recipe = load_recipe(RECIPE, overrides=["data.scale_range=null", f"data.cache={str(cache).lower()}"])
    loader, seeded, sampler = build_train_loader(recipe, DistInfo(rank=0, world_size=1, local_rank=0,
                                                                  device=torch.device("cpu")))
    start = time.perf_counter()
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        seeded.epoch = epoch
        for _ in loader:
            pass
    return time.perf_counter() - start


def measure(name: str, steps: int, threads: int) -> float:
    """Seconds of one variant in a fresh process (models measured after others in one process ran slower)."""
    command = [sys.executable, __file__, "--variant", name, "--steps", str(steps), "--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2, help="each round runs every variant forward then reversed")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.variant:  # the child process: one variant, its seconds on the last line
        seconds = (bare_loop(args.steps, BARE[args.variant]) if args.variant in BARE
                   else seglab_loop(args.steps, SEGLAB[args.variant]))
        print(seconds)
        return

    from seglab.engine.machine import describe_machine
    from seglab.inference.fast import resolve_precision

    machine = describe_machine()
    precision, why = resolve_precision("auto", "cpu")
    print(f"machine: {machine['cpu']}, {args.threads} threads, torch {torch.__version__}; bf16 flags: "
          f"{', '.join(f for f in ('avx512_bf16', 'amx_bf16') if f in machine['cpu_flags']) or 'none'}")
    if why:
        print(f"fast paths skipped here: {why} (the defaults train in fp32; bf16 variants are emulated)")
    names = [*BARE, *SEGLAB]
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.rounds):
        for order in (names, names[::-1]):
            for name in order:
                seconds[name].append(measure(name, args.steps, args.threads))
    rate = {name: args.steps * BATCH / statistics.median(values) for name, values in seconds.items()}
    print(f"\n{args.steps} steps of batch {BATCH} at {SIZE[0]}x{SIZE[1]} ({RECIPE}), setup included; images/s "
          f"(median of {2 * args.rounds})")
    for name in names:
        print(f"  {name:28s} {rate[name]:7.2f} images/s   runs: {', '.join(f'{s:.1f} s' for s in seconds[name])}")
    print(f"\nseglab (fast paths off) / bare fp32: {rate['seglab, fast paths off'] / rate['bare fp32']:.3f} "
          "of the bare loop's images/s (target >= 0.90)")
    print(f"seglab defaults / bare bf16 + channels_last: {rate['+ bf16 (defaults)'] / rate['bare bf16 + channels_last']:.3f}")
    previous = "seglab, fast paths off"
    for name in list(SEGLAB)[1:]:
        print(f"speed-up of {name[2:]:22s} {rate[name] / rate[previous]:.2f}x")
        previous = name
    print(f"seglab defaults / bare fp32: {rate['+ bf16 (defaults)'] / rate['bare fp32']:.2f}x the images/s "
          f"(precision {precision})")
    plain, cached = data_path_seconds(False), data_path_seconds(True)
    print(f"data path alone, 2 epochs of CamVid train (734 images): {plain:.1f} s decoded every epoch, "
          f"{cached:.1f} s with data.cache ({plain / cached:.2f}x; the loop above runs within the first epoch, "
          "where both decode every image)")


if __name__ == "__main__":
    main()
