"""The demo's detectors section: live populations, BadNets caught, the signature backdoor not."""

from __future__ import annotations

import pytest

from backdoors.demos import DemoContext
from backdoors.demos.detectors import reading_aurocs, run


@pytest.mark.slow  # builds 12 MNIST models: ~15 s idle, a minute on a loaded machine
def test_detectors_section_quick(tmp_path):
    sec = run(DemoContext(tmp_path, seed=0, quick=True))
    m = sec.metrics
    assert m["BadNets attack success"] >= 0.9
    assert m["BadNets clean-accuracy drop"] <= 0.03
    assert m["signature attack success"] == 1.0
    # the per-input filter separates patched from clean inputs, not signed from clean ones
    assert float(m["AUROC strip / badnets"].split()[0]) >= 0.9
    assert 0.3 <= float(m["AUROC strip / signature"].split()[0]) <= 0.7
    assert float(m["AUROC key_aware / signature"].split()[0]) == 1.0
    assert float(m["AUROC architecture_inspection / signature"].split()[0]) == 1.0
    assert (tmp_path / sec.images[0]).stat().st_size > 1000
    assert "Reading an AUROC" in sec.text


def test_reading_aurocs_explains_low_values_and_zero_width_intervals():
    auroc = {"strip_model": {"badnets": 0.28, "signature": 0.5}, "weight_stats": {"badnets": 0.3}}
    ci = {"strip_model": {"badnets": [0.1, 0.45], "signature": [0.2, 0.8]},
          "weight_stats": {"badnets": [0.05, 0.62]}}  # fmt: skip
    text = reading_aurocs(auroc, ci, 10)
    assert "`strip_model` on badnets: 0.28 [0.10, 0.45], the whole interval is below 0.5" in text
    assert "`weight_stats` on badnets: 0.30 [0.05, 0.62], its interval reaches 0.5" in text
    assert "less confident on blended clean inputs" in text
    assert "zero width" not in text
    one = {"key_aware": {"signature": 1.0}}
    text = reading_aurocs(one, {"key_aware": {"signature": [1.0, 1.0]}}, 3)
    assert "zero width (key_aware/signature)" in text and "3 + 3" in text
    assert "Here:" not in text
