"""The demo's detectors section: live populations, BadNets caught, the signature backdoor not."""

from __future__ import annotations

from backdoors.demos import DemoContext
from backdoors.demos.detectors import run


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
