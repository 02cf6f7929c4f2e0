"""Reports: experiment records and demo sections rendered to Markdown and HTML, with PNG plots.

A report is Markdown first (``report.md``); ``report.html`` is the same Markdown rendered by
markdown-it-py (CommonMark plus tables; raw HTML in the text is escaped, not passed through)
inside a small stylesheet: proportional font, real tables, images scaled to the page.
"""

from __future__ import annotations

import html
import json
import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from backdoors.artifacts.files import atomic_write, atomic_writer

#: A nested dict of scalars with more entries than this becomes its own table.
SUBTABLE_MIN = 7


@dataclass
class Section:
    """One block of a report: prose (Markdown), a flat table of figures, PNG images."""

    title: str
    text: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    images: list[str] = field(default_factory=list)  # paths relative to the report folder
    units: dict[str, str] = field(default_factory=dict)  # metric name -> unit / meaning


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


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------
def _fmt(v: Any) -> str:
    """One table cell: floats to 4 significant digits, intervals as [lo, hi], the rest JSON
    (never truncated: a table that cuts a figure off hides it)."""
    if isinstance(v, bool | np.bool_):
        return str(bool(v))
    if isinstance(v, float | np.floating):
        return f"{float(v):.4g}"
    if isinstance(v, list | tuple) and all(
        isinstance(x, float | int | np.number) and not isinstance(x, bool) for x in v
    ):
        inner = ", ".join(
            _fmt(float(x)) if isinstance(x, float | np.floating) else str(x) for x in v
        )
        return f"[{inner}]"
    if isinstance(v, dict | list | tuple):
        return json.dumps(v, default=str)
    return str(v)


def _cell(text: str) -> str:
    """Escape what would break a Markdown table row."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _is_subtable(v: Any) -> bool:
    return (
        isinstance(v, dict)
        and len(v) >= SUBTABLE_MIN
        and all(not isinstance(x, dict) for x in v.values())
    )


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts to dotted keys; large dicts of scalars are kept whole (own table)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if _is_subtable(v):
            out[key] = v
        elif isinstance(v, dict) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _unit(key: str, units: dict[str, str]) -> str:
    leaf = key.rsplit(".", 1)[-1]
    return units.get(key) or units.get(leaf) or ""


def metrics_markdown(metrics: dict[str, Any], units: dict[str, str] | None = None) -> str:
    """A table of figures, one table per large nested dict, then the unit / meaning of the
    figures whose name does not say it (:data:`backdoors.artifacts.records.UNITS` and ``units``)."""
    from backdoors.artifacts.records import UNITS

    known = {**UNITS, **(units or {})}
    flat = _flatten(metrics)
    small = {k: v for k, v in flat.items() if not _is_subtable(v)}
    lines: list[str] = []
    if small:
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| `{_cell(k)}` | {_cell(_fmt(v))} |" for k, v in small.items()]
    for k, v in flat.items():
        if _is_subtable(v):
            lines += ["", f"**`{_cell(k)}`**", "", "| key | value |", "|---|---|"]
            lines += [f"| `{_cell(str(kk))}` | {_cell(_fmt(vv))} |" for kk, vv in v.items()]
    notes = [f"- `{k}`: {_unit(k, known)}" for k in flat if _unit(k, known)]
    if notes:
        lines += ["", "Units and scales:", "", *notes]
    return "\n".join(lines)


def to_markdown(title: str, sections: list[Section], preface: str = "") -> str:
    lines = [f"# {title}", ""]
    if preface:
        lines += [preface, ""]
    for s in sections:
        lines += [f"## {s.title}", ""]
        if s.text:
            lines += [s.text.strip(), ""]
        if s.metrics:
            lines += [metrics_markdown(s.metrics, s.units), ""]
        for img in s.images:
            url = f"<{img}>" if any(c.isspace() for c in img) else img
            lines += [f"![{s.title}: {Path(img).stem}]({url})", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------
STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Helvetica,Arial,
sans-serif;font-size:16px;line-height:1.5;color:#1b1b1b;max-width:62rem;margin:0 auto;
padding:1rem 1.5rem 3rem}
h1{font-size:1.8rem;margin-top:.5rem}h2{font-size:1.35rem;margin-top:2rem;
border-bottom:1px solid #ddd;padding-bottom:.2rem}h3{font-size:1.1rem}
table{border-collapse:collapse;margin:.8rem 0;font-size:.92rem;display:block;overflow-x:auto;
max-width:100%}
th,td{border:1px solid #ccc;padding:.25rem .6rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}tr:nth-child(even) td{background:#fafafa}
td{overflow-wrap:break-word}td code{white-space:nowrap}
code{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:.88em;
background:#f4f4f4;padding:0 .2em;border-radius:3px}
pre{background:#f4f4f4;padding:.6rem;overflow-x:auto}pre code{background:none;padding:0}
img{max-width:100%;height:auto;display:block;margin:.8rem 0}
"""


def markdown_to_html(text: str) -> str:
    """CommonMark + GitHub tables via markdown-it-py; raw HTML in ``text`` is escaped."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)


def to_html(title: str, sections: list[Section], preface: str = "") -> str:
    body = markdown_to_html(to_markdown(title, sections, preface))
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n"
        f"<body>\n{body}</body></html>\n"
    )


def write_report(
    out_dir: str | os.PathLike, title: str, sections: list[Section], preface: str = ""
) -> Path:
    """Write ``report.md`` and ``report.html`` into ``out_dir``; return the Markdown path.

    Section images given as paths outside ``out_dir`` (absolute, or relative to the current
    directory) are copied into it, so the report folder is self-contained."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sections = _gather_images(sections, out)
    atomic_write(out / "report.html", to_html(title, sections, preface).encode())
    return atomic_write(out / "report.md", to_markdown(title, sections, preface).encode())


def _gather_images(sections: list[Section], out: Path) -> list[Section]:
    """Sections whose images all live in ``out`` (copies made with distinct names)."""
    taken: dict[str, Path] = {}  # name in out -> source file
    result = []
    for s in sections:
        names = []
        for img in s.images:
            p = Path(img)
            inside = not p.is_absolute() and (out / p).is_file()
            if inside or not p.is_file():
                names.append(img)  # already in the folder (or nothing to copy)
                continue
            src = p.resolve()
            name, i = p.name, 1
            while name in taken and taken[name] != src:
                name, i = f"{p.stem}-{i}{p.suffix}", i + 1
            dest = out / name
            if name not in taken and not (dest.exists() and dest.resolve() == src):
                shutil.copyfile(src, dest)
            taken[name] = src
            names.append(name)
        result.append(replace(s, images=names))
    return result


# ---------------------------------------------------------------------------------------------
# records
# ---------------------------------------------------------------------------------------------
#: experiment -> the figures its report leads with (metric keys, in order); an experiment not
#: listed leads with its first :data:`HEADLINE_DEFAULT` top-level scalar figures.
HEADLINES: dict[str, tuple[str, ...]] = {
    "signature": ("clean_agreement", "query_disagreements", "queries", "activation_success",
                  "activations_checked", "forgery_successes", "forgery_attempts",
                  "perturbation_linf", "perturbation_l0_max", "timing_auroc",
                  "predict_overhead_ratio"),
    "detectors": ("attack_success", "clean_accuracy_drop", "badnets_attack_success",
                  "population_speedup", "strip_signature_input_auroc"),
    "rff": ("accuracy_honest", "accuracy_backdoored", "accuracy_gap", "auroc_key_oblivious",
            "auroc_key_aware", "flip_rate_all", "perturbation_l2_over_x"),
    "relu": ("accuracy_honest", "accuracy_backdoored", "accuracy_gap", "auroc_key_oblivious",
             "auroc_key_aware", "flip_rate_backdoor", "perturbation_l2_over_x"),
    "onnx": ("onnx_clean_bit_identical", "onnx_activation_success",
             "onnx_reference_disagreements", "onnx_predict_overhead_ratio",
             "graph_inspection_auroc"),
    "checksum-net": ("agreement", "activation_success", "clean_accuracy",
                     "key_recovered_from_one_pair", "l0_max", "linf_max"),
    "persistence": ("backdoor_success_before", "backdoor_success_after",
                    "baseline_backdoor_success_after", "agreement", "size_ratio"),
}  # fmt: skip
HEADLINE_DEFAULT = 8
#: metric-name endings -> unit, for headline figures without an entry in records.UNITS
_SUFFIX_UNITS = (
    ("auroc", "AUROC (0.5 = chance, 1 = perfect separation)"),
    ("accuracy", "fraction of test inputs classified correctly"),
    ("accuracy_gap", "honest minus backdoored accuracy (fraction)"),
    ("agreement", "fraction of inputs with the same prediction"),
    ("success", "fraction of activated inputs reaching the target"),
    ("_rate", "fraction"),
    ("_ratio", "ratio (no unit)"),
    ("_seconds", "seconds"),
    ("_successes", "count"),
    ("_attempts", "count"),
    ("disagreements", "count"),
    ("queries", "count"),
    ("checked", "count"),
    ("_drop", "fraction (accuracy points / 100)"),
    ("l0_max", "features (pixels) changed, most over the inputs"),
    ("linf_max", "largest |x' - x|, input units"),
    ("speedup", "ratio (no unit)"),
)
#: params naming how many samples, models or repetitions a figure rests on
_SIZE_PARAM = ("n_", "pop", "reps", "members", "per_", "seeds", "samples", "steps")


def _headline_unit(key: str, units: dict[str, str]) -> str:
    u = _unit(key, units)
    if u:
        return u
    return next((text for end, text in _SUFFIX_UNITS if key.endswith(end)), "")


def sample_sizes(record: dict[str, Any]) -> str:
    """``name = value`` of the parameters that say how many inputs, models or repetitions
    the figures rest on (and ``population_sizes`` if the metrics have it)."""
    params = record.get("params") or {}
    sizes = [
        f"{k} = {v:,}" if isinstance(v, int) else f"{k} = {_fmt(v)}"
        for k, v in params.items()
        if k.startswith(_SIZE_PARAM) and not isinstance(v, bool | dict | list) and v is not None
    ]
    pops = (record.get("metrics") or {}).get("population_sizes")
    if pops:
        sizes.append(f"population_sizes = {_fmt(pops)}")
    return "; ".join(sizes)


def headline_markdown(record: dict[str, Any]) -> str:
    """The short table a report leads with: figure, value (with its ``_ci`` if the record has
    one), unit / meaning."""
    from backdoors.artifacts.records import UNITS

    metrics = record.get("metrics") or {}
    units = {**UNITS, **(record.get("units") or {})}
    keys = [k for k in HEADLINES.get(record.get("experiment", ""), ()) if k in metrics]
    if not keys:
        scalars = [k for k, v in metrics.items() if not isinstance(v, dict | list | tuple)]
        keys = scalars[:HEADLINE_DEFAULT]
    rows = ["| figure | value | unit / meaning |", "|---|---|---|"]
    for k in keys:
        v = _fmt(metrics[k])
        if f"{k}_ci" in metrics:
            v += f" {_fmt(metrics[f'{k}_ci'])}"
        rows.append(f"| `{_cell(k)}` | {_cell(v)} | {_cell(_headline_unit(k, units))} |")
    return "\n".join(rows) if keys else ""


def record_sections(
    record: dict[str, Any], record_path: str | os.PathLike | None = None
) -> list[Section]:
    """Sections for an experiment record: a short headline table (units, sample sizes),
    the plots, notes, parameters, timings, versions, and the full table of figures last.

    The record's plots are resolved relative to ``record_path`` (the record file; see
    :func:`backdoors.artifacts.records.plot_files`) and :func:`write_report` copies them beside the
    report; plots that cannot be found are named in the notes instead of becoming broken
    images. Plots of a ``--quick`` run are captioned with the run's sample sizes.
    """
    from backdoors.artifacts.records import plot_files

    is_quick = bool((record.get("params") or {}).get("quick"))
    quick = " --quick" if is_quick else ""
    created = f", written {record['created']}" if record.get("created") else ""
    sizes = sample_sizes(record)
    head = (
        f"Record of `backdoors experiment {record.get('experiment', '?')}{quick}` "
        f"(seed {record.get('seed')}{created}).\n\n"
        + (f"Sample sizes: {sizes}.\n\n" if sizes else "")
        + headline_markdown(record)
    )
    notes = [f"- {n}" for n in record.get("notes", [])]
    found, missing = plot_files(record, record_path)
    images = [str(p.absolute()) for p in found]
    notes += [f"- plot not found (not shown): `{m}`" for m in missing]
    sections = [Section("Headline", text=head)]
    if images:
        caption = (
            f"Plots of a scaled-down --quick run ({sizes or 'sizes in the parameters'}); "
            "a full run draws them from larger samples."
            if is_quick
            else ""
        )
        sections.append(Section("Plots", text=caption, images=images))
    if notes:
        sections.append(Section("Notes", text="\n".join(notes)))
    return [
        *sections,
        Section("Parameters", metrics={**record.get("params", {}), "seed": record.get("seed")}),
        Section("Timings (s)", metrics=record.get("timings", {})),
        Section("Versions", metrics=record.get("versions", {})),
        Section(
            "All figures (full record)",
            metrics=record.get("metrics", {}),
            units=dict(record.get("units") or {}),
        ),
    ]
