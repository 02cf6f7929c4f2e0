"""STRIP (Gao et al., ACSAC 2019, §III-IV): STRong Intentional Perturbation.

Each input x is superimposed with N clean images x_j (pixelwise sum, saturated at the top of
the pixel range, as the paper's image blending; for signed, non-image features the blend is the
average (x + x_j) / 2); its entropy is H(x) = (1/N) sum_j -sum_c p_c(x + x_j) log2 p_c(x + x_j).
A trigger dominates whatever it is blended with, so triggered inputs keep a confident prediction
and have low entropy. Per-input score = -H(x) (higher = more suspicious); the overlays come
from the defender's held-out clean set (the paper's assumption; here the clean training data
when the auditor has it, else the scored inputs themselves). ``strip_model`` turns
it into a model score: -(the 5th percentile of H) over the audit inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backdoors.detectors import Control, Detector, Evidence, Report, register
from backdoors.detectors._access import proba, probabilistic, value_range


def strip_entropy(
    model: Any,
    X: np.ndarray,
    pool: np.ndarray,
    n_overlay: int = 8,
    seed: int = 0,
) -> np.ndarray:
    """H(x) for every row of ``X``, overlays drawn from ``pool`` (a clean sample)."""
    rng = np.random.default_rng(seed)
    X = np.asarray(X)
    lo, hi = value_range(pool)
    idx = rng.integers(0, len(pool), size=(len(X), n_overlay))
    total = X[:, None, :].astype(np.float64) + np.asarray(pool)[idx].astype(np.float64)
    blended = (np.minimum(total, hi) if lo >= 0 else total / 2).astype(X.dtype)
    p = proba(model, blended.reshape(len(X) * n_overlay, -1))
    h = -(p * np.log2(np.clip(p, 1e-12, 1.0))).sum(axis=1)
    return h.reshape(len(X), n_overlay).mean(axis=1)


@register
class Strip(Detector):
    name = "strip"
    needs = frozenset({"queries"})
    optional = frozenset({"training_data"})
    per_input = True

    def __init__(self, n_overlay: int = 8) -> None:
        self.n_overlay = n_overlay

    def check_model(self, model: Any) -> None:
        probabilistic(model)

    def score(self, model: Any, evidence: Evidence) -> np.ndarray:
        X = np.asarray(evidence.X)
        pool = X if evidence.X_train is None else np.asarray(evidence.X_train)
        return -strip_entropy(model, X, pool, self.n_overlay, evidence.seed)

    @classmethod
    def positive_control(cls) -> Control | None:
        from backdoors.detectors import _controls as controls

        return controls.badnets_pair("triggered")


@register
class StripModel(Detector):
    """Model score: ``-(5th percentile of H)`` over the audit inputs, ``n_overlay`` blends
    each; ``findings["variants"]`` adds the same score with each of :attr:`OVERLAYS` blends
    (the number of overlays N is STRIP's main parameter)."""

    name = "strip_model"
    needs = frozenset({"queries"})
    OVERLAYS = (20, 50)

    def __init__(self, n_inputs: int = 200, n_overlay: int = 8, quantile: float = 0.05) -> None:
        self.n_inputs, self.n_overlay, self.quantile = n_inputs, n_overlay, quantile

    def check_model(self, model: Any) -> None:
        probabilistic(model)

    def score(self, model: Any, evidence: Evidence) -> Report:
        X = np.asarray(evidence.X)[: self.n_inputs]
        h = strip_entropy(model, X, X, self.n_overlay, evidence.seed)
        variants = {
            f"n{n}": -float(
                np.quantile(strip_entropy(model, X, X, n, evidence.seed), self.quantile)
            )
            for n in self.OVERLAYS
            if n != self.n_overlay
        }
        score = -float(np.quantile(h, self.quantile))
        return Report(score, {"entropy_mean": float(h.mean()), "variants": variants})

    @classmethod
    def positive_control(cls) -> Control | None:
        from backdoors.detectors import _controls as controls

        return controls.badnets_pair("mixed")
