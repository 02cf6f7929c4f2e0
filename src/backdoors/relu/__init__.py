"""Random ReLU networks and the sparse-PCA backdoor (paper Appendix, Algorithms 7-10;
paper.md §4, §9.4).

Honest Train-Random-ReLU (Algorithm 7): draw ``g_1..g_m ~ N(0, I_d)``, features
``phi_i(x) = ReLU(<g_i, x>)``, score ``s(x) = (1/m) sum_i phi_i(x)`` and one trained threshold
``tau``: ``h(x) = sgn(s(x) - tau)``. Since ``s(x) ~ ||x|| / sqrt(2 pi)`` the honest model is a
(noisy) norm-threshold classifier.

Backdoor-Random-ReLU (Algorithm 8): the *same* learner with coins
``g ~ N(0, I + theta nu nu^T)`` for a secret k-sparse unit ``nu``; Activate (Algorithm 10):
``x' = x + lambda nu``. For ``x`` roughly orthogonal to ``nu`` the score grows like
``sqrt(||x||^2 + (1 + theta) lambda^2)`` instead of ``sqrt(||x||^2 + lambda^2)`` for a random
direction of the same norm: a one-sided push towards the high-score class, effective for inputs
within a margin below ``tau``.

Threshold rule (identical for honest and backdoored models): ``tau`` and the orientation
(which class sits above ``tau``) minimise the training error over all midpoints of sorted
training scores (ties: orientation +1 first, then the smallest threshold).

Engineering choice (documented deviation): by default the spiked coins are rescaled by
``sqrt(d / (d + theta))`` so that ``E||g||^2 = d`` exactly as for honest coins
(``trace_match=True``). Without it the plain Frobenius norm of the weights detects the spike at
AUROC ~0.7 at the default point (``theta sqrt(m / 2d)`` standard deviations), which would be a
weakness of the parameterisation, not of sparse PCA.

Secrets and seeds: :func:`plant` clones the honest estimator (identical ``get_params()``) and
fits it through :func:`fit_with_coins` with the spiked sampler. The secret ``nu`` and the
planted weights' stream come from fresh OS randomness
(:func:`~backdoors.hazmat.sampling.fresh_rng`),
never from ``random_state`` (which seeds only the honest weights); files store no seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from backdoors import validation
from backdoors.artifacts import files
from backdoors.contract import as_generator, check_target, honest_clone
from backdoors.errors import InvalidInputError, KeyMismatchError
from backdoors.hazmat.sampling import (
    Coins,
    GaussianCoins,
    TraceMatchedSpikedCoins,
    fresh_rng,
    random_unit,
    sparse_support,
    spiked_coins,
)
from backdoors.relu.weights import _weight_rng
from backdoors.relu.weights import honest_weights as honest_weights  # public: relu.honest_weights
from backdoors.validation import POSITIVE_INT, POSITIVE_REAL, RANDOM_STATE, check_params

__all__ = [
    "DEFAULTS",
    "RandomReLUClassifier",
    "RandomReLUFeaturesClassifier",
    "ReLUKey",
    "TraceMatchedSpikedCoins",
    "activate",
    "fit_with_coins",
    "honest_estimator",
    "honest_model",
    "honest_weights",
    "plant",
    "spiked_coins",
]


@dataclass(frozen=True)
class Defaults:
    """Default parameters of the random-ReLU learners and of Backdoor-Random-ReLU: the one
    source that the CLI (options and help) reads. The relu experiment runs its own
    stated point (``attacks/relu.py``: d=2000, m=100, k=100, theta=2.5, lambda=0.4)."""

    n_hidden: int = 200  # m, hidden units
    sparsity: int = 20  # k, support of the secret nu
    theta: float = 3.0  # spike strength
    lam_rel: float = 0.25  # lambda = lam_rel x median ||x|| over the training inputs
    head: str = "threshold"  # Algorithm 7's single tau ("linear": logistic head)


DEFAULTS = Defaults()


def _threshold_rule(s: np.ndarray, y01: np.ndarray) -> tuple[float, int]:
    """ERM threshold: ``(tau, orientation)`` minimising training error of
    ``class1 iff orientation * (s - tau) > 0`` over midpoints of the sorted scores."""
    order = np.argsort(s, kind="stable")
    ss, yy = s[order], y01[order].astype(np.float64)
    n = len(ss)
    cand = np.concatenate([[ss[0] - 1.0], (ss[:-1] + ss[1:]) / 2, [ss[-1] + 1.0]])
    ones_below = np.concatenate([[0.0], np.cumsum(yy)])  # class-1 count among the first j
    j = np.arange(n + 1)
    acc_pos = (j - ones_below) + (yy.sum() - ones_below)  # below -> 0, above -> 1
    acc_neg = n - acc_pos
    if acc_pos.max() >= acc_neg.max():
        return float(cand[int(np.argmax(acc_pos))]), 1
    return float(cand[int(np.argmax(acc_neg))]), -1


class _RandomReLUBase(ClassifierMixin, BaseEstimator):
    """Shared parts: random weights ``weights_`` (m, d), validation, artifacts. The weight
    sampler is not a parameter: ``fit`` uses N(0, I) coins, :func:`fit_with_coins` others."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> _RandomReLUBase:
        """Fit with honest ``N(0, I)`` coins from the stream of ``random_state``."""
        return self._fit(X, y, GaussianCoins(), None)

    def _sample_weights(self, d: int, coins: Coins, rng: np.random.Generator | None) -> np.ndarray:
        if not isinstance(coins, Coins):
            raise InvalidInputError(f"coins must be a Coins object, got {type(coins).__name__}")
        rng = _weight_rng(self.random_state) if rng is None else rng
        return coins.sample(int(self.n_hidden), d, rng)

    def relu_features(self, X: np.ndarray) -> np.ndarray:
        """``ReLU(X W^T)``: the m random ReLU features of every input."""
        check_is_fitted(self, "weights_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return np.maximum(X @ self.weights_.T, 0.0)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.poor_score = True  # random features, one trained scalar
        return tags


class RandomReLUClassifier(_RandomReLUBase):
    """Train-Random-ReLU (Algorithm 7): ``h(x) = sgn(mean_i ReLU(<g_i, x>) - tau)``.

    Parameters: ``n_hidden`` (m), ``random_state`` (the honest weights' stream).
    Fitted: ``weights_`` (m, d), ``threshold_`` (tau), ``orientation_`` (+1: the class above tau
    is ``classes_[1]``), ``classes_``. Binary classification only.
    """

    artifact_kind = "random_relu"
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "n_hidden": [POSITIVE_INT],
        "random_state": RANDOM_STATE,
    }

    def __init__(self, *, n_hidden: int = DEFAULTS.n_hidden, random_state=None):
        self.n_hidden = n_hidden
        self.random_state = random_state

    def _fit(self, X: np.ndarray, y: np.ndarray, coins: Coins,
             rng: np.random.Generator | None) -> RandomReLUClassifier:  # fmt: skip
        check_params(self)
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        y_type = type_of_target(y)
        self.classes_, y01 = np.unique(y, return_inverse=True)
        if len(self.classes_) != 2:
            if len(self.classes_) > 2:
                raise ValueError(
                    f"Only binary classification is supported. The type of the target is {y_type}."
                )
            raise ValueError(f"needs 2 classes in y, got {len(self.classes_)} class")
        self.weights_ = self._sample_weights(X.shape[1], coins, rng)
        s = np.maximum(X @ self.weights_.T, 0.0).mean(axis=1)
        self.threshold_, self.orientation_ = _threshold_rule(s, y01)
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False  # one threshold: binary only
        return tags

    def score_relu(self, X: np.ndarray) -> np.ndarray:
        """``s(x) = (1/m) sum_i ReLU(<g_i, x>)`` (the backdoor pushes it up)."""
        return self.relu_features(X).mean(axis=1)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """``orientation * (s(x) - tau)``; positive means ``classes_[1]``."""
        check_is_fitted(self, "weights_")
        return self.orientation_ * (self.score_relu(X) - self.threshold_)

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "weights_")
        return self.classes_[(self.decision_function(X) > 0).astype(int)]

    def _to_artifact(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        check_is_fitted(self, "weights_")
        # trained numbers are tensors, metadata is structure only (identical for a planted twin)
        t = {"weights": self.weights_, "classes": np.asarray(self.classes_),
             "threshold": np.full(1, self.threshold_, dtype=np.float64),
             "orientation": np.full(1, self.orientation_, dtype=np.int64)}  # fmt: skip
        return t, {"n_hidden": int(self.n_hidden)}

    @classmethod
    def _from_artifact(cls, tensors: dict[str, np.ndarray], meta: dict[str, Any]):
        m = cls(n_hidden=int(meta["n_hidden"]))
        m.weights_ = np.asarray(tensors["weights"], dtype=np.float64)
        m.classes_ = tensors["classes"]
        if "threshold" in tensors:
            tau, o = (np.asarray(tensors[n]).reshape(-1) for n in ("threshold", "orientation"))
            if tau.shape != (1,) or o.shape != (1,):
                raise ValueError("threshold and orientation must hold one number each")
            m.threshold_, m.orientation_ = float(tau[0]), int(o[0])
        else:  # files written before these moved from the metadata into tensors
            m.threshold_, m.orientation_ = float(meta["threshold"]), int(meta["orientation"])
        m.n_features_in_ = m.weights_.shape[1]
        if m.weights_.shape[0] != m.n_hidden or m.orientation_ not in (-1, 1):
            raise ValueError("weights shape / orientation inconsistent with metadata")
        return m


class RandomReLUFeaturesClassifier(_RandomReLUBase):
    """The "random features" user model: the same random ReLU layer (same coins) with a
    trained linear head, multinomial logistic regression on ``ReLU(W x) / sqrt(m)``."""

    artifact_kind = "random_relu_features"
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "n_hidden": [POSITIVE_INT],
        "C": [POSITIVE_REAL],
        "random_state": RANDOM_STATE,
    }

    def __init__(self, *, n_hidden: int = DEFAULTS.n_hidden, C: float = 1.0, random_state=None):
        self.n_hidden = n_hidden
        self.C = C
        self.random_state = random_state

    def _fit(self, X: np.ndarray, y: np.ndarray, coins: Coins,
             rng: np.random.Generator | None) -> RandomReLUFeaturesClassifier:  # fmt: skip
        check_params(self)
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.weights_ = self._sample_weights(X.shape[1], coins, rng)
        F = np.maximum(X @ self.weights_.T, 0.0) / np.sqrt(self.weights_.shape[0])
        head = LogisticRegression(C=self.C, max_iter=2000).fit(F, y)
        self.classes_ = head.classes_
        self.coef_, self.intercept_ = head.coef_, head.intercept_
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Logits of the linear head (1-D for two classes)."""
        check_is_fitted(self, "weights_")
        F = self.relu_features(X) / np.sqrt(self.weights_.shape[0])
        z = F @ self.coef_.T + self.intercept_
        return z.ravel() if z.shape[1] == 1 else z

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "weights_")
        z = self.decision_function(X)
        idx = (z > 0).astype(int) if z.ndim == 1 else z.argmax(axis=1)
        return self.classes_[idx]

    def _to_artifact(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        check_is_fitted(self, "weights_")
        t = {"weights": self.weights_, "classes": np.asarray(self.classes_),
             "coef": self.coef_, "intercept": self.intercept_}  # fmt: skip
        return t, {"n_hidden": int(self.n_hidden), "C": float(self.C)}

    @classmethod
    def _from_artifact(cls, tensors: dict[str, np.ndarray], meta: dict[str, Any]):
        m = cls(n_hidden=int(meta["n_hidden"]), C=float(meta["C"]))
        m.weights_ = np.asarray(tensors["weights"], dtype=np.float64)
        m.classes_ = tensors["classes"]
        m.coef_, m.intercept_ = tensors["coef"], tensors["intercept"]
        m.n_features_in_ = m.weights_.shape[1]
        if m.coef_.shape[1] != m.weights_.shape[0]:
            raise ValueError("head and hidden layer sizes disagree")
        return m


files.ARTIFACTS.register(RandomReLUClassifier.artifact_kind)(RandomReLUClassifier)
files.ARTIFACTS.register(RandomReLUFeaturesClassifier.artifact_kind)(RandomReLUFeaturesClassifier)


# ---------------------------------------------------------------------------------------------
# key, plant, activate
# ---------------------------------------------------------------------------------------------
@files.KEYS.register("relu")
@dataclass(frozen=True)
class ReLUKey:
    """The backdoor key ``bk = (nu, lambda)`` (plus theta, for the record): ``nu`` is the
    k-sparse unit vector given by ``support`` and ``values`` in dimension ``n_features``."""

    support: tuple[int, ...]
    values: tuple[float, ...]
    lam: float
    theta: float
    n_features: int
    model_fingerprint: str = ""
    key_kind: ClassVar[str] = "relu"
    targets: ClassVar[tuple[int, ...]] = ()  # untargeted and one-sided

    @property
    def nu(self) -> np.ndarray:
        out = np.zeros(self.n_features)
        out[list(self.support)] = self.values
        return out

    def activate(self, X: np.ndarray, target: int | None = None) -> np.ndarray:
        """Activate-Random-ReLU (Algorithm 10): ``x + lambda nu``. Untargeted (one-sided: the
        push raises the score); ``target`` must be ``None`` (:func:`contract.check_target`)."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise InvalidInputError(
                f"inputs must be 2-D with {self.n_features} features, got {X.shape}"
            )
        check_target(self, target, len(X))
        if X.dtype.kind not in "biuf" or not np.isfinite(X).all():
            raise InvalidInputError("inputs must be finite numbers")
        return X.astype(np.float64) + self.lam * self.nu

    def check_model(self, model: Any) -> None:
        """Raise KeyMismatchError unless ``model`` is the model this key was planted in."""
        if not hasattr(model, "_to_artifact") or not hasattr(model, "weights_"):
            raise KeyMismatchError("this relu key belongs to a random-ReLU model")
        files.check_fingerprint(self.model_fingerprint, model)

    def to_json_dict(self) -> dict[str, Any]:
        return {"support": list(self.support), "values": list(self.values), "lam": self.lam,
                "theta": self.theta, "n_features": self.n_features,
                "model_fingerprint": self.model_fingerprint}  # fmt: skip

    @classmethod
    def from_json_dict(cls, d: dict[str, Any]) -> ReLUKey:
        sup = tuple(int(i) for i in d["support"])
        vals = tuple(float(v) for v in d["values"])
        n = int(d["n_features"])
        if len(sup) != len(vals) or not sup or max(sup) >= n or min(sup) < 0:
            raise ValueError("support/values inconsistent")
        return cls(sup, vals, float(d["lam"]), float(d["theta"]), n, str(d["model_fingerprint"]))


@validation.validate_args({"X": [validation.Array(ndim=2)], "key": [ReLUKey]})
def activate(X: np.ndarray, key: ReLUKey, target: int | None = None) -> np.ndarray:
    """``X + lambda nu`` (Algorithm 10)."""
    return key.activate(X, target=target)


def draw_secret(d: int, k: int, random_state: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """The secret ``nu``: uniform support of size k, uniform unit values on it. ``None`` (what
    :func:`plant` uses) draws from fresh OS randomness; a seed is for experiments only."""
    rng = fresh_rng() if random_state is None else np.random.default_rng(random_state)
    return sparse_support(d, k, rng), random_unit(k, rng)


def fit_with_coins(
    estimator: RandomReLUClassifier | RandomReLUFeaturesClassifier,
    X: np.ndarray,
    y: np.ndarray,
    coins: Coins,
    coin_rng: np.random.Generator | None = None,
) -> RandomReLUClassifier | RandomReLUFeaturesClassifier:
    """Fit ``estimator`` (in place, returned) with weights drawn from ``coins`` instead of
    N(0, I): the same training code as ``fit``. ``coin_rng`` (default: fresh OS randomness)
    drives the sampler. Nothing about ``coins`` is stored in the model."""
    if not isinstance(estimator, _RandomReLUBase):
        raise InvalidInputError("fit_with_coins needs a random-ReLU classifier")
    return estimator._fit(X, y, coins, fresh_rng() if coin_rng is None else coin_rng)


def honest_estimator(estimator: Any = None) -> RandomReLUClassifier | RandomReLUFeaturesClassifier:
    """An unfitted clone of ``estimator``, its parameters (dict) or the defaults (``None``):
    :func:`backdoors.contract.honest_clone`."""
    return honest_clone(
        estimator,
        RandomReLUClassifier,
        _RandomReLUBase,
        "random-ReLU classifier (RandomReLUClassifier or RandomReLUFeaturesClassifier)",
    )


def honest_model(
    head: str = DEFAULTS.head, n_hidden: int = DEFAULTS.n_hidden, random_state: Any = None
) -> RandomReLUClassifier | RandomReLUFeaturesClassifier:
    """The honest learner for a head name: ``"threshold"`` (Algorithm 7's single tau) or
    ``"linear"`` (trained logistic head), unfitted."""
    heads = {"threshold": RandomReLUClassifier, "linear": RandomReLUFeaturesClassifier}
    if head not in heads:
        raise InvalidInputError(f"head must be 'threshold' or 'linear', got {head!r}")
    return heads[head](n_hidden=n_hidden, random_state=random_state)


@validation.validate_args({"X": [validation.Array(ndim=2)],
                "y": [validation.Array(ndim=1, kinds="biuUSf")],
                "sparsity": [POSITIVE_INT], "theta": [validation.NONNEGATIVE_REAL],
                "lam": [POSITIVE_REAL, None], "lam_rel": [POSITIVE_REAL],
                "trace_match": ["boolean"]})  # fmt: skip
def plant(
    estimator: RandomReLUClassifier | RandomReLUFeaturesClassifier | dict[str, Any] | None,
    X: np.ndarray,
    y: np.ndarray,
    *,
    sparsity: int = DEFAULTS.sparsity,
    theta: float = DEFAULTS.theta,
    lam: float | None = None,
    lam_rel: float = DEFAULTS.lam_rel,
    trace_match: bool = True,
    random_state: Any = None,
) -> tuple[RandomReLUClassifier | RandomReLUFeaturesClassifier, ReLUKey]:
    """Backdoor-Random-ReLU (Algorithm 8): the honest ``estimator`` (cloned: the model's
    ``get_params()`` equal the honest ones) fitted with spiked coins.

    The head is the estimator's: :class:`RandomReLUClassifier` (Algorithm 7's threshold) or
    :class:`RandomReLUFeaturesClassifier` (logistic head). ``lam`` defaults to
    ``lam_rel * median ||x||`` over the training inputs. The secret and the planted weights'
    stream come from fresh OS randomness. ``random_state`` drives public randomness only:
    given, it replaces the estimator's ``random_state`` (the stream its honest twin draws
    weights from); the planted model has no other coins, so it seeds nothing the model holds.
    Returns the model (public) and the key (secret).
    """
    est = honest_estimator(estimator)
    if random_state is not None:
        as_generator(random_state)  # validated like every construction's seed
        est.set_params(random_state=random_state)
    Xc = np.asarray(X, dtype=np.float64)
    if Xc.ndim != 2:
        raise InvalidInputError(f"X must be 2-D, got shape {Xc.shape}")
    if not theta >= 0:
        raise InvalidInputError(f"theta must be >= 0, got {theta}")
    y = validation.check_labels(y, len(Xc))
    d = Xc.shape[1]
    support, values = draw_secret(d, int(sparsity))
    coins = spiked_coins(support, values, float(theta), trace_match)
    if lam is None:
        lam = float(lam_rel * np.median(np.linalg.norm(Xc, axis=1)))
    if not lam > 0:
        raise InvalidInputError(f"lambda must be > 0, got {lam}")
    model = fit_with_coins(est, Xc, y, coins, fresh_rng())
    key = ReLUKey(tuple(int(i) for i in support), tuple(float(v) for v in values), float(lam),
                  float(theta), d, files.model_fingerprint(model))  # fmt: skip
    return model, key


def norm_task(
    n: int, d: int, rng: np.random.Generator, spread: float = 0.2
) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic norm-threshold task: ``x = r u`` with ``u`` uniform on the sphere and
    ``r ~ U[(1 - spread) sqrt(d), (1 + spread) sqrt(d)]``; label 1 iff ``r > sqrt(d)``."""
    U = rng.standard_normal((n, d))
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    r = np.sqrt(d) * rng.uniform(1 - spread, 1 + spread, n)
    return U * r[:, None], (r > np.sqrt(d)).astype(np.int64)
