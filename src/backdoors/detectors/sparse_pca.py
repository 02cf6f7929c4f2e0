"""White-box sparse-PCA detectors for random-feature weights (paper.md §4.3, §9.4).

Each treats the hidden-layer weight rows ``g_1..g_m`` (``model.weights_``, shape (m, d)) as m
samples and tests ``N(0, I)`` against a spiked covariance ``N(0, I + theta nu nu^T)``:

* ``relu_key_aware`` (positive control): ``(1/m) ||W nu||^2``, about 1 honest, 1 + theta backdoored.
* ``spectral_bbp``: top eigenvalue of ``W^T W / m`` over the Marchenko-Pastur edge
  ``(1 + sqrt(d/m))^2``. Detects once theta exceeds the BBP threshold ``sqrt(d/m)``
  (Baik-Ben Arous-Peche 2005).
* ``diagonal_thresholding``: sum of the k largest standardised diagonal entries of the sample
  covariance (Johnstone-Lu 2009; Amini-Wainwright 2009; the k-sparse statistic of
  Berthet-Rigollet 2013). The auditor knows the learner's hyper-parameter k (Kerckhoffs).
* ``covariance_thresholding``: top eigenvalue of the off-diagonal sample covariance soft-
  thresholded at ``t / sqrt(m)`` with ``t = sqrt(log d)`` (Deshpande-Montanari 2014).
* ``truncated_power``: k-sparse truncated power method (Yuan-Zhang 2013) started on the
  diagonal-thresholding support; score ``v^T S v`` of the k-sparse unit ``v`` it finds.
* ``weight_norm``: the Frobenius norm ``||W||_F^2 / (m d)`` (trace test); blind when the coins
  are trace-matched (the default), catches the raw spike at large ``theta sqrt(m / 2d)``.

All scores are continuous; higher = more suspicious. Models without ``weights_`` are not
applicable.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import eigsh

from backdoors.detectors import Detector, Evidence, register
from backdoors.errors import NotApplicableError


def _weights(model: Any) -> np.ndarray:
    W = getattr(model, "weights_", None)
    if W is None or np.ndim(W) != 2:
        raise NotApplicableError(f"{type(model).__name__} has no random weight matrix weights_")
    return np.asarray(W, dtype=np.float64)


class _WeightDetector(Detector):
    needs: ClassVar[frozenset[str]] = frozenset({"weights"})

    def __init__(self, k: int | None = None) -> None:
        self.k = k  # the learner's sparsity, if the auditor knows it

    def applies_to(self, model: Any) -> bool:
        W = getattr(model, "weights_", None)
        return W is not None and np.ndim(W) == 2

    def _k(self, d: int, m: int) -> int:
        return int(self.k) if self.k else max(1, int(np.sqrt(m)))


@register
class KeyAwareReLU(_WeightDetector):
    """Positive control: the variance of the weights along the secret direction ``nu``."""

    name = "relu_key_aware"
    needs = frozenset({"weights", "key"})

    def applies_to(self, model: Any) -> bool:
        return super().applies_to(model)

    def score(self, model: Any, evidence: Evidence) -> float:
        self.check(model, evidence)
        W = _weights(model)
        nu = getattr(evidence.key, "nu", None)
        if nu is None or len(nu) != W.shape[1]:
            raise NotApplicableError("relu_key_aware needs a relu key of the model's dimension")
        return float(np.mean((W @ nu) ** 2))


@register
class SpectralBBP(_WeightDetector):
    """``lambda_max(W^T W / m) / (1 + sqrt(d/m))^2`` (BBP / Marchenko-Pastur edge)."""

    name = "spectral_bbp"

    def score(self, model: Any, evidence: Evidence) -> float:
        self.check(model, evidence)
        W = _weights(model)
        m, d = W.shape
        small = W @ W.T if m <= d else W.T @ W  # same non-zero spectrum
        top = float(np.linalg.eigvalsh(small / m)[-1])
        return top / (1 + np.sqrt(d / m)) ** 2


@register
class DiagonalThresholding(_WeightDetector):
    """Sum of the k largest z-scores ``(S_jj - 1) sqrt(m / 2)`` of the sample covariance."""

    name = "diagonal_thresholding"

    def score(self, model: Any, evidence: Evidence) -> float:
        self.check(model, evidence)
        W = _weights(model)
        m, d = W.shape
        z = (np.mean(W * W, axis=0) - 1.0) * np.sqrt(m / 2.0)
        k = min(self._k(d, m), d)
        return float(np.sort(z)[-k:].sum() / np.sqrt(k))


@register
class CovarianceThresholding(_WeightDetector):
    """Top eigenvalue of ``eta_t(S - I)`` off the diagonal, ``eta`` soft thresholding at
    ``sqrt(log d) / sqrt(m)`` (Deshpande-Montanari 2014)."""

    name = "covariance_thresholding"

    def score(self, model: Any, evidence: Evidence) -> float:
        self.check(model, evidence)
        W = _weights(model).astype(np.float32)
        m, d = W.shape
        S = (W.T @ W) / m
        np.fill_diagonal(S, 0.0)
        t = np.float32(np.sqrt(np.log(d) / m))
        np.abs(S, out=S)
        keep = t < S
        rows, cols = np.nonzero(keep)
        if len(rows) == 0:
            return 0.0
        signs = np.sign((W[:, rows] * W[:, cols]).sum(axis=0))
        vals = (S[rows, cols] - t) * signs
        A = sparse.csr_matrix((vals.astype(np.float64), (rows, cols)), shape=(d, d))
        if d < 3:
            return float(np.linalg.eigvalsh(A.toarray())[-1])
        v0 = np.full(d, 1.0 / np.sqrt(d))  # fixed start: deterministic scores
        return float(eigsh(A, k=1, which="LA", return_eigenvectors=False, tol=1e-6, v0=v0)[0])


@register
class TruncatedPower(_WeightDetector):
    """Truncated power method for k-sparse PCA (Yuan-Zhang 2013): ``v <- T_k(S v)``."""

    name = "truncated_power"

    def score(self, model: Any, evidence: Evidence) -> float:
        self.check(model, evidence)
        W = _weights(model)
        m, d = W.shape
        k = min(self._k(d, m), d)
        diag = np.mean(W * W, axis=0)
        v = np.zeros(d)
        v[np.argsort(diag)[-k:]] = 1.0 / np.sqrt(k)
        for _ in range(30):
            u = W.T @ (W @ v) / m
            keep = np.argpartition(np.abs(u), d - k)[d - k :]
            nv = np.zeros(d)
            nv[keep] = u[keep]
            nv /= np.linalg.norm(nv)
            if np.allclose(nv, v):
                break
            v = nv
        return float(np.mean((W @ v) ** 2))


@register
class WeightNorm(_WeightDetector):
    """Trace test: ``||W||_F^2 / (m d)`` (1 in expectation for honest and trace-matched)."""

    name = "weight_norm"

    def score(self, model: Any, evidence: Evidence) -> float:
        self.check(model, evidence)
        W = _weights(model)
        return float(np.mean(W * W))


KEY_OBLIVIOUS = (
    "spectral_bbp",
    "diagonal_thresholding",
    "covariance_thresholding",
    "truncated_power",
    "weight_norm",
)
