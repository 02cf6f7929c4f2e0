"""Weight-statistics detectors: statistics of the parameters alone (no data, no queries).

Classic poisoning moves weights an honest run leaves alone: a BadNets patch in MNIST's always-
black corner gives the first layer's weights on those pixels gradient only through poisoned
inputs. We report, per model, the excess kurtosis of the first weight layer's per-input-feature
column norms (heavy tails = a few inputs with outsized weights) together with the max-norm /
median-norm ratio in ``details_``; weight-distribution statistics of this kind are the
"model-level statistics" baselines of trojan-detection benchmarks (e.g. the TDC 2022 baselines).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import kurtosis

from backdoors.detectors import Detector, Evidence, register
from backdoors.detectors._access import torch_module


@register
class WeightStats(Detector):
    name = "weight_stats"
    needs = frozenset({"weights"})

    def score(self, model: Any, evidence: Evidence) -> float:
        module = torch_module(model)
        mats = [p.detach().numpy() for p in module.parameters() if p.ndim >= 2]
        if not mats:
            from backdoors.errors import NotApplicableError

            raise NotApplicableError("no weight matrices")
        W = mats[0].reshape(mats[0].shape[0], -1)
        cols = np.linalg.norm(W, axis=0) if W.shape[1] > 50 else np.abs(W).ravel()
        self.details_ = {
            "kurtosis": [float(kurtosis(m.ravel())) for m in mats],
            "max_over_median": float(cols.max() / max(np.median(cols), 1e-12)),
        }
        return float(kurtosis(cols))
