"""`backdoors report` and the HTML reports as a reader sees them (headless Chromium)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import html_probe
from backdoors.artifacts import report
from backdoors.artifacts.records import make_record, plot_files, relative_to_record, write_record
from backdoors.cli import main

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"
SHOTS = os.environ.get("BACKDOORS_SCREENSHOTS")  # keep screenshots here (default: tmp_path)


def _plot(path: Path) -> str:
    fig, ax = report.new_figure(figsize=(3, 2))
    ax.plot(np.arange(5), np.arange(5) ** 2)
    report.save_figure(fig, path)
    return str(path)


def _record(plots: list[str]) -> dict:
    metrics = {
        "accuracy": 0.98765,
        "interval": [0.25, 0.75],
        "per_detector": {f"det_{i}": [0.1 * i, 0.5] for i in range(8)},  # own table
        "nested": {"a": 1, "b": {"c": True}},
        "pipe|name": "x | y",
    }
    return make_record("toy", {"n": 3}, 0, metrics, {"fit": 0.5}, {"plots": plots}, ["a note"])


def _shot(tmp_path: Path, name: str) -> Path:
    return Path(SHOTS) / name if SHOTS else tmp_path / name


def test_record_plots_are_stored_relative_to_the_record(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exp" / "sig-plots").mkdir(parents=True)
    rec = _record([_plot(Path("exp/sig-plots/a.png")), _plot(tmp_path / "exp" / "b.png")])
    write_record("exp/sig.json", rec)
    stored = json.loads((tmp_path / "exp" / "sig.json").read_text())
    assert stored["artifacts"]["plots"] == ["sig-plots/a.png", "b.png"]
    # resolved beside the record from anywhere, whatever the current directory
    monkeypatch.chdir(tmp_path / "exp" / "sig-plots")
    found, missing = plot_files(stored, tmp_path / "exp" / "sig.json")
    assert [p.resolve() for p in found] == [
        (tmp_path / "exp" / "sig-plots" / "a.png").resolve(),
        (tmp_path / "exp" / "b.png").resolve(),
    ]
    assert missing == []
    # absolute paths that moved are looked up by name beside the record; else reported
    moved = {"artifacts": {"plots": ["/nowhere/b.png", "/nowhere/zz.png"]}}
    found, missing = plot_files(moved, tmp_path / "exp" / "sig.json")
    assert [p.name for p in found] == ["b.png"] and missing == ["/nowhere/zz.png"]
    assert relative_to_record({"artifacts": {}}, "x.json")["artifacts"] == {}


def test_report_command_resolves_plots_and_renders_in_a_browser(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exp" / "sig-plots").mkdir(parents=True)
    write_record("exp/sig.json", _record([_plot(Path("exp/sig-plots/a.png"))]))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    out = tmp_path / "elsewhere" / "rep"
    assert main(["report", str(tmp_path / "exp" / "sig.json"), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "![Plots: a](a.png)" in md and (out / "a.png").is_file()
    # values are never cut off; a large dict of figures is its own table; pipes escaped
    assert "| `det_7` | [0.7, 0.5] |" in md
    assert "| `pipe\\|name` | x \\| y |" in md
    assert "| `nested.b.c` | True |" in md
    found = html_probe.inspect(out / "report.html", _shot(tmp_path, "record-report.png"))
    html_probe.assert_readable(found, n_images=1, min_tables=5)
    # a relative record path from another directory works too
    monkeypatch.chdir(tmp_path)
    assert main(["report", "exp/sig.json", "--out", "rep2"]) == 0
    assert (tmp_path / "rep2" / "a.png").read_bytes() == (out / "a.png").read_bytes()


def test_report_names_missing_plots_instead_of_breaking_images(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(_record(["gone/x.png"])))
    assert main(["report", str(path), "--out", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "plot not found (not shown): `gone/x.png`" in md and "![" not in md


@pytest.mark.parametrize("name", sorted(p.name for p in RESULTS.glob("*.json")))
def test_committed_records_have_the_record_keys_and_render(name, tmp_path):
    rec = json.loads((RESULTS / name).read_text())
    for key in ("experiment", "params", "seed", "versions", "metrics", "timings"):
        assert key in rec, key
    assert isinstance(rec["metrics"], dict) and rec["metrics"]
    assert all(isinstance(v, int | float) for v in rec["timings"].values())
    assert main(["report", str(RESULTS / name), "--out", str(tmp_path)]) == 0
    md = (tmp_path / "report.md").read_text()
    assert f"# experiment {rec['experiment']}" in md
    for img in [ln for ln in md.splitlines() if ln.startswith("![")]:
        assert (tmp_path / img.split("](")[1].rstrip(")")).is_file()


def test_markdown_becomes_html_tables_and_escapes_raw_html():
    page = report.to_html(
        "t", [report.Section("s", text="| a | b |\n|---|---|\n| 1 | <script>x</script> |")]
    )
    assert "<table>" in page and "<td>1</td>" in page
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_images_with_one_name_from_two_folders_are_both_kept(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "y z").mkdir()
    a, b = _plot(tmp_path / "x" / "a.png"), _plot(tmp_path / "y z" / "a.png")
    Path(b).write_bytes(Path(b).read_bytes() + b"\0")  # a different file
    out = tmp_path / "rep"
    report.write_report(out, "t", [report.Section("s", images=[a, b, a])])
    md = (out / "report.md").read_text()
    assert "(a.png)" in md and "(a-1.png)" in md and md.count("(a.png)") == 2
    assert (out / "a.png").read_bytes() == Path(a).read_bytes()
    assert (out / "a-1.png").read_bytes() == Path(b).read_bytes()
