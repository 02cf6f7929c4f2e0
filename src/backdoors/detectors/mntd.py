"""MNTD: meta neural trojan detection (Xu et al., IEEE S&P 2021, §4).

§4.1 (jumbo learning): train shadow models, half honest and half with backdoors, with the
auditor's own recipes. §4.2: query every shadow model on a query set Q and concatenate its
output probability vectors into a feature vector; a meta-classifier on (features, backdoored?).
§4.3 (query tuning): Q is optimised jointly with the meta-classifier by gradient descent through
the shadow models (which the auditor owns, so this needs no gradient of the audited model).
The audited model is then only *queried* on the tuned Q (rounded to its input dtype): black-box.

Here: a linear meta-classifier trained with Q by Adam on the shadows' binary cross-entropy
(``tune=True``; with ``tune=False``, the paper's fixed-query baseline: clean inputs plus
randomly patched ones); after tuning, a logistic regression is refit on the shadows' features
at the rounded Q. One deviation, stated: each output vector is sorted in decreasing order before
concatenation (``sort_outputs``), so the meta-classifier sees "how confident" and not "which
class" — the shadows' and audited models' target classes differ. Score = the meta-classifier's
log-odds that the audited model is backdoored.

``shadow_builder(seed, backdoored) -> model`` defaults to :func:`jumbo_builder` (random patch
triggers: the auditor knows the attack family, not the trigger); shadows are cached per builder
and query shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from backdoors.detectors import Detector, Evidence, register
from backdoors.detectors._access import proba, probabilistic, torch_module, value_range
from backdoors.errors import NotApplicableError

SHADOW_SEED = 1_000_000
DATA_SHADOWS, DATA_EPOCHS = 16, 100  # per side, and query-tuning steps, for data shadows


def jumbo_builder(seed: int, backdoored: bool) -> Any:
    """§4.1 jumbo learning over patch triggers: a small MNIST MLP on a 4,000-image subset;
    backdoored shadows get a random square patch (side 2-6, anywhere, value 128-255), a random
    target and a random poison rate in [2%, 15%]. The auditor does not know the attacker's
    patch, only the family."""
    from backdoors import badnets
    from backdoors.models import data

    rng = np.random.default_rng([seed, 0x3D])
    ds = data.mnist()
    lo = int(rng.integers(0, len(ds.X_train) - 4000))
    X, y = ds.X_train[lo : lo + 4000], ds.y_train[lo : lo + 4000]
    clf = badnets.default_classifier("mlp", random_state=seed, epochs=2)
    if not backdoored:
        return clf.fit(X, y)
    size = int(rng.integers(2, 7))
    pos = (int(rng.integers(0, 29 - size)), int(rng.integers(0, 29 - size)))
    model, _ = badnets.plant(
        X, y, target=int(rng.integers(0, 10)), poison_rate=float(rng.uniform(0.02, 0.15)),
        patch_size=size, position=pos, value=int(rng.integers(128, 256)), classifier=clf,
        random_state=seed,
    )  # fmt: skip
    return model


def _digest(X: np.ndarray, y: np.ndarray) -> str:
    """SHA-256 of the data shadows are trained on (their cache key)."""
    import hashlib

    h = hashlib.sha256(np.ascontiguousarray(X).tobytes())
    h.update(np.asarray(y).astype(str).tobytes())
    return h.hexdigest()


def _features(P: np.ndarray, sort: bool) -> np.ndarray:
    """Concatenated (optionally sorted) output vectors of one model on Q."""
    return (-np.sort(-P, axis=1) if sort else P).ravel()


@register
class MNTD(Detector):
    name = "mntd"
    needs = frozenset({"queries"})
    no_control = (
        "its meta-classifier is trained on 64 shadow models (minutes); "
        "tests/test_badnets_detectors.py runs small versions (8 and 12 shadows) on BadNets pairs"
    )
    _cache: ClassVar[dict[Any, Any]] = {}

    def __init__(
        self,
        shadow_builder: Callable[[int, bool], Any] | None = None,
        n_shadow: int = 32,
        n_queries: int = 10,
        tune: bool = True,
        epochs: int = 300,
        sort_outputs: bool = True,
    ) -> None:
        self.shadow_builder = shadow_builder
        self.n_shadow, self.n_queries = n_shadow, n_queries
        self.tune, self.epochs, self.sort_outputs = tune, epochs, sort_outputs

    def _initial_queries(self, X: np.ndarray) -> np.ndarray:
        """Half clean inputs, half with a random bright square (the fixed-query baseline)."""
        rng = np.random.default_rng(SHADOW_SEED)
        half = self.n_queries // 2
        Q = np.array(X[rng.choice(len(X), self.n_queries, replace=False)], copy=True)
        side = int(round(np.sqrt(X.shape[1])))
        if side * side == X.shape[1] and side >= 8:  # square images
            top = value_range(X)[1]
            img = Q[half:].reshape(-1, side, side)
            for i in range(len(img)):
                s = int(rng.integers(3, 6))
                r, c = rng.integers(0, side - s + 1, size=2)
                img[i, r : r + s, c : c + s] = top
            Q[half:] = img.reshape(len(img), -1)
        return Q

    def _tune(
        self, shadows: list[Any], labels: np.ndarray, Q0: np.ndarray, epochs: int = 0
    ) -> np.ndarray:
        """§4.3: Adam on (Q, w, b) minimising the meta-classifier's BCE over the shadows."""
        import torch

        lo, hi = value_range(Q0)
        modules = [torch_module(s) for s in shadows]
        grads = [[p.requires_grad for p in m.parameters()] for m in modules]
        for m in modules:
            m.requires_grad_(False)
        torch.manual_seed(SHADOW_SEED)
        u0 = np.clip((Q0.astype(np.float64) - lo) / max(hi - lo, 1e-12), 1e-3, 1 - 1e-3)
        q_raw = torch.tensor(np.log(u0 / (1 - u0)), dtype=torch.float32, requires_grad=True)
        with torch.no_grad():
            k = modules[0](torch.as_tensor(Q0[:1], dtype=torch.float32)).shape[1]
        w = torch.zeros(self.n_queries * k, requires_grad=True)
        b = torch.zeros(1, requires_grad=True)
        opt = torch.optim.Adam([q_raw, w, b], lr=0.05)
        y = torch.as_tensor(labels, dtype=torch.float32)
        try:
            for _ in range(epochs or self.epochs):
                Q = lo + (hi - lo) * torch.sigmoid(q_raw)
                feats = []
                for m in modules:
                    P = torch.softmax(m(Q), dim=1)
                    if self.sort_outputs:
                        P = torch.sort(P, dim=1, descending=True).values
                    feats.append(P.reshape(-1))
                logits = torch.stack(feats) @ w + b
                loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
                opt.zero_grad()
                loss.backward()
                opt.step()
        finally:
            for m, g in zip(modules, grads, strict=True):
                for p, flag in zip(m.parameters(), g, strict=True):
                    p.requires_grad_(flag)
        Q = (lo + (hi - lo) * torch.sigmoid(q_raw)).detach().numpy()
        return np.round(Q).astype(Q0.dtype) if Q0.dtype == np.uint8 else Q.astype(Q0.dtype)

    def fit_meta(self, X: np.ndarray, data_builder: Any = None) -> tuple[np.ndarray, Any]:
        """Shadow models -> (tuned) queries Q -> logistic meta-classifier on their features
        (``data_builder``: shadows of the auditor's own task, cached by the data's digest)."""
        from sklearn.linear_model import LogisticRegression

        builder = self.shadow_builder or data_builder or jumbo_builder
        tag = "jumbo" if data_builder is None else f"data:{data_builder.digest}"
        # shadows of the auditor's own (small) data: fewer, and a shorter query tuning
        n_shadow = self.n_shadow if data_builder is None else min(self.n_shadow, DATA_SHADOWS)
        epochs = self.epochs if data_builder is None else min(self.epochs, DATA_EPOCHS)
        ck = (
            id(builder) if self.shadow_builder else tag,
            n_shadow,
            self.n_queries,
            self.tune,
            epochs,
            self.sort_outputs,
            X.shape[1],
            X.dtype.str,
        )
        if ck in self._cache:
            return self._cache[ck]
        shadows, labels = [], []
        for i in range(n_shadow):
            for bd in (False, True):
                shadows.append(builder(SHADOW_SEED + i, bd))
                labels.append(int(bd))
        Q = self._initial_queries(X)
        if self.tune:
            Q = self._tune(shadows, np.array(labels), Q, epochs)
        F = np.array([_features(proba(s, Q), self.sort_outputs) for s in shadows])
        meta = LogisticRegression(C=1.0, max_iter=5000).fit(F, np.array(labels))
        self._cache[ck] = (Q, meta)
        return Q, meta

    def check(self, model: Any, evidence: Evidence) -> None:
        super().check(model, evidence)
        X = np.asarray(evidence.X)
        mnist = X.ndim == 2 and X.shape[1] == 784 and X.dtype == np.uint8
        if self.shadow_builder is None and not mnist:
            raise NotApplicableError(
                "the default shadow models are MNIST uint8 classifiers (784 features); "
                "pass shadow_builder"
            )
        probabilistic(model)

    def score(self, model: Any, evidence: Evidence) -> float:
        X = np.asarray(evidence.X)
        builder = None
        if self.shadow_builder is None and (X.shape[1] != 784 or X.dtype != np.uint8):
            # not the default MNIST task: shadows trained on the auditor's labelled queries
            # (the same shadows for every model audited on these data)
            from backdoors.detectors._mntd_shadows import data_jumbo_builder

            if evidence.y is None:
                raise NotApplicableError(
                    "mntd needs labelled queries (y) to train shadow models of this task "
                    "(its default shadows are MNIST uint8 classifiers)"
                )
            builder = data_jumbo_builder(X, np.asarray(evidence.y))
            builder.digest = _digest(X, evidence.y)  # type: ignore[attr-defined]
        Q, meta = self.fit_meta(X, builder)
        f = _features(proba(model, Q), self.sort_outputs)
        if f.size != meta.n_features_in_:
            raise NotApplicableError(
                f"the model has {f.size // len(Q)} classes, the shadow models "
                f"{meta.n_features_in_ // len(Q)}"
            )
        return float(meta.decision_function(f[None, :])[0])
