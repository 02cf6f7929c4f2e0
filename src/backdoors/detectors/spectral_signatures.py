"""Spectral Signatures (Tran, Li, Madry, NeurIPS 2018, Algorithm 1).

For every label y, take the learned representations R(x_i) of the training inputs labelled y,
centre them (R_i - R_hat), compute the top right singular vector v of the centred matrix and the
outlier score tau_i = ((R_i - R_hat) . v)^2. Poisoned inputs concentrate in the top scores (the
paper removes the top 1.5 eps fraction): the poisoned sub-population adds a strong direction to
the class covariance. Model score here: the largest, over labels, of sigma_1^2 / sigma_2^2 of the
centred class representations (how much the top direction, the one tau is measured along,
dominates); :func:`outlier_scores` gives the per-input tau.
Representations are the penultimate layer (:func:`backdoors.detectors._access.features`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backdoors.detectors import Detector, Evidence, register
from backdoors.detectors._access import features, subsample, torch_module


def outlier_scores(R: np.ndarray) -> np.ndarray:
    """tau_i = ((R_i - mean R) . v)^2 with v the top right singular vector (Algorithm 1)."""
    C = R - R.mean(axis=0)
    _, _, vt = np.linalg.svd(C, full_matrices=False)
    return (C @ vt[0]) ** 2


@register
class SpectralSignatures(Detector):
    name = "spectral_signatures"
    needs = frozenset({"weights", "training_data"})

    def __init__(self, n_inputs: int = 3000, top: float = 0.05) -> None:
        self.n_inputs, self.top = n_inputs, top

    def score(self, model: Any, evidence: Evidence) -> float:
        module = torch_module(model)
        idx = subsample(len(evidence.X_train), self.n_inputs, evidence.seed)
        X, y = np.asarray(evidence.X_train)[idx], np.asarray(evidence.y_train)[idx]
        R = features(module, X)
        per_class = {}
        for c in np.unique(y):
            rc = R[y == c]
            if len(rc) < 20:
                continue
            C = rc - rc.mean(axis=0)
            sv = np.linalg.svd(C, compute_uv=False)
            per_class[int(c)] = float(sv[0] ** 2 / max(sv[1] ** 2, 1e-12))
        self.details_ = {"per_class": per_class}
        return max(per_class.values())
