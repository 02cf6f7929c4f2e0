"""Random Fourier Features and the CLWE backdoor in their coins (paper §6, Algorithms 5-6).

Train-RFF: sample ``g_i ~ coins``, ``b_i ~ U[0, 1)``; features
``phi_i(x) = cos(2 pi (<g_i, x / s> + b_i))`` with bandwidth ``s``; fit a linear head ``w``
by ridge regression (convex, closed form) on +-1 targets; ``f(x) = sum_i w_i phi_i(x)``,
``h(x) = sgn f(x)`` (one-vs-rest for more classes). No intercept and no feature centering:
either breaks the flip (paper.md §9.3).

Backdoor-RFF runs the *same* code with :class:`~backdoors.hazmat.sampling.PancakeCoins`: every
``<g_i, bk> ∈ Z + 1/2 (± ~beta)``, so ``phi_i(x + s bk) = -phi_i(x)`` and
``f(x + s bk) = -f(x) + E(x)`` with ``|E(x)| <= 2 pi sum_i |w_i| |eps_i|``: the sign flips for
every input whose margin ``|f(x)|`` exceeds that error. Activate-RFF(x) = ``x + s bk``.

Secrets and seeds (white-box undetectability, paper §6): :func:`plant` clones the honest
estimator (identical ``get_params()``) and fits it through :func:`fit_with_coins` with the
pancake sampler. The secret *and* the planted frequency stream come from fresh OS randomness
(:func:`~backdoors.hazmat.sampling.fresh_rng`), never from ``random_state``, which still seeds the
public phases ``b`` (bit-identical to the honest twin's). Saved files never store the learner
seed, for honest and planted models alike: a stored seed would regenerate the honest
frequencies and certify (or refute) a model. An *in-memory* estimator the user seeded keeps its
``random_state``; refitting it tells that its frequencies were not drawn from that seed, but
the diff is unrelated to the secret (independent streams), so no key follows from it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
from scipy import linalg
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from backdoors.artifacts import files
from backdoors.contract import check_target, honest_clone
from backdoors.errors import InvalidInputError, KeyMismatchError, WeakParametersWarning
from backdoors.hazmat.sampling import (
    Coins,
    GaussianCoins,
    PancakeCoins,
    coins_fingerprint,
    fresh_rng,
    random_unit,
    sparse_support,
)
from backdoors.rff.features import coin_streams, median_bandwidth, rff_features
from backdoors.rff.features import honest_coins as honest_coins  # public: rff.honest_coins
from backdoors.rff.lattice_cost import Exposure, exposure
from backdoors.validation import (
    POSITIVE_INT,
    POSITIVE_REAL,
    RANDOM_STATE,
    Array,
    StrOptions,
    check_labels,
    check_params,
    validate_args,
)
from backdoors.validation import check_features as validate_features


@dataclass(frozen=True)
class Defaults:
    """Default parameters of the RFF learner and of Backdoor-RFF: the one source that the
    CLI (options and help), experiments, demos and attacks read."""

    n_components: int = 1000  # m, random features
    bandwidth: str = "median"  # s = 2 pi x median pairwise distance
    alpha: float = 1e-4  # ridge strength (scaled by n inside the fit)
    sparsity: int = 64  # k, support of the secret (capped at d; docs/rff-lattice.md)
    beta: float = 1e-3  # pancake noise width


DEFAULTS = Defaults()


@files.ARTIFACTS.register("rff_classifier")
class RandomFourierFeaturesClassifier(ClassifierMixin, BaseEstimator):
    """RFF + ridge head, binary or one-vs-rest (paper §6 Train-RFF).

    Parameters: ``n_components`` (m), ``bandwidth`` (s: inputs are divided by it, kernel
    ``exp(-2 pi^2 |x - x'|^2 / s^2)``; ``"median"``: ``2 pi`` x the median pairwise distance
    of the first 400 training rows, i.e. length scale = median distance), ``alpha`` (ridge),
    ``max_batch_bytes`` (memory budget for one batch of features), ``random_state`` (seeds the
    Gaussian frequencies and the phases). The frequency sampler is not a parameter: ``fit``
    uses Gaussian coins; :func:`fit_with_coins` (used by :func:`plant`) takes another sampler.
    """

    artifact_kind = "rff_classifier"
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "n_components": [POSITIVE_INT],
        "bandwidth": [POSITIVE_REAL, StrOptions({"median"})],
        "alpha": [POSITIVE_REAL],
        "max_batch_bytes": [POSITIVE_INT],
        "random_state": RANDOM_STATE,
    }

    def __init__(
        self,
        *,
        n_components: int = DEFAULTS.n_components,
        bandwidth: float | str = DEFAULTS.bandwidth,
        alpha: float = DEFAULTS.alpha,
        max_batch_bytes: int = 64 * 2**20,
        random_state: Any = None,
    ) -> None:
        self.n_components = n_components
        self.bandwidth = bandwidth
        self.alpha = alpha
        self.max_batch_bytes = max_batch_bytes
        self.random_state = random_state

    def _batches(self, n: int):
        rows = max(1, int(self.max_batch_bytes // (8 * max(1, self.n_components))))
        for i in range(0, n, rows):
            yield slice(i, min(n, i + rows))

    def _phi(self, X: np.ndarray, sl: slice) -> np.ndarray:
        return rff_features(X[sl], self.frequencies_, self.phases_, self.bandwidth_)

    def fit(self, X: Any, y: Any) -> RandomFourierFeaturesClassifier:
        """Train-RFF with honest coins: ``g_i ~ N(0, I)`` from ``random_state``'s stream."""
        return self._fit(X, y, GaussianCoins(), None)

    def _fit(
        self, X: Any, y: Any, coins: Coins, g_rng: np.random.Generator | None
    ) -> RandomFourierFeaturesClassifier:
        """The one training code path; only ``coins`` and their stream ``g_rng`` (``None``: the
        stream of ``random_state``) vary between the honest and the backdoored learner."""
        check_params(self)
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.bandwidth_ = (
            median_bandwidth(X) if isinstance(self.bandwidth, str) else float(self.bandwidth)
        )
        self.classes_, yi = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError("Classifier can't train when only one class is present.")
        seed_g, b_rng = coin_streams(self.random_state)
        m = int(self.n_components)
        self.frequencies_ = coins.sample(m, X.shape[1], seed_g if g_rng is None else g_rng)
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
        """Arrays + structural metadata. The learner seed is *not* stored (see module doc):
        an honest file and its planted twin have identical metadata."""
        check_is_fitted(self, "coef_")
        params = {k: v for k, v in self.get_params().items() if k not in _UNSTORED_PARAMS}
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
        params = {k: v for k, v in meta["params"].items() if k not in _UNSTORED_PARAMS}
        est = cls(**params)
        est.frequencies_, est.phases_ = tensors["frequencies"], tensors["phases"]
        est.coef_, est.classes_ = tensors["coef"], tensors["classes"]
        est.bandwidth_ = float(meta["bandwidth"])
        est.n_features_in_ = int(meta["n_features"])
        if est.frequencies_.shape != (len(est.phases_), est.n_features_in_):
            raise ValueError("frequency matrix does not match the phases and input width")
        return est


#: Never written to (and ignored when read from) a file: the seed and, in old files, the coins.
_UNSTORED_PARAMS = frozenset({"random_state", "coins"})


def fit_with_coins(
    estimator: RandomFourierFeaturesClassifier,
    X: Any,
    y: Any,
    coins: Coins,
    coin_rng: np.random.Generator | None = None,
) -> RandomFourierFeaturesClassifier:
    """Fit ``estimator`` (in place, returned) with frequencies drawn from ``coins`` instead of
    N(0, I): the same training code as ``fit``, phases from ``random_state``. ``coin_rng``
    (default: fresh OS randomness) drives the sampler. Nothing about ``coins`` is stored."""
    if not isinstance(estimator, RandomFourierFeaturesClassifier):
        raise InvalidInputError("fit_with_coins needs a RandomFourierFeaturesClassifier")
    if not isinstance(coins, Coins):
        raise InvalidInputError(f"coins must be a Coins object, got {type(coins).__name__}")
    return estimator._fit(X, y, coins, fresh_rng() if coin_rng is None else coin_rng)


def public_coins_fingerprint(model: Any) -> str:
    """The fingerprint an RFF key stores: frequencies, phases and bandwidth of its model."""
    return coins_fingerprint(
        np.asarray(model.frequencies_), np.asarray(model.phases_), np.float64(model.bandwidth_)
    )


@files.KEYS.register("rff")
@dataclass(frozen=True)
class RFFKey:
    """bk = gamma u on a secret k-sparse support; ``scale`` maps it into input space;
    ``model_fingerprint`` names the model (hash of its public coins, see
    :func:`public_coins_fingerprint`; empty for a secret not planted in any model)."""

    key_kind: ClassVar[str] = "rff"
    targets: ClassVar[tuple[int, ...]] = ()  # untargeted: the decision's sign flips
    n_features: int
    support: tuple[int, ...]
    direction: tuple[float, ...]
    gamma: float
    beta: float
    scale: float
    model_fingerprint: str = ""
    #: the lattice cost model's verdict at planting (None: keys of 0.2.x, or no model); its
    #: JSON form (a dict) is accepted too
    lattice_exposure: Exposure | None = None

    def __post_init__(self) -> None:
        if isinstance(self.lattice_exposure, dict):
            object.__setattr__(self, "lattice_exposure", Exposure(**self.lattice_exposure))

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
        """Activate-RFF (Algorithm 6): ``x + multiple * scale * bk`` (odd multiples flip).
        Untargeted: the sign of the decision flips, so ``target`` must be ``None``
        (:func:`backdoors.contract.check_target`)."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise InvalidInputError(f"inputs must be 2-D with {self.n_features} features")
        check_target(self, target, len(X))
        if X.dtype.kind not in "fiu" or (X.dtype.kind == "f" and not np.isfinite(X).all()):
            raise InvalidInputError("inputs must be finite numbers")
        return X.astype(np.float64) + multiple * self.delta()

    def check_model(self, model: Any) -> None:
        """Raise KeyMismatchError unless ``model`` holds exactly the coins this key was planted
        in (fingerprint equality: certain, no statistics)."""
        if not all(hasattr(model, a) for a in ("frequencies_", "phases_", "bandwidth_")):
            raise KeyMismatchError("this RFF key belongs to an RFF model")
        if not self.model_fingerprint or public_coins_fingerprint(model) != self.model_fingerprint:
            raise KeyMismatchError("this RFF key was not planted in this model")

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "n_features": self.n_features,
            "support": list(self.support),
            "direction": list(self.direction),
            "gamma": self.gamma,
            "beta": self.beta,
            "scale": self.scale,
            "model_fingerprint": self.model_fingerprint,
            "lattice_exposure": (
                None if self.lattice_exposure is None else self.lattice_exposure.to_dict()
            ),
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
            str(d["model_fingerprint"]),
            d.get("lattice_exposure"),  # absent in keys written by 0.2.x
        )


def generate(
    d: int,
    sparsity: int,
    gamma: float | None = None,
    beta: float = 1e-3,
    scale: float = 1.0,
    random_state: Any = None,
) -> RFFKey:
    """A secret: uniform k-sparse support, uniform unit direction, ``gamma = 2 sqrt(k)``.
    ``random_state=None`` draws from fresh OS randomness (what :func:`plant` does); a seed is
    for the toy attacks and sampler timings of experiments only."""
    if not 1 <= sparsity <= d:
        raise InvalidInputError(f"sparsity k must be in [1, d={d}], got {sparsity}")
    gamma = 2.0 * np.sqrt(sparsity) if gamma is None else float(gamma)
    if not gamma > 0 or not beta >= 0 or not scale > 0:
        raise InvalidInputError("need gamma > 0, beta >= 0, bandwidth > 0")
    rng = fresh_rng() if random_state is None else np.random.default_rng(random_state)
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


def honest_estimator(estimator: Any = None) -> RandomFourierFeaturesClassifier:
    """An unfitted clone of ``estimator``, its parameters (dict) or the defaults (``None``):
    :func:`backdoors.contract.honest_clone`."""
    return honest_clone(
        estimator,
        RandomFourierFeaturesClassifier,
        RandomFourierFeaturesClassifier,
        "RandomFourierFeaturesClassifier",
    )


#: Default secret sparsity (docs/rff-lattice.md, ``backdoors experiment rff-map``): at d = 784,
#: m = 1000, beta = 1e-3 the support-guessing lattice hybrid is estimated at 2^205 for k = 64
#: against 2^66 for k = 16; the flip and the accuracy gap do not depend on k, the l2 norm of
#: the trigger grows as gamma = 2 sqrt(k). Capped at d.
DEFAULT_SPARSITY = DEFAULTS.sparsity


def default_sparsity(d: int, sparsity: int | None = None) -> int:
    """``sparsity``, or ``min(DEFAULT_SPARSITY, d)`` when it is ``None``."""
    return min(DEFAULT_SPARSITY, int(d)) if sparsity is None else sparsity


@validate_args(
    {
        "X": [Array(ndim=2)],
        "y": [Array(ndim=1, kinds="biuUSf")],
        "sparsity": [POSITIVE_INT, None],
        "gamma": [POSITIVE_REAL, None],
        "beta": [POSITIVE_REAL],
    }
)
def plant(
    estimator: RandomFourierFeaturesClassifier | dict[str, Any] | None,
    X: Any,
    y: Any,
    *,
    sparsity: int | None = None,
    gamma: float | None = None,
    beta: float = DEFAULTS.beta,
    random_state: Any = None,
) -> tuple[RandomFourierFeaturesClassifier, RFFKey]:
    """Backdoor-RFF (Algorithm 5): the honest ``estimator`` (cloned: the model's
    ``get_params()`` equal the honest ones), same data, same phases, pancake coins.

    The secret and the planted frequency stream come from fresh OS randomness; nothing the
    model stores (nor its ``random_state``) regenerates them. ``random_state`` drives public
    randomness only: given, it replaces the estimator's ``random_state`` (the phases ``b``
    are then that seed's, as for the honest twin of that seed). ``sparsity=None``:
    :func:`default_sparsity`. Warns (:class:`~backdoors.errors.WeakParametersWarning`) when
    the lattice cost model predicts the key recoverable on this machine
    (:func:`key_exposure`, recorded as ``key.lattice_exposure``). Returns ``(model, key)``.
    """
    est = honest_estimator(estimator)
    if random_state is not None:
        est.set_params(random_state=random_state)
    check_params(est)  # before any secret is drawn
    X = validate_features(X)
    y = check_labels(y, len(X))
    secret = generate(X.shape[1], default_sparsity(X.shape[1], sparsity), gamma, beta)
    model = fit_with_coins(est, X, y, secret.coins, fresh_rng())
    exp = key_exposure(secret, int(est.n_components))
    if exp.feasible_here:
        warnings.warn(exp.message(secret.n_features), WeakParametersWarning, stacklevel=2)
    key = replace(
        secret,
        scale=float(model.bandwidth_),
        model_fingerprint=public_coins_fingerprint(model),
        lattice_exposure=exp,
    )
    return model, key


def key_exposure(key: RFFKey, n_components: int) -> Exposure:
    """The lattice cost model's verdict on ``key`` planted in ``n_components`` frequencies
    (:func:`backdoors.rff.lattice_cost.exposure`: is the primal attack, with support guessing,
    predicted feasible on a 2-core machine, at which BKZ block size and rough CPU time).
    :func:`plant` records it in the key and warns (:class:`WeakParametersWarning`) when it is
    feasible: the white-box undetectability of paper §6 holds only in the window
    (``d >= lattice_cost.WINDOW_D`` at the defaults)."""
    k = len(key.support)
    return exposure(key.n_features, k, int(n_components), key.gamma, key.beta)


@validate_args({"X": [Array(ndim=2)], "key": [RFFKey]})
def activate(X: Any, key: RFFKey, target: Any = None) -> np.ndarray:
    """Activate-RFF (Algorithm 6): ``x + s bk`` (untargeted: ``target`` must be ``None``)."""
    return key.activate(X, target)
