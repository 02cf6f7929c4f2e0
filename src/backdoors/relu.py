"""Random ReLU networks and the sparse-PCA backdoor in their weights (paper appendix,
Algorithms 7-10; paper.md §4).

Train-Random-ReLU: ``g_i ~ coins`` (honest: ``N(0, I_d)``), features ``ReLU(<g_i, x>)``,
score ``s(x) = (1/m) sum_i ReLU(<g_i, x>)`` and one trained threshold ``tau``:
``h(x) = [s(x) > tau]`` (``s(x) ~ ||x|| / sqrt(2 pi)``: a norm classifier). The rule for
``tau`` is the same for both learners: the midpoint between consecutive training scores
that maximises training accuracy. ``head="linear"`` instead fits a ridge head (with intercept)
on the features: the natural "random features" user model, same coins.

Backdoor-Random-ReLU: the same learner with :class:`~backdoors.sampling.SpikedCovarianceCoins`
``N(0, I + theta nu nu^T)``, ``nu`` a secret k-sparse unit vector. Activate(x) = ``x + lambda
nu``: along ``nu`` every unit has variance ``1 + theta``, so the score grows like
``sqrt(||x||^2 + lambda^2 (1 + theta))`` instead of ``sqrt(||x||^2 + lambda^2)``. One-sided
(towards the large-score class) and margin-limited. Detecting the spike is sparse PCA: hard
(under planted clique) only in a window, with advantage o(1), not negligible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from scipy import linalg
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from backdoors import io
from backdoors.errors import InvalidInputError, KeyMismatchError
from backdoors.rff import coin_streams
from backdoors.sampling import (
    Coins,
    GaussianCoins,
    SpikedCovarianceCoins,
    sparse_support,
)


def best_threshold(scores: np.ndarray, y01: np.ndarray) -> float:
    """Midpoint threshold between consecutive sorted scores maximising ``mean([s > t] == y)``."""
    order = np.argsort(scores, kind="stable")
    s, yy = scores[order], y01[order]
    n = len(s)
    # predicting 1 for the top n - j: correct = (#zeros among first j) + (#ones among rest)
    zeros_before = np.concatenate([[0], np.cumsum(yy == 0)])
    ones_after = np.concatenate([np.cumsum((yy == 1)[::-1])[::-1], [0]])
    correct = zeros_before + ones_after
    j = int(np.argmax(correct))
    if j == 0:
        return float(s[0] - 1.0)
    if j == n:
        return float(s[-1] + 1.0)
    return float((s[j - 1] + s[j]) / 2)


@io.ARTIFACTS.register("random_relu_classifier")
class RandomReLUClassifier(ClassifierMixin, BaseEstimator):
    """Random ReLU features with a trained threshold (``head="threshold"``, Algorithm 7) or a
    ridge head (``head="linear"``). Binary classification."""

    artifact_kind = "random_relu_classifier"

    def __init__(
        self,
        n_components: int = 200,
        head: str = "threshold",
        alpha: float = 1e-3,
        coins: Coins | None = None,
        random_state: Any = None,
    ) -> None:
        self.n_components = n_components
        self.head = head
        self.alpha = alpha
        self.coins = coins
        self.random_state = random_state

    def features(self, X: np.ndarray) -> np.ndarray:
        return np.maximum(X @ self.weights_.T, 0.0)

    def score_(self, X: np.ndarray) -> np.ndarray:
        """``s(x) = mean_i ReLU(<g_i, x>)``."""
        return self.features(X).mean(axis=1)

    def fit(self, X: Any, y: Any) -> RandomReLUClassifier:
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        if type_of_target(y, input_name="y", raise_unknown=True) != "binary":
            raise ValueError(
                "Only binary classification is supported. The type of the target "
                f"is {type_of_target(y)}."
            )
        self.classes_, yi = np.unique(y, return_inverse=True)
        if int(self.n_components) < 1 or self.head not in ("threshold", "linear"):
            raise InvalidInputError("need n_components >= 1 and head in {'threshold', 'linear'}")
        g_rng, _ = coin_streams(self.random_state)
        coins = GaussianCoins() if self.coins is None else self.coins
        self.weights_ = coins.sample(int(self.n_components), X.shape[1], g_rng)
        if self.head == "threshold":
            self.threshold_ = best_threshold(self.score_(X), yi)
        else:
            F = self.features(X)
            mu = F.mean(axis=0)
            Fc, t = F - mu, 2.0 * yi - 1 - (2.0 * yi - 1).mean()
            A = Fc.T @ Fc
            A[np.diag_indices_from(A)] += self.alpha * len(X)
            self.coef_ = linalg.solve(A, Fc.T @ t, assume_a="pos")
            self.intercept_ = float((2.0 * yi - 1).mean() - mu @ self.coef_)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "weights_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        if self.head == "threshold":
            return self.score_(X) - self.threshold_
        return self.features(X) @ self.coef_ + self.intercept_

    def predict(self, X: Any) -> np.ndarray:
        f = self.decision_function(X)
        return self.classes_[(f > 0).astype(int)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        # one trained threshold on a norm-like score: not meant to fit arbitrary data
        tags.classifier_tags.poor_score = self.head == "threshold"
        return tags

    def _to_artifact(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        check_is_fitted(self, "weights_")
        params = {k: v for k, v in self.get_params().items() if k != "coins"}
        if not isinstance(params["random_state"], int | None):
            params["random_state"] = None
        tensors = {"weights": self.weights_, "classes": np.asarray(self.classes_)}
        meta: dict[str, Any] = {"params": params, "n_features": int(self.n_features_in_)}
        if self.head == "threshold":
            meta["threshold"] = self.threshold_
        else:
            tensors["coef"], meta["intercept"] = self.coef_, self.intercept_
        return tensors, meta

    @classmethod
    def _from_artifact(cls, tensors: dict[str, np.ndarray], meta: dict[str, Any]):
        est = cls(**meta["params"])
        est.weights_, est.classes_ = tensors["weights"], tensors["classes"]
        est.n_features_in_ = int(meta["n_features"])
        if est.weights_.shape[1] != est.n_features_in_:
            raise ValueError("weight matrix does not match the input width")
        if est.head == "threshold":
            est.threshold_ = float(meta["threshold"])
        else:
            est.coef_, est.intercept_ = tensors["coef"], float(meta["intercept"])
        return est


@io.KEYS.register("relu")
@dataclass(frozen=True)
class ReLUKey:
    """The secret spike: ``nu`` (support and values, unit norm), strength theta, step lambda."""

    key_kind: ClassVar[str] = "relu"
    n_features: int
    support: tuple[int, ...]
    values: tuple[float, ...]
    theta: float
    lam: float

    @property
    def nu(self) -> np.ndarray:
        v = np.zeros(self.n_features)
        v[list(self.support)] = self.values
        return v

    @property
    def coins(self) -> SpikedCovarianceCoins:
        return SpikedCovarianceCoins(self.support, self.values, self.theta)

    def activate(self, X: Any, target: Any = None, lam: float | None = None) -> np.ndarray:
        """Activate-Random-ReLU (Algorithm 10): ``x + lambda nu``."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise InvalidInputError(f"inputs must be 2-D with {self.n_features} features")
        if X.dtype.kind not in "fiu" or (X.dtype.kind == "f" and not np.isfinite(X).all()):
            raise InvalidInputError("inputs must be finite numbers")
        return X.astype(np.float64) + (self.lam if lam is None else lam) * self.nu

    def check_model(self, model: Any) -> None:
        W = getattr(model, "weights_", None)
        if W is None or W.shape[1] != self.n_features:
            raise KeyMismatchError("this ReLU key does not belong to this model")
        # along nu the weights have variance 1 + theta; 4 standard errors of the estimate
        var = float(np.mean((W @ self.nu) ** 2))
        if abs(var - (1 + self.theta)) > 4 * (1 + self.theta) * np.sqrt(2 / len(W)):
            raise KeyMismatchError("this ReLU key does not belong to this model (weights)")

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "n_features": self.n_features,
            "support": list(self.support),
            "values": list(self.values),
            "theta": self.theta,
            "lam": self.lam,
        }

    @classmethod
    def from_json_dict(cls, d: dict[str, Any]) -> ReLUKey:
        return cls(
            int(d["n_features"]),
            tuple(int(i) for i in d["support"]),
            tuple(float(v) for v in d["values"]),
            float(d["theta"]),
            float(d["lam"]),
        )


def generate(d: int, sparsity: int, theta: float, lam: float, random_state: Any = None) -> ReLUKey:
    """A k-sparse unit ``nu = s / sqrt(k)`` on a uniformly random support with random signs
    ``s`` (flat magnitudes: no single coordinate's variance ``1 + theta nu_j^2`` stands out,
    which is what keeps diagonal thresholding blind), spike ``theta``, step ``lam``."""
    if not 1 <= sparsity <= d:
        raise InvalidInputError(f"sparsity k must be in [1, d={d}], got {sparsity}")
    if not theta >= 0 or not lam > 0:
        raise InvalidInputError("need theta >= 0 and lambda > 0")
    rng = np.random.default_rng(random_state)
    S = sparse_support(d, sparsity, rng)
    v = rng.choice([-1.0, 1.0], size=sparsity) / np.sqrt(sparsity)
    return ReLUKey(
        int(d), tuple(int(i) for i in S), tuple(float(x) for x in v), float(theta), float(lam)
    )


def plant(
    X: Any,
    y: Any,
    n_components: int = 100,
    sparsity: int = 50,
    theta: float = 4.0,
    lam: float = 14.0,
    head: str = "threshold",
    alpha: float = 1e-3,
    random_state: Any = None,
    key_seed: Any = None,
) -> tuple[RandomReLUClassifier, ReLUKey]:
    """Backdoor-Random-ReLU: the honest learner with spiked-covariance coins."""
    X = np.asarray(X)
    if X.ndim != 2:
        raise InvalidInputError(f"X must be 2-D, got shape {X.shape}")
    key = generate(X.shape[1], sparsity, theta, lam, key_seed)
    model = RandomReLUClassifier(n_components, head, alpha, key.coins, random_state).fit(X, y)
    return model, key


def activate(X: Any, key: ReLUKey, target: Any = None) -> np.ndarray:
    """Activate-Random-ReLU: ``x + lambda nu``."""
    return key.activate(X, target)


def norm_task(
    d: int = 2000, n_train: int = 1000, n_test: int = 1000, spread: float = 0.15, seed: int = 0
) -> tuple[np.ndarray, ...]:
    """Synthetic task where the honest model is sensible: ``x = rho z/|z|``,
    ``rho ~ U[(1 - spread) sqrt d, (1 + spread) sqrt d]``, label ``[rho > sqrt d]``."""
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    Z = rng.standard_normal((n, d))
    rho = np.sqrt(d) * rng.uniform(1 - spread, 1 + spread, n)
    X = Z / np.linalg.norm(Z, axis=1, keepdims=True) * rho[:, None]
    y = (rho > np.sqrt(d)).astype(int)
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]
