"""Spectral Signatures (Tran, Li, Madry, NeurIPS 2018, Algorithm 1).

For every label y, take the learned representations R(x_i) of the training inputs labelled y,
centre them (R_i - R_hat), compute the top right singular vector v of the centred matrix and the
outlier score tau_i = ((R_i - R_hat) . v)^2. Poisoned inputs concentrate in the top scores (the
paper removes the top 1.5 eps fraction): the poisoned sub-population adds a strong direction to
the class covariance. Model score here: the largest, over labels, of sigma_1^2 / sigma_2^2 of the
centred class representations (how much the top direction, the one tau is measured along,
dominates); :func:`outlier_scores` gives the per-input tau.
Representations are the penultimate layer (:func:`backdoors.detectors._access.features`).

Configurations (variants, ``findings["variants"]``, rows ``spectral_signatures_<config>``): the
layer (last hidden or logits), the number of top singular vectors tau is measured along (1 as
the paper; 3), and the removal fraction ``r`` (1.5 eps for eps = 5% and 10%: 0.075, 0.15) with
the per-class score ``mean(top r fraction of tau) / mean(tau)`` (how much of the outlier mass
the removed rows carry); plus the sigma ratio on every training row the auditor holds.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from backdoors.detectors import Control, Detector, Evidence, Report, register
from backdoors.detectors._access import sequential_module, subsample, torch_module
from backdoors.detectors.activation_clustering import LAYERS, layer_outputs

TOP_K = (1, 3)
REMOVAL = (0.075, 0.15)
CONFIGS = list(itertools.product(LAYERS, TOP_K, REMOVAL))


def outlier_scores(R: np.ndarray, top_k: int = 1) -> np.ndarray:
    """tau_i = ||V_k^T (R_i - mean R)||^2 with V_k the top-k right singular vectors
    (Algorithm 1 for k = 1)."""
    C = R - R.mean(axis=0)
    _, _, vt = np.linalg.svd(C, full_matrices=False)
    return ((C @ vt[:top_k].T) ** 2).sum(axis=1)


def sigma_ratio(R: np.ndarray) -> float:
    """``sigma_1^2 / sigma_2^2`` of the centred rows."""
    sv = np.linalg.svd(R - R.mean(axis=0), compute_uv=False)
    return float(sv[0] ** 2 / max(sv[1] ** 2, 1e-12))


def removal_concentration(R: np.ndarray, top_k: int, removal: float) -> float:
    """Mean tau of the ``removal`` fraction the paper removes over the mean tau."""
    tau = np.sort(outlier_scores(R, top_k))[::-1]
    n_top = max(1, int(round(removal * len(tau))))
    return float(tau[:n_top].mean() / max(tau.mean(), 1e-12))


def _per_class(R: np.ndarray, y: np.ndarray, stat) -> dict[int, float]:
    return {int(c): stat(R[y == c]) for c in np.unique(y) if np.sum(y == c) >= 20}


@register
class SpectralSignatures(Detector):
    name = "spectral_signatures"
    needs = frozenset({"weights", "training_data"})

    def __init__(self, n_inputs: int = 3000, top: float = 0.05, variants: bool = True) -> None:
        self.n_inputs, self.top, self.variants = n_inputs, top, variants

    def check_model(self, model: Any) -> None:
        sequential_module(model)

    def score(self, model: Any, evidence: Evidence) -> Report:
        module = torch_module(model)
        X_all, y_all = np.asarray(evidence.X_train), np.asarray(evidence.y_train)
        idx = subsample(len(X_all), self.n_inputs, evidence.seed)
        many = self.variants and len(X_all) > len(idx)
        acts = layer_outputs(module, X_all if many else X_all[idx])
        ys = y_all[idx]
        sub = {k: (v[idx] if many else v) for k, v in acts.items()}
        per_class = _per_class(sub["penultimate"], ys, sigma_ratio)
        variants: dict[str, float] = {}
        if self.variants:
            variants["logits_svratio"] = max(_per_class(sub["logits"], ys, sigma_ratio).values())
            if many:
                full = _per_class(acts["penultimate"], y_all, sigma_ratio)
                variants["penultimate_svratio_nall"] = max(full.values())
            for layer, k, r in CONFIGS:
                vals = _per_class(
                    sub[layer], ys, lambda R, k=k, r=r: removal_concentration(R, k, r)
                )
                variants[f"{layer}_top{k}_r{r:g}"] = max(vals.values())
        return Report(max(per_class.values()), {"per_class": per_class, "variants": variants})

    @classmethod
    def positive_control(cls) -> Control | None:
        from backdoors.detectors import _controls as controls

        return controls.badnets_pair()
