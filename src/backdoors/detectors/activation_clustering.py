"""Activation Clustering (Chen et al., arXiv 1811.03728, 2018, §4).

For each label, the last hidden layer's activations of the training inputs with that label are
reduced to 10 dimensions (the paper uses ICA; here PCA whitening followed by FastICA) and split by
2-means. A poisoned class splits into a large clean cluster and a small, well separated poisoned
one. The paper's analyses: relative size of the smaller cluster (poisoned if <= ~35%) and the
silhouette score. Model score: max over labels of silhouette x [smaller cluster <= 35%]
(+ silhouette / 10 otherwise, to keep the score continuous).
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

import numpy as np

from backdoors.detectors import Detector, Evidence, register
from backdoors.detectors._access import features, subsample, torch_module


def cluster_class(R: np.ndarray, n_components: int = 10, seed: int = 0) -> tuple[float, float]:
    """(silhouette, relative size of the smaller cluster) of 2-means on ICA-reduced ``R``."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA, FastICA
    from sklearn.metrics import silhouette_score

    R = R[:, R.std(axis=0) > 1e-9]  # dead ReLU units carry nothing and break whitening
    k = min(n_components, R.shape[1], len(R) - 1)
    if k < 2:
        return 0.0, 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Z = PCA(k, random_state=seed).fit_transform(R)
        with contextlib.suppress(ValueError, np.linalg.LinAlgError):  # else: the PCA projection
            Z = FastICA(k, random_state=seed, max_iter=200, whiten="unit-variance").fit_transform(Z)
    labels = KMeans(2, n_init=3, random_state=seed).fit_predict(Z)
    if len(np.unique(labels)) < 2:
        return 0.0, 0.5
    size = min(np.mean(labels == 0), np.mean(labels == 1))
    return float(silhouette_score(Z, labels)), float(size)


@register
class ActivationClustering(Detector):
    name = "activation_clustering"
    needs = frozenset({"weights", "training_data"})

    def __init__(self, n_inputs: int = 2000, max_size: float = 0.35) -> None:
        self.n_inputs, self.max_size = n_inputs, max_size

    def score(self, model: Any, evidence: Evidence) -> float:
        module = torch_module(model)
        idx = subsample(len(evidence.X_train), self.n_inputs, evidence.seed)
        X, y = np.asarray(evidence.X_train)[idx], np.asarray(evidence.y_train)[idx]
        R = features(module, X)
        out, best = {}, 0.0
        for c in np.unique(y):
            rc = R[y == c]
            if len(rc) < 20:
                continue
            sil, size = cluster_class(rc, seed=evidence.seed)
            out[int(c)] = {"silhouette": sil, "relative_size": size}
            best = max(best, sil if size <= self.max_size else sil / 10)
        self.details_ = {"per_class": out}
        return best
