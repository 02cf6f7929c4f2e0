"""White-box detectors that read a model's random first-layer weights (paper §6 threat model:
the distinguisher sees every weight and the training data).

They apply to any model exposing its random matrix as ``frequencies_`` (RFF) or ``weights_``
(random ReLU). Under the honest coins the rows are i.i.d. ``N(0, I_d)``; every score below is
a distance from that null. The key-aware control reads the secret direction from the key.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from backdoors.detectors import Detector, Evidence, register
from backdoors.errors import NotApplicableError


def random_weights(model: Any) -> np.ndarray:
    """The model's random first-layer matrix (rows = units), or NotApplicableError."""
    for name in ("frequencies_", "weights_"):
        W = getattr(model, name, None)
        if isinstance(W, np.ndarray) and W.ndim == 2:
            return W
    raise NotApplicableError(f"{type(model).__name__} exposes no random weight matrix")


def ks_to_normal(P: np.ndarray) -> float:
    """Largest Kolmogorov-Smirnov distance from N(0, 1) over the columns of ``P``."""
    Z = np.sort(P, axis=0)
    cdf = stats.norm.cdf(Z)
    n = len(P)
    hi = np.arange(1, n + 1)[:, None] / n - cdf
    lo = cdf - np.arange(0, n)[:, None] / n
    return float(np.maximum(hi, lo).max())


class _WeightDetector(Detector):
    requires = "a random first-layer matrix (frequencies_ / weights_ of an RFF / ReLU model)"
    needs = frozenset({"weights"})

    def applies_to(self, model: Any) -> bool:
        try:
            random_weights(model)
        except NotApplicableError:
            return False
        return True


@register
class HalfIntegerKeyAware(_WeightDetector):
    """Positive control: with bk in hand, ``<g_i, bk>`` sits at half-integers for pancake
    coins (``cos(2 pi <g_i, bk>) = -1``) and is spread out for Gaussian coins (mean cos
    ``= exp(-2 pi^2 |bk|^2) ~ 0``). Score = ``-mean_i cos(2 pi <g_i, bk>)``."""

    name = "rff_key_aware"
    needs = frozenset({"weights", "key"})
    requires = "the random features' frequency matrix (frequencies_ of an RFF model)"

    def applies_to(self, model: Any) -> bool:
        return super().applies_to(model) and hasattr(model, "frequencies_")

    def score(self, model: Any, evidence: Evidence) -> float:
        self.check(model, evidence)
        bk = getattr(evidence.key, "bk", None)
        if bk is None:
            raise NotApplicableError("rff_key_aware needs an RFF key")
        G = random_weights(model)
        return float(-np.mean(np.cos(2 * np.pi * (G @ bk))))


@register
class CoordinateNormality(_WeightDetector):
    """Largest Kolmogorov-Smirnov distance of one coordinate's marginal from N(0, 1)."""

    name = "coordinate_normality"

    def score(self, model: Any, evidence: Evidence) -> float:
        self.check(model, evidence)
        return ks_to_normal(random_weights(model))


@register
class ProjectedNormality(_WeightDetector):
    """Largest KS distance from N(0,1) of projections on 128 random unit directions, half of
    them dense, half k-sparse with k = 8 (a sparse secret would show along its support)."""

    name = "projected_normality"
    n_directions = 128

    def score(self, model: Any, evidence: Evidence) -> float:
        self.check(model, evidence)
        W = random_weights(model)
        rng = np.random.default_rng(evidence.seed + 17)
        d = W.shape[1]
        V = rng.standard_normal((d, self.n_directions))
        for j in range(self.n_directions // 2):
            keep = rng.choice(d, size=min(8, d), replace=False)
            mask = np.zeros(d, bool)
            mask[keep] = True
            V[~mask, j] = 0
        V /= np.linalg.norm(V, axis=0)
        return ks_to_normal(W @ V)


@register
class SpectralBBP(_WeightDetector):
    """Top eigenvalue of the weights' sample second-moment matrix ``W^T W / m`` over the
    Marchenko-Pastur edge ``(1 + sqrt(d/m))^2`` (BBP, Baik-Ben Arous-Peche 2005: a spike
    theta > sqrt(d/m) leaves the bulk). One statistic for RFF ``frequencies_`` and ReLU
    ``weights_`` (it was registered twice, as ``covariance_spectrum`` and ``spectral_bbp``)."""

    name = "spectral_bbp"
    statistic = "top_eigenvalue_over_mp_edge"

    def __init__(self, k: int | None = None) -> None:
        self.k = k  # accepted for the sparse-PCA detectors' constructor; unused

    def score(self, model: Any, evidence: Evidence) -> float:
        self.check(model, evidence)
        W = random_weights(model)
        m, d = W.shape
        small = (W @ W.T) if m <= d else (W.T @ W)  # same nonzero spectrum, smaller matrix
        top = float(np.linalg.eigvalsh(small / m)[-1])
        return top / (1 + np.sqrt(d / m)) ** 2


@register
class PeriodicityScan(_WeightDetector):
    """Fourier periodicity along random sparse directions: for 256 random k-sparse unit
    directions v (k in {1, 2, 4, 8}) and frequencies t in [0.25, 6], the largest deviation of
    the empirical characteristic function ``|mean_i exp(2 pi i t <w_i, v>)|`` from the
    Gaussian one ``exp(-2 pi^2 t^2)``, in units of its null standard deviation ``1/sqrt(m)``.
    A pancake comb along v would show as a peak at ``t`` = its spacing's inverse."""

    name = "periodicity_scan"
    n_directions = 256

    def score(self, model: Any, evidence: Evidence) -> float:
        self.check(model, evidence)
        W = random_weights(model)
        m, d = W.shape
        rng = np.random.default_rng(evidence.seed + 29)
        V = np.zeros((d, self.n_directions))
        for j in range(self.n_directions):
            k = min(d, (1, 2, 4, 8)[j % 4])
            V[rng.choice(d, size=k, replace=False), j] = rng.standard_normal(k)
        V /= np.linalg.norm(V, axis=0)
        P = W @ V
        ts = np.linspace(0.25, 6.0, 24)
        best = 0.0
        for t in ts:
            ecf = np.abs(np.exp(2j * np.pi * t * P).mean(axis=0))
            best = max(best, float(np.max(ecf - np.exp(-2 * np.pi**2 * t**2))))
        return best * np.sqrt(m)


@register
class WeightMoments(_WeightDetector):
    """Generic weight statistics: largest |excess kurtosis| or |skewness| over coordinates,
    scaled by their null standard errors ``sqrt(24/m)`` and ``sqrt(6/m)``."""

    name = "weight_moments"

    def score(self, model: Any, evidence: Evidence) -> float:
        self.check(model, evidence)
        W = random_weights(model)
        m = len(W)
        k = np.abs(stats.kurtosis(W, axis=0)) / np.sqrt(24 / m)
        s = np.abs(stats.skew(W, axis=0)) / np.sqrt(6 / m)
        return float(max(k.max(), s.max()))
