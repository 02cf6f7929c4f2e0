"""Reports: experiment records and demo sections rendered to Markdown and HTML, with PNG plots."""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from backdoors.io import atomic_write, atomic_writer


@dataclass
class Section:
    """One block of a report: prose (Markdown), a flat table of figures, PNG images."""

    title: str
    text: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    images: list[str] = field(default_factory=list)  # paths relative to the report folder


def save_figure(fig: Any, path: str | os.PathLike) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    out = atomic_writer(
        path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    )
    plt.close(fig)
    return out


def new_figure(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
    """``plt.subplots`` on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def _fmt(v: Any) -> str:
    if isinstance(v, float | np.floating):
        return f"{v:.4g}"
    if isinstance(v, list | tuple) and len(v) == 2 and all(isinstance(x, float | int) for x in v):
        return f"[{_fmt(float(v[0]))}, {_fmt(float(v[1]))}]"
    if isinstance(v, dict | list):
        return json.dumps(v, default=str)[:200]
    return str(v)


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if (
            isinstance(v, dict)
            and v
            and all(not isinstance(x, dict) for x in v.values())
            and len(v) > 6
        ):
            out[key] = v
        elif isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def to_markdown(title: str, sections: list[Section], preface: str = "") -> str:
    lines = [f"# {title}", ""]
    if preface:
        lines += [preface, ""]
    for s in sections:
        lines += [f"## {s.title}", ""]
        if s.text:
            lines += [s.text.strip(), ""]
        if s.metrics:
            lines += ["| metric | value |", "|---|---|"]
            lines += [f"| `{k}` | {_fmt(v)} |" for k, v in _flatten(s.metrics).items()]
            lines.append("")
        lines += [f"![{s.title}]({img})" for img in s.images]
        if s.images:
            lines.append("")
    return "\n".join(lines)


def to_html(title: str, sections: list[Section], preface: str = "") -> str:
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{e(title)}</title><style>body{{font-family:sans-serif;max-width:980px;margin:auto}}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px}"
        "pre{white-space:pre-wrap}</style></head><body>",
        f"<h1>{e(title)}</h1>",
    ]
    if preface:
        parts.append(f"<pre>{e(preface)}</pre>")
    for s in sections:
        parts.append(f"<h2>{e(s.title)}</h2>")
        if s.text:
            parts.append(f"<pre>{e(s.text.strip())}</pre>")
        if s.metrics:
            rows = "".join(
                f"<tr><td><code>{e(k)}</code></td><td>{e(_fmt(v))}</td></tr>"
                for k, v in _flatten(s.metrics).items()
            )
            parts.append(f"<table><tr><th>metric</th><th>value</th></tr>{rows}</table>")
        parts += [f"<p><img src='{e(img)}' style='max-width:100%'></p>" for img in s.images]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(
    out_dir: str | os.PathLike, title: str, sections: list[Section], preface: str = ""
) -> Path:
    """Write ``report.md`` and ``report.html`` into ``out_dir``; return the Markdown path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "report.html", to_html(title, sections, preface).encode())
    return atomic_write(out / "report.md", to_markdown(title, sections, preface).encode())


def record_sections(record: dict[str, Any]) -> list[Section]:
    """Sections for an experiment record: metrics, parameters, timings, versions, notes."""
    notes = "\n".join(f"- {n}" for n in record.get("notes", []))
    return [
        Section(
            "Metrics",
            text=notes,
            metrics=record.get("metrics", {}),
            images=list(record.get("artifacts", {}).get("plots", [])),
        ),
        Section("Parameters", metrics={**record.get("params", {}), "seed": record.get("seed")}),
        Section("Timings (s)", metrics=record.get("timings", {})),
        Section("Versions", metrics=record.get("versions", {})),
    ]
