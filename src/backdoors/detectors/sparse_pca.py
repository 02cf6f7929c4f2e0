"""White-box sparse-PCA detectors for random-feature weights (paper.md §4.3, §9.4).

Each treats the hidden-layer weight rows ``g_1..g_m`` (``model.weights_``, shape (m, d)) as m
samples and tests ``N(0, I)`` against a spiked covariance ``N(0, I + theta nu nu^T)``:

* ``relu_key_aware`` (positive control): ``(1/m) ||W nu||^2``, about 1 honest, 1 + theta backdoored.
* ``spectral_bbp`` (in :mod:`backdoors.detectors.weights`, shared with RFF): top eigenvalue of
  ``W^T W / m`` over the Marchenko-Pastur edge ``(1 + sqrt(d/m))^2``. Detects once theta
  exceeds the BBP threshold ``sqrt(d/m)`` (Baik-Ben Arous-Peche 2005).
* ``diagonal_thresholding``: sum of the k largest standardised diagonal entries of the sample
  covariance (Johnstone-Lu 2009; Amini-Wainwright 2009; the k-sparse statistic of
  Berthet-Rigollet 2013). The auditor knows the learner's hyper-parameter k (Kerckhoffs).
* ``covariance_thresholding``: top eigenvalue of the off-diagonal sample covariance soft-
  thresholded at ``t / sqrt(m)`` with ``t = sqrt(log d)`` (Deshpande-Montanari 2014).
* ``sphericity``: John's test of ``Sigma = sigma^2 I`` (Ledoit-Wolf 2002 for ``d > m``), the
  trace-based statistic ``d tr(S^2) / tr(S)^2``: blind to the overall scale, so trace matching
  does not hide the spike from it.
* ``sdp_sparse_pca`` (:mod:`backdoors.detectors.sdp_sparse_pca`): the semidefinite relaxation.
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
    requires = "a random ReLU network's first-layer weight matrix (weights_)"
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


def soft_threshold_top_eigenvalues(W: np.ndarray, ts: tuple[float, ...]) -> list[float]:
    """For each ``t``: ``lambda_max`` of the off-diagonal sample covariance ``S = W^T W / m``
    soft-thresholded at ``t / sqrt(m)`` entrywise (Deshpande-Montanari 2014, covariance
    thresholding). ``S`` and its entries above the smallest threshold are formed once."""
    W = np.asarray(W, dtype=np.float32)
    m, d = W.shape
    S = (W.T @ W) / np.float32(m)
    np.fill_diagonal(S, 0.0)
    rows, cols = np.nonzero(np.abs(S) > np.float32(min(ts) / np.sqrt(m)))
    vals = S[rows, cols].astype(np.float64)
    absv = np.abs(vals)
    v0 = np.full(d, 1.0 / np.sqrt(d))  # fixed start: deterministic scores
    out = []
    for t in ts:
        cut = t / np.sqrt(m)
        keep = absv > cut
        if not keep.any():
            out.append(0.0)
            continue
        data = (absv[keep] - cut) * np.sign(vals[keep])
        A = sparse.csr_matrix((data, (rows[keep], cols[keep])), shape=(d, d))
        if d < 3:
            out.append(float(np.linalg.eigvalsh(A.toarray())[-1]))
            continue
        top = eigsh(A, k=1, which="LA", return_eigenvectors=False, tol=1e-4, v0=v0)[0]
        out.append(float(top))
    return out


@register
class CovarianceThresholding(_WeightDetector):
    """Top eigenvalue of ``eta_t(S - I)`` off the diagonal, ``eta`` soft thresholding at
    ``t / sqrt(m)`` (Deshpande-Montanari 2014). Default ``t = sqrt(log d)``; the paper's
    analysis leaves the constant to tuning: ``grid`` adds one variant score per ``t``
    (``details_["variants"]["t=..."]``, the same ``S``), which the ``relu`` experiment tunes
    on a held-out half of its population."""

    name = "covariance_thresholding"

    def __init__(
        self, k: int | None = None, t: float | None = None, grid: tuple[float, ...] = ()
    ) -> None:
        super().__init__(k)
        self.t, self.grid = t, grid

    def score(self, model: Any, evidence: Evidence) -> float:
        self.check(model, evidence)
        W = _weights(model)
        t = self.t if self.t is not None else np.sqrt(np.log(W.shape[1]))
        vals = soft_threshold_top_eigenvalues(W, (float(t), *map(float, self.grid)))
        grid = zip(self.grid, vals[1:], strict=True)
        self.details_ = {"variants": {f"t={g:g}": v for g, v in grid}}
        return vals[0]


@register
class Sphericity(_WeightDetector):
    """John's sphericity test (John 1971) for ``Sigma = sigma^2 I``, in the high-dimensional
    form of Ledoit-Wolf (2002): ``U = d tr(S^2) / tr(S)^2 - 1`` with ``S = W^T W / m``; under
    the null ``m U - d -> N(1, 4)`` as ``d/m -> c``, so the score is ``(m U - d - 1) / 2``.
    Scale-free, so trace matching does not hide the spike: ``E[U]`` rises by about
    ``theta^2 / d``, i.e. ``theta^2 m / (2 d)`` null standard deviations. Computed from the
    ``m x m`` Gram matrix."""

    name = "sphericity"

    def score(self, model: Any, evidence: Evidence) -> float:
        self.check(model, evidence)
        W = _weights(model)
        m, d = W.shape
        G = W @ W.T
        tr, tr2 = np.trace(G) / m, float(np.sum(G * G)) / m**2
        U = d * tr2 / tr**2 - 1.0
        return float((m * U - d - 1.0) / 2.0)


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
    "sphericity",
    "truncated_power",
    "weight_norm",
)
