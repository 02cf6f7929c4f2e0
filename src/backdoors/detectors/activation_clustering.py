"""Activation Clustering (Chen et al., arXiv 1811.03728, 2018, §4).

For each label, a hidden layer's activations of the training inputs with that label are reduced
to a few dimensions and split by 2-means. A poisoned class splits into a large clean cluster and
a small, well separated poisoned one. The paper's analyses: relative size of the smaller cluster
(poisoned if <= ~35%) and the silhouette score. Model score: max over labels of silhouette x
[smaller cluster <= 35%] (+ silhouette / 10 otherwise, to keep the score continuous).

The score is the paper's configuration: last hidden layer, ICA to 10 dimensions (PCA whitening
then FastICA), 2,000 training rows. A detector is judged at its best published configuration
(the Trojan Detection Challenge scores the maximum over detectors), so every call also scores
the other configurations of :data:`CONFIGS` on the same activations, reported as variants
(``findings["variants"]``, rows ``activation_clustering_<config>`` in the tables): the layer
(last hidden or logits), the reduction (ICA as the paper, PCA as in IBM ART's
``ActivationDefence``), 10 or 3 dimensions (the paper's visualisations use 3), and 2,000 rows or
every training row the auditor holds. ICA on an unpoisoned class tends to split it into
spurious, well separated clusters, which PCA does not.
"""

from __future__ import annotations

import contextlib
import itertools
import warnings
from dataclasses import replace
from typing import Any

import numpy as np

from backdoors.detectors import Control, Detector, Evidence, Report, register
from backdoors.detectors._access import features, sequential_module, subsample, torch_module

LAYERS = ("penultimate", "logits")
REDUCTIONS = ("ica", "pca")
DIMS = (10, 3)
SAMPLES = (2000, None)  # None: every training row given
#: Every configuration: (layer, reduction, dimensions, rows); the first is the paper's. On the
#: 10-dimensional logits only the 10-dimensional reductions on every row (3 would discard the
#: classes' own structure; the row count changes nothing else there).
CONFIGS = [
    *itertools.product(LAYERS[:1], REDUCTIONS, DIMS, SAMPLES),
    *itertools.product(LAYERS[1:], REDUCTIONS, DIMS[:1], SAMPLES[1:]),
]


def config_name(layer: str, reduction: str, dims: int, rows: int | None) -> str:
    return f"{layer}_{reduction}{dims}_n{'all' if rows is None else rows}"


def reduce(R: np.ndarray, n_components: int = 10, method: str = "ica", seed: int = 0) -> np.ndarray:
    """``R`` (dead units dropped) projected to ``n_components`` by PCA, then FastICA if
    ``method == "ica"`` (falls back to the PCA projection when ICA fails)."""
    from sklearn.decomposition import PCA, FastICA

    R = R[:, R.std(axis=0) > 1e-9]  # dead ReLU units carry nothing and break whitening
    k = min(n_components, R.shape[1], len(R) - 1)
    if k < 2:
        return np.zeros((len(R), 0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Z = PCA(k, random_state=seed).fit_transform(R)
        if method == "ica":
            with contextlib.suppress(ValueError, np.linalg.LinAlgError):
                Z = FastICA(
                    k, random_state=seed, max_iter=200, whiten="unit-variance"
                ).fit_transform(Z)
    return Z


def cluster_class(
    R: np.ndarray, n_components: int = 10, seed: int = 0, method: str = "ica"
) -> tuple[float, float]:
    """(silhouette, relative size of the smaller cluster) of 2-means on reduced ``R``."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    Z = reduce(R, n_components, method, seed)
    if Z.shape[1] < 2:
        return 0.0, 0.5
    labels = KMeans(2, n_init=3, random_state=seed).fit_predict(Z)
    if len(np.unique(labels)) < 2:
        return 0.0, 0.5
    size = min(np.mean(labels == 0), np.mean(labels == 1))
    return float(silhouette_score(Z, labels)), float(size)


def layer_outputs(module: Any, X: np.ndarray) -> dict[str, np.ndarray]:
    """The last hidden layer's output and the logits (the last layer applied to it)."""
    import torch

    R = features(module, X)
    with torch.no_grad():
        logits = module[-1](torch.from_numpy(R.astype(np.float32))).numpy().astype(np.float64)
    return {"penultimate": R, "logits": logits}


@register
class ActivationClustering(Detector):
    name = "activation_clustering"
    needs = frozenset({"weights", "training_data"})
    no_control = (
        "the paper's configuration (ICA to 10 dimensions) splits clean classes about as well "
        "as the poisoned one on the small BadNets control (0.15 backdoored vs 0.21 honest; its "
        "PCA variants separate it); the control serves the other checks"
    )

    def __init__(self, n_inputs: int = 2000, max_size: float = 0.35, variants: bool = True):
        self.n_inputs, self.max_size, self.variants = n_inputs, max_size, variants

    def _score(self, R: np.ndarray, y: np.ndarray, dims: int, method: str, seed: int):
        out, best = {}, 0.0
        for c in np.unique(y):
            rc = R[y == c]
            if len(rc) < 20:
                continue
            sil, size = cluster_class(rc, dims, seed, method)
            out[int(c)] = {"silhouette": sil, "relative_size": size}
            best = max(best, sil if size <= self.max_size else sil / 10)
        return best, out

    def check_model(self, model: Any) -> None:
        sequential_module(model)

    def score(self, model: Any, evidence: Evidence) -> Report:
        module = torch_module(model)
        X_all, y_all = np.asarray(evidence.X_train), np.asarray(evidence.y_train)
        idx = subsample(len(X_all), self.n_inputs, evidence.seed)
        configs = CONFIGS if self.variants else CONFIGS[:1]
        need_all = any(rows is None for *_, rows in configs) and len(X_all) > len(idx)
        acts = layer_outputs(module, X_all if need_all else X_all[idx])
        pos = idx if need_all else np.arange(len(idx))
        scores, per_class = {}, {}
        for layer, method, dims, rows in configs:
            R, y = acts[layer], (y_all if need_all else y_all[idx])
            if rows is not None:
                R, y = R[pos], y[pos]
            s, pc = self._score(R, y, dims, method, evidence.seed)
            scores[config_name(layer, method, dims, rows)] = s
            per_class.setdefault(config_name(layer, method, dims, rows), pc)
        main = config_name(*CONFIGS[0])
        findings = {
            "per_class": per_class[main],
            "rows_all": int(len(X_all)),
            "variants": {k: v for k, v in scores.items() if k != main},
        }
        return Report(scores[main], findings)

    @classmethod
    def positive_control(cls) -> Control | None:
        from backdoors.detectors import _controls as controls

        return replace(controls.badnets_pair(), separates=False)
