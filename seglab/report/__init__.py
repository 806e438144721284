"""``seglab report RUN``: one self-contained HTML page of a training run.

Loss and learning-rate curves, validation metric curves, per-class scores, the confusion matrix as a
heat map (semantic runs), sample predictions with a class legend, the recipe, and the machine and
timings of each training session. Charts are PNGs drawn with matplotlib and embedded as data URIs, so
the page needs no network, no JavaScript and no other file to be viewed or mailed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from seglab.report.page import Page
from seglab.report.run_folder import RunRecord, read_run

__all__ = ["read_run", "write_report"]

# validation metrics drawn as curves, by task (the first present are shown; others are in the tables)
CURVES = {
    "semantic": ("miou", "pixel_acc", "mean_acc"),
    "instance": ("segm_ap", "bbox_ap", "segm_ap50", "segm_ar100", "segm_ar1000"),
    "panoptic": ("pq", "pq_things", "pq_stuff"),
}


def write_report(path: str | Path, out: str | Path | None = None, *, samples: int = 4, data_root: Path | None = None,
                 device: str = "cpu", progress: Callable[[str], None] | None = None) -> Path:
    """Write the report of the run in ``path`` to ``out`` (default ``<run>/report.html``); returns ``out``."""
    say = progress or (lambda _: None)
    run = read_run(path)
    out = Path(out) if out is not None else run.folder / "report.html"
    page = Page(f"seglab run {run.name}")
    page.summary(run)
    say("curves")
    _curves(page, run)
    say("per-class scores")
    _per_class(page, run)
    say(f"{samples} sample predictions")
    _samples(page, run, count=samples, data_root=data_root, device=device)
    page.recipe(run)
    page.sessions(run)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page.html(), encoding="utf-8")
    return out


def _curves(page: Page, run: RunRecord) -> None:
    from seglab.report.plots import line_chart  # noqa: PLC0415 - matplotlib loads only here

    page.section("Training")
    if not run.train:
        page.note("no training records in metrics.jsonl")
    else:
        steps = [r["step"] for r in run.train]
        terms = [k for k in run.train[-1] if k not in ("step", "lr") and k != "loss"]
        series = {"loss (total)": (steps, [r.get("loss", float("nan")) for r in run.train])}
        if len(terms) > 1:  # one term is the total itself: one line is enough
            series |= {k: (steps, [r.get(k, float("nan")) for r in run.train]) for k in terms}
        page.chart(line_chart(series, title="training loss", ylabel="loss", log_y=True), "training loss curves")
        if any("lr" in r for r in run.train):
            page.chart(line_chart({"lr": (steps, [r.get("lr", float("nan")) for r in run.train])},
                                  title="learning rate", ylabel="lr"), "learning-rate curve")
    if run.skipped_lines:
        page.note(f"{run.skipped_lines} unreadable line(s) of metrics.jsonl skipped (a run stopped mid-write)")
    page.section("Validation")
    keys = [k for k in CURVES.get(run.config.get("task", "semantic"), ()) if run.val and k in run.val[-1]]
    if not keys:
        page.note("no validation records in metrics.jsonl (no val split, or the run ended before its first eval)")
        return
    steps = [r["step"] for r in run.val]
    series = {k: (steps, [r.get(k, float("nan")) for r in run.val]) for k in keys}
    page.chart(line_chart(series, title="validation metrics", ylabel="score"), "validation metric curves")


def _per_class(page: Page, run: RunRecord) -> None:
    from seglab.data.colours import class_colours  # noqa: PLC0415
    from seglab.report.plots import bar_chart, confusion_heatmap  # noqa: PLC0415

    metrics = run.config.get("metrics") or {}
    classes = list(run.config.get("classes") or [])
    task = run.config.get("task", "semantic")
    if not metrics:
        page.note(f"{run.checkpoint.name}/config.json records no final metrics (no val split?)")
        return
    if task == "semantic" and "per_class_iou" in metrics:
        colours = class_colours(run.config.get("palette"), len(classes))
        page.chart(bar_chart(classes, metrics["per_class_iou"], title=f"per-class IoU ({run.checkpoint.name}/)",
                             xlabel="IoU", colours=colours), "per-class IoU bars")
        if "confusion" in metrics:
            page.chart(confusion_heatmap(metrics["confusion"], classes), "confusion matrix heat map")
        else:
            page.note("no confusion matrix recorded (runs trained before seglab recorded it): "
                      f"seglab eval {run.checkpoint} --save-confusion confusion.png")
    elif task == "instance" and "per_class" in metrics:
        segm = metrics["per_class"].get("segm", {})
        page.chart(bar_chart(list(segm), list(segm.values()), title="per-class mask AP", xlabel="AP"),
                   "per-class mask AP bars")
    elif task == "panoptic" and "per_class" in metrics:
        names = list(metrics["per_class"])
        page.chart(bar_chart(names, [metrics["per_class"][n]["pq"] for n in names], title="per-class PQ",
                             xlabel="PQ"), "per-class PQ bars")


def _samples(page: Page, run: RunRecord, *, count: int, data_root: Path | None, device: str) -> None:
    from seglab.report.samples import draw_samples  # noqa: PLC0415

    page.section("Samples")
    pictures, source = draw_samples(run, count=count, data_root=data_root, device=device)
    page.note(source)
    for sample in pictures:
        page.picture(sample.picture, sample.title)
