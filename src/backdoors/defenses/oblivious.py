"""Oblivious local mitigation (Goldwasser, Shafer, Vafa, Vaikuntanathan 2024, arXiv 2411.03279).

When the ground truth is close to a low-degree polynomial ``f`` (here degree 1: affine),
``f(x)`` can be recovered from values of the model *away from x*: restricted to a random curve
through ``x`` the function is a low-degree polynomial in the curve parameter, so a few queries
on the curve determine it, and a median over independent curves tolerates the (small)
fraction of curves that hit a region where the model lies (random self-reducibility). The
defense never looks for the backdoor; it works however large the trigger is, as long as the
model agrees with ``f`` on most of the input distribution.

Curves used here (for a Gaussian input distribution N(0, I)): the great ellipse
``y(theta) = cos(theta) x + sin(theta) g`` with ``g ~ N(0, I)``. For affine ``f(y) = c + <w, y>``:
``f(y(theta)) = c + cos(theta) <w, x> + sin(theta) <w, g>``, a linear model in
``(1, cos, sin)``; fitting it on ``k`` query angles and reading off ``c + a`` gives ``f(x)``.
Angles are drawn from ``|cos(theta)| <= cos_max`` so that each query is far from ``x``
(a triggered input's large coordinates are shrunk by ``cos(theta)``) and close to the data
distribution when ``x`` is typical. Cost: ``n_curves * k`` model queries per prediction.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backdoors.errors import InvalidInputError
from backdoors.validation import check_features


class ObliviousMitigator:
    """Median-of-curves reconstruction of an (approximately) affine regression model ``h``.

    ``h`` is a callable ``X -> real scores`` (or an object with ``decision_function``).
    ``predict`` returns sign labels (0/1) of the reconstructed score.
    """

    def __init__(
        self,
        model: Any,
        n_curves: int = 15,
        points_per_curve: int = 4,
        cos_max: float = 0.5,
        seed: int = 0,
    ) -> None:
        if n_curves < 1 or points_per_curve < 3:
            raise InvalidInputError("need n_curves >= 1 and points_per_curve >= 3")
        if not 0 < cos_max < 1:
            raise InvalidInputError(f"cos_max must be in (0, 1), got {cos_max}")
        self.score = model.decision_function if hasattr(model, "decision_function") else model
        self.n_curves, self.k, self.cos_max, self.seed = n_curves, points_per_curve, cos_max, seed

    @property
    def queries_per_prediction(self) -> int:
        return self.n_curves * self.k

    def decision_function(self, X: Any) -> np.ndarray:
        """Reconstructed score ``median_curves (c + a)`` for every row."""
        X = check_features(X).astype(np.float64)
        n, d = X.shape
        rng = np.random.default_rng(self.seed)
        est = np.empty((n, self.n_curves))
        for j in range(self.n_curves):
            G = rng.standard_normal((n, d))
            c = rng.uniform(-self.cos_max, self.cos_max, (n, self.k))
            s = np.sqrt(1 - c**2) * rng.choice([-1.0, 1.0], (n, self.k))
            Y = c[:, :, None] * X[:, None, :] + s[:, :, None] * G[:, None, :]
            v = np.asarray(self.score(Y.reshape(n * self.k, d)), dtype=np.float64)
            v = v.reshape(n, self.k)
            A = np.stack([np.ones_like(c), c, s], axis=2)  # (n, k, 3)
            AtA = np.einsum("nki,nkj->nij", A, A) + 1e-9 * np.eye(3)
            Atv = np.einsum("nki,nk->ni", A, v)
            beta = np.linalg.solve(AtA, Atv[:, :, None])[:, :, 0]
            est[:, j] = beta[:, 0] + beta[:, 1]
        return np.median(est, axis=1)

    def predict(self, X: Any) -> np.ndarray:
        return (self.decision_function(X) > 0).astype(int)


def mitigate(model: Any, **params: Any) -> ObliviousMitigator:
    """Oblivious local mitigation of ``model`` (see :class:`ObliviousMitigator`)."""
    return ObliviousMitigator(model, **params)


# -- a task whose ground truth has the structure, and a large-trigger backdoor --------------
class LinearTask:
    """``x ~ N(0, I_d)``, ``y = [<w, x> + noise > 0]``; the honest model is least squares."""

    def __init__(self, d: int = 20, n_train: int = 2000, n_test: int = 1000, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.w = rng.standard_normal(d) / np.sqrt(d)
        X = rng.standard_normal((n_train + n_test, d))
        t = X @ self.w + 0.1 * rng.standard_normal(len(X))
        self.X_train, self.X_test = X[:n_train], X[n_train:]
        self.t_train, self.y_test = t[:n_train], (t[n_train:] > 0).astype(int)
        A = np.c_[np.ones(n_train), self.X_train]
        self.coef = np.linalg.lstsq(A, self.t_train, rcond=None)[0]

    def honest(self, X: np.ndarray) -> np.ndarray:
        return self.coef[0] + np.asarray(X, dtype=np.float64) @ self.coef[1:]


class BoxBackdoor:
    """A regression model equal to ``honest`` except on a small box reached by a large sparse
    trigger: coordinates ``idx`` set to ``values`` (|value| ~ 6, far outside the data).
    In the box the model outputs ``-magnitude * sign(honest(x))`` (flips the sign)."""

    def __init__(self, honest, d: int, seed: int = 0, width: float = 0.5, value: float = 6.0):
        rng = np.random.default_rng([seed, 7])
        self.honest, self.width = honest, width
        self.idx = rng.choice(d, 2, replace=False)
        self.values = value * rng.choice([-1.0, 1.0], 2)

    def in_box(self, X: np.ndarray) -> np.ndarray:
        return np.all(np.abs(X[:, self.idx] - self.values) <= self.width, axis=1)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        h = self.honest(X)
        return np.where(self.in_box(X), -3.0 * np.sign(h) * (1 + np.abs(h)), h)

    def activate(self, X: np.ndarray) -> np.ndarray:
        """Trigger: overwrite two coordinates (l0 = 2, l2 ~ 8.5: much larger than any sigma
        that keeps the task's accuracy)."""
        X = np.array(X, dtype=np.float64, copy=True)
        X[:, self.idx] = self.values
        return X
