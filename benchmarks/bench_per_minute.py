"""CamVid val mIoU per minute of training on this CPU: seglab's CPU recipes vs plain loops around smp (issue 16 part 4).

Contestants, all from random init on CamVid train, scored the same way on the 101 CamVid val images:

- ``smp_pspnet_r50_d3``: segmentation_models_pytorch's PSPNet, ResNet-50 encoder of depth 3, and
  ``smp_unet_r18``: its Unet with a ResNet-18 encoder, each in a plain PyTorch loop with the shared CPU
  budget's data and optimiser (``recipes/_camvid_cpu_budget.yaml``: CamVid resized to 120x160, random
  scale 0.75-1.5, 120x160 crops, flips, batch 4, Adam 1e-3, weight decay 5e-4, poly 0.9, cross-entropy
  ignoring void), eager fp32: the loop a user writes around smp;
- ``seglab:<recipe>``: ``seglab.engine.train`` on a recipe or YAML file named with ``--seglab`` (default:
  ``gcn_camvid_cpu_balanced``, ``gcn_camvid_cpu``, ``pspnet_resnet50_camvid_cpu``, ``unet_camvid_cpu``), as
  ``seglab train`` runs it (its defaults: bf16 where the CPU has it, channels_last, the decoded-image cache).

The budget is wall clock (``--minutes``, e.g. 5 and 15). A contestant's step time is probed first
(the difference of a 4-step and a 24-step run, outside the budget); its schedule then gets
``budget / step time`` steps, so its poly schedule ends at about the budget. Every contestant stops at
the budget anyway (a plain loop by its own clock, seglab by ``train(max_seconds=...)``, what
``seglab train --max-minutes`` runs): the table flags a schedule cut short. The probe misjudges some
contestants by 1.3x either way (plain fp32 loops slow down as they train; a probed seglab step can be
slower than its run's): ``--refit`` reruns each contestant whose schedule missed the budget (cut, or over
3 % of it unused) with its steps fitted to the rate its first run reached, and the table shows both runs.
Scoring (outside the budget): ``seglab.engine.evaluate`` in fp32, inputs resized to 120x160 with
training's antialiased resize, logits resized back to the full 360x480 labels: mIoU, pixel accuracy and
per-class IoU. smp's Unet needs sides divisible by 32: its input is zero-padded to 128x160 and the
logits cropped. Each contestant runs in its own process; results are kept in ``--out`` per budget and
reused (``--force`` reruns). smp is benchmark-only: ``pip install segmentation-models-pytorch``.

    python benchmarks/bench_per_minute.py --minutes 5 [--minutes 15] [--seglab pspnet_resnet50_camvid_cpu ...] [--refit]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

DATA_FROM = "unet_camvid_cpu"  # based on _camvid_cpu_budget, which has no model of its own to load alone
SIZE, BATCH, CLASSES, IGNORE = (120, 160), 4, 11, 255
PEERS = ("smp_pspnet_r50_d3", "smp_unet_r18")
PROBE_STEPS = 24  # 4 vs 12 steps misjudged a seglab step by 1.5x (0.156 s probed, 0.23 s run)
DEFAULT_SEGLAB = ("gcn_camvid_cpu_balanced", "gcn_camvid_cpu", "pspnet_resnet50_camvid_cpu", "unet_camvid_cpu")


class SmpSegmenter(nn.Module):
    """An smp model as seglab's evaluation takes it: ``.logits`` of a prediction, sides padded to ``multiple``."""

    def __init__(self, net: nn.Module, multiple: int) -> None:
        super().__init__()
        self.net, self.multiple = net, multiple

    def forward(self, images: torch.Tensor):  # noqa: ANN201
        from seglab.structures import SemanticPrediction

        height, width = images.shape[-2:]
        pad_h, pad_w = -height % self.multiple, -width % self.multiple
        logits = self.net(F.pad(images, (0, pad_w, 0, pad_h)))[..., :height, :width]
        return SemanticPrediction(logits=logits)


def build_peer(name: str) -> SmpSegmenter:
    import segmentation_models_pytorch as smp

    torch.manual_seed(0)
    if name == "smp_pspnet_r50_d3":
        return SmpSegmenter(smp.PSPNet("resnet50", encoder_weights=None, encoder_depth=3, classes=CLASSES), 8)
    return SmpSegmenter(smp.Unet("resnet18", encoder_weights=None, classes=CLASSES), 32)


def peer_train(name: str, steps: int, deadline_s: float | None = None) -> tuple[nn.Module, float, int]:
    """A plain loop: (trained model, seconds from building the data to the last step, steps done). It stops at
    ``deadline_s`` seconds even mid-schedule: these loops ran 1.3-1.8x longer than their probed step time
    predicted (fp32 steps slowing as training goes on), which would hand them more than the budget."""
    from torch.utils.data import DataLoader

    from seglab.data import build_dataset
    from seglab.data.collate import collate_semantic
    from seglab.data.transforms import train_transforms
    from seglab.recipes import load_recipe

    start = time.perf_counter()
    d = load_recipe(DATA_FROM).data  # the budget's data block (every *_camvid_cpu recipe shares it)
    transforms = train_transforms(base_size=d.resize, crop_size=d.crop_size, scale_range=d.scale_range, hflip=d.hflip)
    data = build_dataset("camvid", split="train", transforms=transforms)
    loader = DataLoader(data, batch_size=BATCH, shuffle=True, drop_last=True, collate_fn=collate_semantic,
                        generator=torch.Generator().manual_seed(0))
    model = build_peer(name).train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.PolynomialLR(optimiser, total_iters=steps, power=0.9)
    step = 0
    while step < steps:
        for images, targets in loader:
            loss = F.cross_entropy(model(images).logits, targets, ignore_index=IGNORE)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            step += 1
            if step == steps or (deadline_s is not None and time.perf_counter() - start > deadline_s):
                steps = step
                break
    return model.eval(), time.perf_counter() - start, step


def seglab_train(recipe_name: str, steps: int, deadline_s: float | None = None) -> tuple[nn.Module, float, int]:
    """``seglab.engine.train`` on ``recipe_name`` for ``steps`` steps, no evaluation, stopped at ``deadline_s``
    seconds like a plain loop: (model, seconds, steps done)."""
    from rich.console import Console

    import seglab
    from seglab.engine.train import train
    from seglab.recipes import load_recipe

    recipe = load_recipe(recipe_name, overrides=[f"schedule.steps={steps}", "data.val_split=null",
                                                 f"train.checkpoint_every={max(steps, 1)}"])
    out = Path(tempfile.mkdtemp(prefix="per_minute_"))
    start = time.perf_counter()
    result = train(recipe, out_dir=out, progress=False, console=Console(quiet=True), max_seconds=deadline_s)
    seconds = time.perf_counter() - start
    return seglab.load(out / "final"), seconds, result.steps


def score(model: nn.Module) -> dict:
    """CamVid val, seglab's metric: inputs at the size the model trained at (its config.json's input_size;
    120x160 for the peers and the shared budget), antialiased, logits back to the 360x480 labels, fp32."""
    from torch.utils.data import DataLoader

    from seglab.data import build_dataset
    from seglab.data.collate import collate_semantic
    from seglab.engine.evaluate import evaluate

    val = build_dataset("camvid", split="val")
    loader = DataLoader(val, batch_size=1, collate_fn=collate_semantic)
    size = tuple(getattr(model, "seglab_config", {}).get("input_size") or SIZE)
    metrics = evaluate(model, loader, num_classes=CLASSES, device=torch.device("cpu"), input_size=size)
    return {"input_size": list(size), "miou": metrics["miou"], "pixel_acc": metrics["pixel_acc"], "per_class_iou": metrics["per_class_iou"],
            "classes": list(val.classes)}


def run_contestant(name: str, minutes: float, planned: int | None = None) -> dict:
    """Probe the step time (unless ``planned`` steps are given), train for the budget, score. Runs in the
    child process."""
    trainer = (lambda steps, deadline=None: peer_train(name, steps, deadline)) if name in PEERS else (
        lambda steps, deadline=None: seglab_train(name.removeprefix("seglab:"), steps, deadline))
    if planned is None:
        short, long = trainer(4)[1], trainer(PROBE_STEPS)[1]
        step_s = max((long - short) / (PROBE_STEPS - 4), 1e-3)
        planned = max(int(minutes * 60 / step_s), 1)
        print(f"{name}: {step_s:.3f} s/step probed, {planned} steps for {minutes:g} min", file=sys.stderr, flush=True)
    else:
        print(f"{name}: {planned} steps for {minutes:g} min, fitted to its first run", file=sys.stderr, flush=True)
    model, seconds, steps = trainer(planned, minutes * 60)
    return {"contestant": name, "minutes": minutes, "planned_steps": planned, "steps": steps,
            "train_s": round(seconds, 1),
            "images_per_s": round(steps * BATCH / seconds, 2), **score(model)}


def misfit(row: dict) -> bool:
    """Whether a run's schedule missed its budget: cut short, or done with over 3 % of the budget unused."""
    return row["steps"] < row["planned_steps"] or row["train_s"] < 0.97 * 60 * row["minutes"]


def fitted_steps(row: dict) -> int:
    """Steps that fill the budget at the rate a run reached (its steps per second of training, 2 % margin):
    a cut run's schedule then ends inside the budget and an early one uses all of it."""
    return max(int(0.98 * row["steps"] * 60 * row["minutes"] / row["train_s"]), 1)


def run_child(name: str, minutes: float, threads: int, path: Path, planned: int | None = None) -> dict:
    """One contestant in its own process, its result kept at ``path``."""
    command = [sys.executable, __file__, "--child", name, str(minutes), "--threads", str(threads)]
    command += ["--planned", str(planned)] if planned else []
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(done.stdout.strip().splitlines()[-1] + "\n")
    return json.loads(path.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, action="append", help="wall-clock budget(s); default 5")
    parser.add_argument("--seglab", nargs="*", default=list(DEFAULT_SEGLAB),
                        help="seglab recipes to enter (names or YAML paths)")
    parser.add_argument("--peers", nargs="*", default=list(PEERS), choices=PEERS)
    parser.add_argument("--out", type=Path, default=Path("runs/per_minute"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--refit", action="store_true",
                        help="rerun each contestant whose schedule missed the budget (cut, or >3 %% unused) with "
                             "its steps fitted to the rate its first run reached; both runs are shown")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--planned", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(run_contestant(args.child[0], float(args.child[1]), args.planned)))
        return

    from seglab.engine.machine import describe_machine

    machine = describe_machine()
    flags = [f for f in ("avx512_bf16", "amx_bf16") if f in machine["cpu_flags"]]
    print(f"machine: {machine['cpu']}, {args.threads} threads, bf16 flags: {', '.join(flags) or 'none'}")
    contestants = [*args.peers, *(f"seglab:{r}" for r in args.seglab)]
    for minutes in args.minutes or [5.0]:
        rows = []
        for name in contestants:
            path = args.out / f"{minutes:g}min" / f"{name.replace(':', '_').replace('/', '_')}.json"
            fresh = args.force or not path.exists()
            row = run_child(name, minutes, args.threads, path) if fresh else json.loads(path.read_text())
            rows.append(row)
            refit = path.with_suffix(".refit.json")
            if args.refit and misfit(row) and (fresh or not refit.exists()):
                rows.append({**run_child(name, minutes, args.threads, refit, fitted_steps(row)), "refit": True})
            elif refit.exists() and not fresh:
                rows.append({**json.loads(refit.read_text()), "refit": True})
        _print_table(rows, minutes)


def _print_table(rows: list[dict], minutes: float) -> None:
    classes = rows[0]["classes"]
    print(f"\n{minutes:g} min of training on CamVid train, scored on CamVid val (101 images, 360x480 labels)")
    print(f"  {'contestant':34s} {'steps':>6s} {'train s':>8s} {'img/s':>6s} {'mIoU':>6s} {'pix acc':>7s}")
    for row in sorted(rows, key=lambda r: -r["miou"]):
        note = ""
        if row["steps"] < row.get("planned_steps", row["steps"]):
            note = f"  cut at the budget ({row['planned_steps']} planned)"
        elif row["train_s"] > 1.05 * 60 * minutes:
            note = "  over the budget (a run of an earlier version of this script)"
        print(f"  {_label(row):34s} {row['steps']:6d} {row['train_s']:8.1f} {row['images_per_s']:6.2f} "
              f"{row['miou']:6.3f} {row['pixel_acc']:7.3f}{note}")
    print("  per-class IoU: " + ", ".join(c[:8] for c in classes))
    for row in sorted(rows, key=lambda r: -r["miou"]):
        ious = " ".join(f"{v:.2f}" if v == v else " nan" for v in row["per_class_iou"])
        low = sum(1 for v in row["per_class_iou"] if v < 0.01)
        print(f"  {_label(row):34s} {ious}  ({low} under 0.01)")
    best_peer = max((r for r in rows if r["contestant"] in PEERS), key=lambda r: r["miou"], default=None)
    best_ours = max((r for r in rows if r["contestant"] not in PEERS), key=lambda r: r["miou"], default=None)
    if best_peer and best_ours:
        verdict = "ahead of" if best_ours["miou"] >= best_peer["miou"] else "behind"
        print(f"  best seglab {_label(best_ours)} {best_ours['miou']:.3f} is {verdict} the best peer "
              f"{_label(best_peer)} {best_peer['miou']:.3f}")


def _label(row: dict) -> str:
    return row["contestant"] + (" (refit)" if row.get("refit") else "")


if __name__ == "__main__":
    main()
