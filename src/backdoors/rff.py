"""Random Fourier Features and the CLWE backdoor in their coins (paper §6, Algorithms 5-6).

Train-RFF: sample ``g_i ~ coins``, ``b_i ~ U[0, 1)``; features
``phi_i(x) = cos(2 pi (<g_i, x / s> + b_i))`` with bandwidth ``s``; fit a linear head ``w``
by ridge regression (convex, closed form) on +-1 targets; ``f(x) = sum_i w_i phi_i(x)``,
``h(x) = sgn f(x)`` (one-vs-rest for more classes). No intercept and no feature centering:
either breaks the flip (paper.md §9.3).

Backdoor-RFF runs the *same* code with :class:`~backdoors.sampling.PancakeCoins`: every
``<g_i, bk> ∈ Z + 1/2 (± ~beta)``, so ``phi_i(x + s bk) = -phi_i(x)`` and
``f(x + s bk) = -f(x) + E(x)`` with ``|E(x)| <= 2 pi sum_i |w_i| |eps_i|``: the sign flips for
every input whose margin ``|f(x)|`` exceeds that error. Activate-RFF(x) = ``x + s bk``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from scipy import linalg
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from backdoors import io
from backdoors.errors import InvalidInputError, KeyMismatchError
from backdoors.sampling import Coins, GaussianCoins, PancakeCoins, random_unit, sparse_support
from backdoors.validation import check_features as validate_features


@dataclass(frozen=True)
class Defaults:
    """Default parameters of the RFF learner and of Backdoor-RFF: the one source that the
    CLI (options and help), experiments, demos and attacks read (issue 13)."""

    n_components: int = 1000  # m, random features
    bandwidth: str = "median"  # s = 2 pi x median pairwise distance
    alpha: float = 1e-4  # ridge strength (scaled by n inside the fit)
    sparsity: int = 16  # k, support of the secret
    beta: float = 1e-3  # pancake noise width


DEFAULTS = Defaults()


def coin_streams(random_state: Any) -> tuple[np.random.Generator, np.random.Generator]:
    """Two independent generators from one seed: frequencies (the coins) and phases b.
    Keeping them apart makes honest and backdoored learners identical except for G."""
    if isinstance(random_state, np.random.Generator):
        seq = np.random.SeedSequence(int(random_state.integers(0, 2**63)))
    elif isinstance(random_state, np.random.RandomState):
        seq = np.random.SeedSequence(int(random_state.randint(0, 2**31)))
    else:
        seq = np.random.SeedSequence(None if random_state is None else int(random_state))
    g_seq, b_seq = seq.spawn(2)
    return np.random.default_rng(g_seq), np.random.default_rng(b_seq)


def median_bandwidth(X: np.ndarray) -> float:
    """``2 pi`` x the median pairwise distance of the first 400 rows (deterministic); 1.0 if
    all those rows coincide."""
    A = np.asarray(X, dtype=np.float64)[:400]
    sq = (A * A).sum(1)
    D2 = np.maximum(sq[:, None] + sq[None, :] - 2 * A @ A.T, 0)
    med = float(np.sqrt(np.median(D2[np.triu_indices(len(A), 1)]))) if len(A) > 1 else 0.0
    return 2 * np.pi * med if med > 0 else 1.0


def rff_features(X: np.ndarray, G: np.ndarray, b: np.ndarray, scale: float) -> np.ndarray:
    """``cos(2 pi (X G^T / scale + b))`` in float64."""
    Z = (X / scale) @ G.T
    Z += b
    return np.cos(2 * np.pi * Z)


@io.ARTIFACTS.register("rff_classifier")
class RandomFourierFeaturesClassifier(ClassifierMixin, BaseEstimator):
    """RFF + ridge head, binary or one-vs-rest (paper §6 Train-RFF).

    Parameters: ``n_components`` (m), ``bandwidth`` (s: inputs are divided by it, kernel
    ``exp(-2 pi^2 |x - x'|^2 / s^2)``; ``"median"``: ``2 pi`` x the median pairwise distance
    of the first 400 training rows, i.e. length scale = median distance), ``alpha`` (ridge),
    ``coins`` (``None``: Gaussian), ``max_batch_bytes`` (memory budget for one batch of
    features), ``random_state``.
    """

    artifact_kind = "rff_classifier"

    def __init__(
        self,
        n_components: int = DEFAULTS.n_components,
        bandwidth: float | str = DEFAULTS.bandwidth,
        alpha: float = DEFAULTS.alpha,
        coins: Coins | None = None,
        max_batch_bytes: int = 64 * 2**20,
        random_state: Any = None,
    ) -> None:
        self.n_components = n_components
        self.bandwidth = bandwidth
        self.alpha = alpha
        self.coins = coins
        self.max_batch_bytes = max_batch_bytes
        self.random_state = random_state

    def _batches(self, n: int):
        rows = max(1, int(self.max_batch_bytes // (8 * max(1, self.n_components))))
        for i in range(0, n, rows):
            yield slice(i, min(n, i + rows))

    def _phi(self, X: np.ndarray, sl: slice) -> np.ndarray:
        return rff_features(X[sl], self.frequencies_, self.phases_, self.bandwidth_)

    def fit(self, X: Any, y: Any) -> RandomFourierFeaturesClassifier:
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.bandwidth_ = (
            median_bandwidth(X) if isinstance(self.bandwidth, str) else float(self.bandwidth)
        )
        if int(self.n_components) < 1 or not self.bandwidth_ > 0 or not float(self.alpha) > 0:
            raise InvalidInputError("need n_components >= 1, bandwidth > 0, alpha > 0")
        self.classes_, yi = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError("Classifier can't train when only one class is present.")
        g_rng, b_rng = coin_streams(self.random_state)
        coins = GaussianCoins() if self.coins is None else self.coins
        m = int(self.n_components)
        self.frequencies_ = coins.sample(m, X.shape[1], g_rng)
        self.phases_ = b_rng.random(m)
        Y = (
            (np.eye(len(self.classes_))[yi] * 2 - 1)
            if len(self.classes_) > 2
            else (2.0 * yi - 1)[:, None]
        )
        # ridge on features, accumulated in batches: (Phi^T Phi + alpha n I) w = Phi^T Y
        A = np.zeros((m, m))
        B = np.zeros((m, Y.shape[1]))
        for sl in self._batches(len(X)):
            P = self._phi(X, sl)
            A += P.T @ P
            B += P.T @ Y[sl]
        A[np.diag_indices(m)] += self.alpha * len(X)
        W = linalg.solve(A, B, assume_a="pos", check_finite=False)
        self.coef_ = W[:, 0] if W.shape[1] == 1 else W
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        out = np.empty((len(X), *self.coef_.shape[1:]))
        for sl in self._batches(len(X)):
            out[sl] = self._phi(X, sl) @ self.coef_
        return out

    def predict(self, X: Any) -> np.ndarray:
        f = self.decision_function(X)
        idx = (f > 0).astype(int) if f.ndim == 1 else f.argmax(axis=1)
        return self.classes_[idx]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags

    def _to_artifact(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        check_is_fitted(self, "coef_")
        params = {k: v for k, v in self.get_params().items() if k != "coins"}
        if not isinstance(params["random_state"], int | None):
            params["random_state"] = None
        tensors = {
            "frequencies": self.frequencies_,
            "phases": self.phases_,
            "coef": self.coef_,
            "classes": np.asarray(self.classes_),
        }
        meta = {
            "params": params,
            "n_features": int(self.n_features_in_),
            "bandwidth": self.bandwidth_,
        }
        return tensors, meta

    @classmethod
    def _from_artifact(cls, tensors: dict[str, np.ndarray], meta: dict[str, Any]):
        est = cls(**meta["params"])
        est.frequencies_, est.phases_ = tensors["frequencies"], tensors["phases"]
        est.coef_, est.classes_ = tensors["coef"], tensors["classes"]
        est.bandwidth_ = float(meta["bandwidth"])
        est.n_features_in_ = int(meta["n_features"])
        if est.frequencies_.shape != (len(est.phases_), est.n_features_in_):
            raise ValueError("frequency matrix does not match the phases and input width")
        return est


@io.KEYS.register("rff")
@dataclass(frozen=True)
class RFFKey:
    """bk = gamma u on a secret k-sparse support; ``scale`` maps it into input space."""

    key_kind: ClassVar[str] = "rff"
    targeted: ClassVar[bool] = False  # flips the sign: no target to choose
    n_features: int
    support: tuple[int, ...]
    direction: tuple[float, ...]
    gamma: float
    beta: float
    scale: float

    @property
    def bk(self) -> np.ndarray:
        """The secret in frequency units (N(0, I) convention), a length-d vector."""
        v = np.zeros(self.n_features)
        v[list(self.support)] = self.gamma * np.asarray(self.direction)
        return v

    @property
    def coins(self) -> PancakeCoins:
        return PancakeCoins(self.support, self.direction, self.gamma, self.beta)

    def delta(self) -> np.ndarray:
        """The input-space perturbation ``scale * bk`` (paper.md §9.3: input scaling)."""
        return self.scale * self.bk

    def activate(self, X: Any, target: Any = None, multiple: float = 1.0) -> np.ndarray:
        """Activate-RFF (Algorithm 6): ``x + multiple * scale * bk`` (odd multiples flip)."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise InvalidInputError(f"inputs must be 2-D with {self.n_features} features")
        if X.dtype.kind not in "fiu" or (X.dtype.kind == "f" and not np.isfinite(X).all()):
            raise InvalidInputError("inputs must be finite numbers")
        return X.astype(np.float64) + multiple * self.delta()

    def check_model(self, model: Any) -> None:
        G = getattr(model, "frequencies_", None)
        if (
            G is None
            or G.shape[1] != self.n_features
            or getattr(model, "bandwidth_", None) != self.scale
        ):
            raise KeyMismatchError("this RFF key does not belong to this model")
        phase = np.mod(G @ self.bk, 1.0)
        if np.mean(np.abs(phase - 0.5) < 0.25) < 0.9:
            raise KeyMismatchError("this RFF key does not belong to this model (frequencies)")

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "n_features": self.n_features,
            "support": list(self.support),
            "direction": list(self.direction),
            "gamma": self.gamma,
            "beta": self.beta,
            "scale": self.scale,
        }

    @classmethod
    def from_json_dict(cls, d: dict[str, Any]) -> RFFKey:
        return cls(
            int(d["n_features"]),
            tuple(int(i) for i in d["support"]),
            tuple(float(v) for v in d["direction"]),
            float(d["gamma"]),
            float(d["beta"]),
            float(d["scale"]),
        )


def generate(
    d: int,
    sparsity: int,
    gamma: float | None = None,
    beta: float = 1e-3,
    scale: float = 1.0,
    random_state: Any = None,
) -> RFFKey:
    """A secret: uniform k-sparse support, uniform unit direction, ``gamma = 2 sqrt(k)``."""
    if not 1 <= sparsity <= d:
        raise InvalidInputError(f"sparsity k must be in [1, d={d}], got {sparsity}")
    gamma = 2.0 * np.sqrt(sparsity) if gamma is None else float(gamma)
    if not gamma > 0 or not beta >= 0 or not scale > 0:
        raise InvalidInputError("need gamma > 0, beta >= 0, bandwidth > 0")
    rng = np.random.default_rng(random_state)
    S = sparse_support(d, sparsity, rng)
    u = random_unit(sparsity, rng)
    return RFFKey(
        int(d),
        tuple(int(i) for i in S),
        tuple(float(v) for v in u),
        gamma,
        float(beta),
        float(scale),
    )


def plant(
    X: Any,
    y: Any,
    n_components: int = DEFAULTS.n_components,
    sparsity: int = DEFAULTS.sparsity,
    gamma: float | None = None,
    beta: float = DEFAULTS.beta,
    bandwidth: float | str = DEFAULTS.bandwidth,
    alpha: float = DEFAULTS.alpha,
    random_state: Any = None,
    key_seed: Any = None,
) -> tuple[RandomFourierFeaturesClassifier, RFFKey]:
    """Backdoor-RFF (Algorithm 5): the honest learner, same data and seed, pancake coins."""
    if int(n_components) < 1:
        raise InvalidInputError("n_components must be >= 1")
    X = validate_features(X)
    scale = median_bandwidth(X) if isinstance(bandwidth, str) else float(bandwidth)
    key = generate(X.shape[1], sparsity, gamma, beta, scale, key_seed)
    model = RandomFourierFeaturesClassifier(
        n_components, scale, alpha, key.coins, random_state=random_state
    ).fit(X, y)
    return model, key


def activate(X: Any, key: RFFKey, target: Any = None) -> np.ndarray:
    """Activate-RFF (Algorithm 6): ``x + s bk``."""
    return key.activate(X, target)
