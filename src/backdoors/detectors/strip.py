"""STRIP (Gao et al., ACSAC 2019, §III-IV): STRong Intentional Perturbation.

Each input x is superimposed with N clean images x_j (pixelwise sum, saturated at 255, as the
paper's image blending); its entropy is H(x) = (1/N) sum_j -sum_c p_c(x + x_j) log2 p_c(x + x_j).
A trigger dominates whatever it is blended with, so triggered inputs keep a confident prediction
and have low entropy. Per-input score = -H(x) (higher = more suspicious). ``strip_model`` turns
it into a model score: -(the 5th percentile of H) over the audit inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backdoors.detectors import Detector, Evidence, register
from backdoors.detectors._access import proba


def strip_entropy(
    model: Any,
    X: np.ndarray,
    pool: np.ndarray,
    n_overlay: int = 8,
    seed: int = 0,
    top: float = 255.0,
) -> np.ndarray:
    """H(x) for every row of ``X``, overlays drawn from ``pool``."""
    rng = np.random.default_rng(seed)
    X = np.asarray(X)
    idx = rng.integers(0, len(pool), size=(len(X), n_overlay))
    blended = np.minimum(
        X[:, None, :].astype(np.float64) + np.asarray(pool)[idx].astype(np.float64), top
    ).astype(X.dtype)
    p = proba(model, blended.reshape(len(X) * n_overlay, -1))
    h = -(p * np.log2(np.clip(p, 1e-12, 1.0))).sum(axis=1)
    return h.reshape(len(X), n_overlay).mean(axis=1)


@register
class Strip(Detector):
    name = "strip"
    needs = frozenset({"queries"})
    per_input = True

    def __init__(self, n_overlay: int = 8) -> None:
        self.n_overlay = n_overlay

    def score(self, model: Any, evidence: Evidence) -> np.ndarray:
        X = np.asarray(evidence.X)
        top = 255.0 if X.dtype == np.uint8 else float(np.max(X))
        return -strip_entropy(model, X, X, self.n_overlay, evidence.seed, top)


@register
class StripModel(Detector):
    name = "strip_model"
    needs = frozenset({"queries"})

    def __init__(self, n_inputs: int = 200, n_overlay: int = 8, quantile: float = 0.05) -> None:
        self.n_inputs, self.n_overlay, self.quantile = n_inputs, n_overlay, quantile

    def score(self, model: Any, evidence: Evidence) -> float:
        X = np.asarray(evidence.X)[: self.n_inputs]
        top = 255.0 if X.dtype == np.uint8 else float(np.max(X))
        h = strip_entropy(model, X, X, self.n_overlay, evidence.seed, top)
        self.details_ = {"entropy_mean": float(h.mean())}
        return -float(np.quantile(h, self.quantile))
