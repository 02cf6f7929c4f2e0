"""Input validation shared by every model and construction (clear errors, never silent casts),
and the declarative parameter validation of the package's learners."""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions, validate_parameter_constraints
from sklearn.utils._param_validation import InvalidParameterError as _SklearnParameterError

from backdoors.errors import InvalidInputError, InvalidParameterError

#: Constraint building blocks for ``_parameter_constraints`` (scikit-learn's declarative form).
POSITIVE_INT = Interval(Integral, 1, None, closed="left")
NONNEGATIVE_INT = Interval(Integral, 0, None, closed="left")
POSITIVE_REAL = Interval(Real, 0, None, closed="neither")
NONNEGATIVE_REAL = Interval(Real, 0, None, closed="left")
#: What :func:`backdoors.contract.as_generator` accepts (the one seed convention).
RANDOM_STATE = [None, Integral, np.random.Generator, np.random.RandomState, np.random.SeedSequence]
__all__ = ["NONNEGATIVE_INT", "NONNEGATIVE_REAL", "POSITIVE_INT", "POSITIVE_REAL", "RANDOM_STATE",
           "StrOptions", "check_features", "check_params"]  # fmt: skip


def check_params(estimator: Any) -> None:
    """Validate ``estimator.get_params(deep=False)`` against the class's declared
    ``_parameter_constraints`` (scikit-learn's declarative parameter validation; called first
    in ``fit``, never in ``__init__``). Raises :class:`InvalidParameterError` naming the
    parameter, the constraint and the value."""
    constraints = getattr(type(estimator), "_parameter_constraints", None)
    if not constraints:
        raise TypeError(f"{type(estimator).__name__} declares no _parameter_constraints")
    try:
        validate_parameter_constraints(
            constraints, estimator.get_params(deep=False), caller_name=type(estimator).__name__
        )
    except _SklearnParameterError as e:
        raise InvalidParameterError(str(e)) from None


_NUMERIC = "biuf"


def check_features(
    X: np.ndarray,
    n_features: int | None = None,
    dtype: np.dtype | type | None = None,
    allow_empty: bool = False,
) -> np.ndarray:
    """Return ``X`` as a 2-D numeric array, or raise :class:`InvalidInputError`.

    Checks: numeric dtype (bool/int/uint/float; ``dtype`` pins one exactly), two dimensions,
    ``n_features`` columns, finite values.
    """
    if hasattr(X, "detach"):  # torch tensor
        X = X.detach().cpu().numpy()
    X = np.asarray(X)
    if X.dtype.kind not in _NUMERIC:
        raise InvalidInputError(f"inputs must be numeric, got dtype {X.dtype}")
    if dtype is not None and X.dtype != np.dtype(dtype):
        raise InvalidInputError(f"inputs must have dtype {np.dtype(dtype)}, got {X.dtype}")
    if X.ndim != 2:
        raise InvalidInputError(f"inputs must be 2-D (n_samples, n_features), got shape {X.shape}")
    if n_features is not None and X.shape[1] != n_features:
        raise InvalidInputError(f"inputs must have {n_features} features, got {X.shape[1]}")
    if not allow_empty and X.shape[0] == 0:
        raise InvalidInputError("inputs are empty")
    if X.dtype.kind == "f" and not np.isfinite(X).all():
        raise InvalidInputError("inputs contain NaN or inf")
    return X
