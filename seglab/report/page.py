"""The report's HTML: sections, embedded PNGs (data URIs), small tables; inline CSS, no script, no network."""

from __future__ import annotations

import base64
import html
import io
import json
import math
from typing import Any

from seglab.report.run_folder import RunRecord

STYLE = """
body { font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 2rem auto; max-width: 1100px;
       color: #222; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
figure { margin: 1rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: .9rem; } .note { color: #666; font-style: italic; }
table { border-collapse: collapse; margin: .6rem 0; font-size: .9rem; }
td, th { border: 1px solid #ddd; padding: .25rem .6rem; text-align: left; } th { background: #f5f5f5; }
pre { background: #f7f7f7; padding: .8rem; overflow-x: auto; font-size: .8rem; }
"""

SUMMARY_KEYS = ("miou", "pixel_acc", "mean_acc", "fwiou", "dice", "segm_ap", "segm_ap50", "bbox_ap", "segm_ar100",
                "pq", "sq", "rq", "pq_things", "pq_stuff")


class Page:
    """An HTML page built top to bottom; ``html()`` returns the whole document."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.parts: list[str] = [f"<h1>{html.escape(title)}</h1>"]

    def section(self, title: str) -> None:
        self.parts.append(f"<h2>{html.escape(title)}</h2>")

    def note(self, text: str) -> None:
        self.parts.append(f'<p class="note">{html.escape(text)}</p>')

    def chart(self, png: bytes, caption: str) -> None:
        """A PNG (bytes) as a figure; its caption is also the alt text."""
        data = base64.b64encode(png).decode("ascii")
        self.parts.append(f'<figure class="plot"><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                          f"<figcaption>{html.escape(caption)}</figcaption></figure>")

    def picture(self, rgb: Any, caption: str) -> None:
        """An [H, W, 3] uint8 array as a PNG figure."""
        from PIL import Image  # noqa: PLC0415

        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format="PNG")
        self.chart(buffer.getvalue(), caption)

    def table(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        columns = list(dict.fromkeys(k for row in rows for k in row))
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_text(row.get(c)))}</td>" for c in columns) + "</tr>"
                       for row in rows)
        self.parts.append(f"<table><tr>{head}</tr>{body}</table>")

    def summary(self, run: RunRecord) -> None:
        """Model, dataset, steps and the final scores."""
        config = run.config
        metrics = config.get("metrics") or {}
        self.table([{"model": config.get("model"), "task": config.get("task", "semantic"),
                     "dataset": config.get("dataset"), "classes": config.get("num_classes"),
                     "input size": "x".join(map(str, config["input_size"])) if config.get("input_size") else "native",
                     "steps": config.get("step"), "checkpoint": str(run.checkpoint)}])
        scores = {k: metrics[k] for k in SUMMARY_KEYS if isinstance(metrics.get(k), (int, float))}
        if scores:
            self.table([scores])

    def recipe(self, run: RunRecord) -> None:
        self.section("Recipe")
        recipe = run.config.get("recipe")
        if not recipe:
            self.note("the checkpoint records no recipe (saved with seglab.save)")
            return
        import yaml  # noqa: PLC0415

        self.parts.append(f"<pre>{html.escape(yaml.safe_dump(recipe, sort_keys=False))}</pre>")

    def sessions(self, run: RunRecord) -> None:
        """Hardware and timings of each training session (run.json)."""
        self.section("Hardware and timings")
        if not run.sessions:
            self.note("no run.json in the run folder (trained before seglab recorded sessions)")
            return
        self.table([{"started": s.get("started"), "seconds": s.get("seconds"),
                     "steps": "-".join(map(str, s.get("steps", []))), "images/s": s.get("images_per_s"),
                     "device": s.get("device"), "processes": s.get("processes")} for s in run.sessions])
        machine = run.sessions[-1].get("machine") or {}
        self.table([{k: ", ".join(v) if isinstance(v, list) else v for k, v in machine.items()}])

    def html(self) -> str:
        body = "\n".join(self.parts)
        return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(self.title)}</title>'
                f'<meta name="viewport" content="width=device-width, initial-scale=1">'
                f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:.4g}"
    return value if isinstance(value, str) else json.dumps(value) if isinstance(value, (list, dict)) else str(value)
