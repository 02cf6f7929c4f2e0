"""Weight-statistics detectors: statistics of the parameters alone (no data, no queries).

Classic poisoning moves weights an honest run leaves alone: a BadNets patch in MNIST's always-
black corner gives the first layer's weights on those pixels gradient only through poisoned
inputs. We report, per model, the excess kurtosis of the first weight layer's per-input-feature
column norms (heavy tails = a few inputs with outsized weights) together with the max-norm /
median-norm ratio in its findings; weight-distribution statistics of this kind are the
"model-level statistics" baselines of trojan-detection benchmarks (e.g. the TDC 2022 baselines).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import kurtosis

from backdoors.detectors import Control, Detector, Evidence, Report, register
from backdoors.detectors._access import torch_module
from backdoors.errors import NotApplicableError


@register
class WeightStats(Detector):
    name = "weight_stats"
    needs = frozenset({"weights"})

    def check_model(self, model: Any) -> None:
        if not any(p.ndim >= 2 for p in torch_module(model).parameters()):
            raise NotApplicableError(f"the network of {type(model).__name__} has no weight matrix")

    def score(self, model: Any, evidence: Evidence) -> Report:
        module = torch_module(model)
        mats = [p.detach().numpy() for p in module.parameters() if p.ndim >= 2]
        W = mats[0].reshape(mats[0].shape[0], -1)
        cols = np.linalg.norm(W, axis=0) if W.shape[1] > 50 else np.abs(W).ravel()
        findings = {
            "kurtosis": [float(kurtosis(m.ravel())) for m in mats],
            "max_over_median": float(cols.max() / max(np.median(cols), 1e-12)),
        }
        return Report(float(kurtosis(cols)), findings)

    @classmethod
    def positive_control(cls) -> Control | None:
        from backdoors.detectors import _controls as controls

        return controls.badnets_pair()
