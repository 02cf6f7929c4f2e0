"""The demo report as a newcomer reads it: progress on stderr without a terminal, the figures
the prose relies on shown whole, images that load and real tables in a browser."""

from __future__ import annotations

import os
import re
from pathlib import Path

import html_probe
from backdoors.cli import main

SHOTS = os.environ.get("BACKDOORS_SCREENSHOTS")  # keep screenshots here (default: tmp_path)


def test_quick_demo_sections_report_progress_and_render(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("BACKDOORS_PROGRESS", raising=False)  # stderr is not a terminal here
    out = tmp_path / "demo"
    argv = ["demo", "--quick", "--out", str(out)]
    for s in ("signature", "rff", "relu"):
        argv += ["--section", s]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 0, err
    # one line per finished section (and per long step), in order
    done = re.findall(r"^backdoors: demo section (\d)/3 (\w+) done in [\d.]+ s$", err, re.M)
    assert done == [("1", "signature"), ("2", "rff"), ("3", "relu")], err
    assert re.search(r"^backdoors: training the MNIST classifier .* done in", err, re.M)
    md = (out / "report.md").read_text()
    # signature: the key holder's inputs activate, every clean input agrees, examples drawn
    assert "| `clean_agreement` | 1 |" in md and "| `activation_success` | 1 |" in md
    assert (out / "signature_examples.png").stat().st_size > 1000
    # RFF: the detector scores are a table of their own, the key-aware row whole
    row = re.search(r"^\| `rff_key_aware` \| yes \| (\S+) \| (\S+) \| (.+) \|$", md, re.M)
    assert row, md
    assert float(row.group(2)) > float(row.group(1)) + 0.5  # the control separates them
    assert "detector_scores_honest_vs_backdoored" not in md
    # ReLU: every AUROC comes with its interval and the prose says how to read them
    aurocs = re.findall(r"^\| `AUROC (\w+) \[95% CI\]` \| ([\d.]+) \[([\d.]+), ([\d.]+)\] \|$",
                        md, re.M)  # fmt: skip
    assert len(aurocs) >= 3
    cis = {name: (float(lo), float(hi)) for name, _, lo, hi in aurocs}
    assert cis.pop("relu_key_aware") == (1.0, 1.0)  # the control separates every resample
    assert "by chance (95% range of the null AUROC" in md
    # the prose's verdict names exactly the statistics whose table interval contains 0.5
    blind = sorted(n for n, (lo, hi) in cis.items() if lo <= 0.5 <= hi)
    verdict = re.search(r"Intervals containing 0\.5: ([\w, ]+); excluding it: ([\w, ]+) \(", md)
    if verdict is None:
        assert blind == sorted(cis) and "Every key-oblivious statistic's interval contains" in md
    else:
        assert sorted(set(verdict.group(1).split(", ")) - {"none"}) == blind
        assert sorted(verdict.group(2).split(", ")) == sorted(set(cis) - set(blind))
    # units where the names do not give them
    assert "`perturbation_linf_grey_levels`: largest |x' - x| over all pixels" in md
    shot = Path(SHOTS) / "demo-quick.png" if SHOTS else tmp_path / "demo.png"
    found = html_probe.inspect(out / "report.html", shot, shot_height=6000)
    html_probe.assert_readable(found, n_images=2, min_tables=4)
    assert shot.stat().st_size > 10_000
