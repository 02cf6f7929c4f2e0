"""Sparse-PCA detectors for a planted spike ``N(0, I + theta nu nu^T)`` in random weights
(paper.md §4.3). With m rows in dimension d and a k-sparse unit ``nu``:

* diagonal thresholding (Johnstone & Lu 2009): support coordinates have variance
  ``1 + theta / k``; works once ``theta / k >> sqrt(log d / m)``;
* covariance thresholding (Krauthgamer-Nadler-Vilenchik 2015; Deshpande-Montanari 2016):
  soft-threshold the off-diagonal sample covariance at ``c / sqrt(m)`` and take the top
  eigenvalue; works once ``theta >~ k sqrt(log(d/k^2) / m)``;
* the spectrum detector (``covariance_spectrum`` in weights.py) needs ``theta > sqrt(d/m)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.sparse.linalg import eigsh

from backdoors.detectors import Evidence, register
from backdoors.detectors.weights import _WeightDetector, random_weights
from backdoors.errors import NotApplicableError


@register
class SpikeKeyAware(_WeightDetector):
    """Positive control: the weights' variance along the secret ``nu`` minus 1 (``theta``
    for the backdoored coins, ``0 +- sqrt(2/m)`` for honest ones)."""

    name = "relu_key_aware"
    needs = frozenset({"weights", "key"})

    def applies_to(self, model: Any) -> bool:
        return super().applies_to(model) and hasattr(model, "weights_")

    def score(self, model: Any, evidence: Evidence) -> float:
        self.check(model, evidence)
        nu = getattr(evidence.key, "nu", None)
        if nu is None:
            raise NotApplicableError("relu_key_aware needs a ReLU key")
        return float(np.mean((random_weights(model) @ nu) ** 2) - 1.0)


@register
class DiagonalThresholding(_WeightDetector):
    """Largest per-coordinate second moment, standardised: ``max_j (mean_i W_ij^2 - 1) /
    sqrt(2/m)`` (Johnstone & Lu's diagonal statistic)."""

    name = "diagonal_thresholding"

    def score(self, model: Any, evidence: Evidence) -> float:
        self.check(model, evidence)
        W = random_weights(model)
        return float(((W**2).mean(axis=0).max() - 1.0) / np.sqrt(2.0 / len(W)))


@register
class CovarianceThresholding(_WeightDetector):
    """Top eigenvalue of the soft-thresholded off-diagonal sample covariance (threshold
    ``3 / sqrt(m)``, about the largest null off-diagonal entry's scale); higher = a sparse
    spike."""

    name = "covariance_thresholding"

    def score(self, model: Any, evidence: Evidence) -> float:
        self.check(model, evidence)
        W = random_weights(model)
        m = len(W)
        C = (W.T @ W) / m
        np.fill_diagonal(C, 0.0)
        t = 3.0 / np.sqrt(m)
        C = np.sign(C) * np.maximum(np.abs(C) - t, 0.0)
        if not C.any():
            return 0.0
        return float(eigsh(C, k=1, which="LA", return_eigenvectors=False, tol=1e-4)[0])
