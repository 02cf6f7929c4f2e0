"""Experiment reports lead with a short headline table (units, sample sizes) and end with the
full table; the record's artifact paths are final paths; no empty plot folder is left."""

from __future__ import annotations

import json

import pytest

from backdoors.artifacts.report import record_sections, to_markdown
from backdoors.cli import main


def _record(**extra):
    metrics = {f"m{i}": i / 10 for i in range(40)}
    metrics.update(clean_agreement=1.0, activation_success=0.99, queries=1000)
    return {
        "experiment": "signature",
        "params": {"quick": True, "n_activate": 200, "reps": 5},
        "seed": 0,
        "metrics": metrics,
        "timings": {},
        "versions": {},
        "artifacts": {},
        "notes": [],
        **extra,
    }


def test_report_leads_with_a_short_headline_and_ends_with_the_full_table():
    md = to_markdown("t", record_sections(_record()))
    headline, rest = md.split("## Notes" if "## Notes" in md else "## Parameters", 1)
    assert "| `clean_agreement` | 1 | fraction of inputs with the same prediction |" in headline
    assert "Sample sizes: n_activate = 200; reps = 5." in headline
    assert "`m39`" not in headline and headline.count("\n| `") <= 12
    assert md.rindex("## All figures") > md.index("## Versions") and "`m39`" in rest


@pytest.mark.slow
def test_experiment_leaves_no_empty_plot_folder_and_final_artifact_paths(tmp_path, capsys):
    code = main(["experiment", "checksum-net", "--quick", "--json", str(tmp_path / "c.json")])
    assert code == 0, capsys.readouterr().err
    rec = json.loads((tmp_path / "c.json").read_text())
    assert not rec["artifacts"].get("plots")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json"]


def test_artifact_report_path_is_the_final_path_not_the_staging_one(tmp_path):
    from backdoors.artifacts.transaction import Transaction
    from backdoors.cli.core import _final_plot_paths

    with Transaction() as tx:
        staged = tx.folder(tmp_path / "plots")
        (staged / "report.md").write_text("r")
        (staged / "a.png").write_bytes(b"p")
        rec = {"artifacts": {"report": str(staged / "report.md"), "plots": [str(staged / "a.png")]}}
        rec = _final_plot_paths(rec, tx)
    assert rec["artifacts"]["report"] == str(tmp_path / "plots" / "report.md")
    assert (tmp_path / "plots" / "report.md").is_file()
    assert rec["artifacts"]["plots"] == [str(tmp_path / "plots" / "a.png")]
