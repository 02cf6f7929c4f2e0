"""MNTD-style meta neural trojan detection (Xu et al., IEEE S&P 2021, §4).

§4.1 (jumbo learning): train shadow models, half honest and half with backdoors, with the
auditor's own recipes. §4.2: query every shadow model on a query set Q and concatenate its
output probability vectors into a feature vector; train a binary meta-classifier on
(features, backdoored?). MNTD tunes Q jointly with the meta-classifier by gradient descent
("query tuning"); this implementation uses the paper's fixed-query baseline (Q = clean inputs
plus randomly patched ones, fixed in advance) and a logistic-regression meta-classifier, which
keeps it black-box and needs no gradients of the audited model. Score = the meta-classifier's
log-odds that the audited model is backdoored.

The constructor takes ``shadow_builder(seed, backdoored) -> model`` (default: the registered
``badnets`` attack in quick mode) and ``n_shadow`` per side; shadow models are cached per
builder so a population is scored with one set of shadows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from backdoors.detectors import Detector, Evidence, register
from backdoors.detectors._access import proba
from backdoors.errors import NotApplicableError

SHADOW_SEED = 1_000_000


def _default_builder(seed: int, backdoored: bool) -> Any:
    from backdoors.attacks import ATTACKS

    return ATTACKS.get("badnets")().build(seed, backdoored, quick=True).model


@register
class MNTD(Detector):
    name = "mntd"
    needs = frozenset({"queries"})
    _cache: ClassVar[dict[Any, Any]] = {}

    def __init__(
        self,
        shadow_builder: Callable[[int, bool], Any] | None = None,
        n_shadow: int = 4,
        n_queries: int = 20,
    ) -> None:
        self.shadow_builder = shadow_builder
        self.n_shadow, self.n_queries = n_shadow, n_queries

    def _queries(self, X: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(SHADOW_SEED)
        half = self.n_queries // 2
        Q = np.array(X[rng.choice(len(X), self.n_queries, replace=False)], copy=True)
        side = int(round(np.sqrt(X.shape[1])))
        if side * side == X.shape[1]:
            top = 255 if X.dtype == np.uint8 else X.max()
            img = Q[half:].reshape(-1, side, side)
            for i in range(len(img)):
                s = int(rng.integers(3, 6))
                r, c = rng.integers(0, side - s + 1, size=2)
                img[i, r : r + s, c : c + s] = top
            Q[half:] = img.reshape(len(img), -1)
        return Q

    def _feature(self, model: Any, Q: np.ndarray) -> np.ndarray:
        return proba(model, Q).ravel()

    def fit_meta(self, X: np.ndarray) -> Any:
        """§4.1-4.2: shadow models -> features on fixed Q -> logistic meta-classifier."""
        from sklearn.linear_model import LogisticRegression

        builder = self.shadow_builder or _default_builder
        ck = (
            id(builder) if self.shadow_builder else "badnets",
            self.n_shadow,
            self.n_queries,
            X.shape[1],
            X.dtype.str,
        )
        if ck in self._cache:
            return self._cache[ck]
        Q = self._queries(np.asarray(X))
        F, y = [], []
        for i in range(self.n_shadow):
            for bd in (False, True):
                F.append(self._feature(builder(SHADOW_SEED + i, bd), Q))
                y.append(int(bd))
        meta = LogisticRegression(C=1.0, max_iter=2000).fit(np.array(F), np.array(y))
        self._cache[ck] = (Q, meta)
        return self._cache[ck]

    def score(self, model: Any, evidence: Evidence) -> float:
        X = np.asarray(evidence.X)
        if self.shadow_builder is None and (X.shape[1] != 784 or X.dtype != np.uint8):
            raise NotApplicableError(
                "mntd's default shadow models are MNIST uint8 classifiers; pass shadow_builder"
            )
        Q, meta = self.fit_meta(X)
        f = self._feature(model, Q)
        if f.size != meta.n_features_in_:
            raise NotApplicableError(
                f"mntd: the model has {f.size // len(Q)} classes, the shadow models "
                f"{meta.n_features_in_ // len(Q)}"
            )
        return float(meta.decision_function(f[None, :])[0])
