"""The report's charts, drawn with matplotlib (Agg, no display) and returned as PNG bytes.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot global state), so reports can be
made from threads and tests without a screen.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np

DPI = 110


def line_chart(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], *, title: str, ylabel: str,
               xlabel: str = "step", log_y: bool = False) -> bytes:
    """One line per named (x, y) series; markers when a series has few points (validation)."""
    figure, axes = _figure(7.0, 3.2)
    for name, (x, y) in series.items():
        axes.plot(x, y, label=name, linewidth=1.4, marker="o" if len(x) <= 30 else None, markersize=3)
    values = [v for _, y in series.values() for v in y if np.isfinite(v)]
    if log_y and values and min(values) > 0 and max(values) / min(values) > 20:  # log only when it spans decades
        axes.set_yscale("log")
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel)
    axes.grid(alpha=0.3)
    if len(series) > 1:
        axes.legend(fontsize=8, loc="best")
    return _png(figure)


def bar_chart(names: Sequence[str], values: Sequence[float | None], *, title: str, xlabel: str,
              colours: np.ndarray | None = None) -> bytes:
    """Horizontal bars, one per name, the value printed beside each; None or nan drawn as "n/a"."""
    figure, axes = _figure(7.0, 0.6 + 0.28 * max(len(names), 3))
    clean = [0.0 if v is None or not np.isfinite(v) else float(v) for v in values]
    rows = np.arange(len(names))
    colour = None if colours is None else np.asarray(colours, dtype=np.float64)[: len(names)] / 255
    axes.barh(rows, clean, color=colour, edgecolor="#444444", linewidth=0.5)
    for row, value, raw in zip(rows, clean, values):
        text = "n/a" if raw is None or not np.isfinite(raw) else f"{raw:.3f}"
        axes.text(value + 0.01, row, text, va="center", fontsize=8)
    axes.set_yticks(rows, labels=list(names), fontsize=8)
    axes.invert_yaxis()
    axes.set_xlim(0, max(1.0, max(clean, default=0) * 1.15))
    axes.set(title=title, xlabel=xlabel)
    axes.grid(axis="x", alpha=0.3)
    return _png(figure)


def confusion_heatmap(matrix: np.ndarray, classes: Sequence[str], *, fmt: str = "png") -> bytes:
    """The confusion matrix as a heat map: rows (ground truth) normalised to 1, the share in each cell.

    Rows of classes absent from the ground truth stay empty; cell text is shown up to 20 classes.
    """
    counts = np.asarray(matrix, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    n = len(classes)
    side = float(np.clip(0.45 * n + 2.5, 4.5, 14))
    figure, axes = _figure(side + 1.2, side)
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    ticks = np.arange(n)
    fontsize = 8 if n <= 30 else 5
    axes.set_xticks(ticks, labels=list(classes), rotation=60, ha="right", fontsize=fontsize)
    axes.set_yticks(ticks, labels=list(classes), fontsize=fontsize)
    axes.set(xlabel="predicted class", ylabel="ground-truth class", title="confusion (each row sums to 1)")
    if n <= 20:
        for (row, col), share in np.ndenumerate(shares):
            if share >= 0.005:
                axes.text(col, row, f"{share:.2f}", ha="center", va="center", fontsize=6.5,
                          color="white" if share > 0.5 else "black")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    return _png(figure, fmt)


def _figure(width: float, height: float):  # noqa: ANN202 - (Figure, Axes)
    from matplotlib.figure import Figure  # noqa: PLC0415 - matplotlib only loads when a report is drawn

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    return figure, figure.add_subplot()


def _png(figure, fmt: str = "png") -> bytes:  # noqa: ANN001 - matplotlib Figure
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt)
    return buffer.getvalue()
