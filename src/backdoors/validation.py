"""Input validation shared by every model and construction (clear errors, never silent casts),
and the declarative parameter validation of the package's learners."""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    StrOptions,
    _Constraint,
    make_constraint,
    validate_parameter_constraints,
)
from sklearn.utils._param_validation import InvalidParameterError as _SklearnParameterError

from backdoors.errors import InvalidInputError, InvalidParameterError

#: Constraint building blocks for ``_parameter_constraints`` (scikit-learn's declarative form).
POSITIVE_INT = Interval(Integral, 1, None, closed="left")
NONNEGATIVE_INT = Interval(Integral, 0, None, closed="left")
POSITIVE_REAL = Interval(Real, 0, None, closed="neither")
NONNEGATIVE_REAL = Interval(Real, 0, None, closed="left")
#: What :func:`backdoors.contract.as_generator` accepts (the one seed convention).
RANDOM_STATE = [None, Integral, np.random.Generator, np.random.RandomState, np.random.SeedSequence]
#: A file path argument.
PATH = [str, os.PathLike]
__all__ = [
    "NONNEGATIVE_INT",
    "NONNEGATIVE_REAL",
    "PATH",
    "POSITIVE_INT",
    "POSITIVE_REAL",
    "RANDOM_STATE",
    "Array",
    "HasMethods",
    "Integral",
    "Interval",
    "Real",
    "StrOptions",
    "check_features",
    "check_labels",
    "check_params",
    "validate_args",
]  # fmt: skip


class Array(_Constraint):
    """Constraint: something ``np.asarray`` turns into an array of one of ``kinds`` (numpy
    dtype kinds; default real numbers and bools) with ``ndim`` dimensions (any if ``None``),
    optionally ``length`` entries and every value ``>= low``. Torch tensors are read through
    ``.detach().cpu().numpy()``."""

    def __init__(
        self,
        ndim: int | None = None,
        kinds: str = "biuf",
        length: int | None = None,
        low: float | None = None,
    ) -> None:
        super().__init__()
        self.ndim, self.kinds, self.length, self.low = ndim, kinds, length, low

    def is_satisfied_by(self, val: Any) -> bool:
        if isinstance(val, str | bytes | dict) or val is None:
            return False
        try:
            a = np.asarray(val.detach().cpu().numpy() if hasattr(val, "detach") else val)
        except Exception:  # ragged lists, sparse layouts, exotic objects
            return False
        if a.dtype.kind not in self.kinds or (self.ndim is not None and a.ndim != self.ndim):
            return False
        if self.length is not None and (a.ndim != 1 or len(a) != self.length):
            return False
        return self.low is None or not a.size or bool((a >= self.low).all())

    def __str__(self) -> str:
        dims = "an array-like of" if self.ndim is None else f"a {self.ndim}-D array-like of"
        if self.length is not None:
            dims = f"a list of {self.length}"
        what = {"biuf": "real numbers", "iu": "integers"}.get(self.kinds, f"kinds {self.kinds!r}")
        low = "" if self.low is None else f" >= {self.low:g}"
        return f"{dims} {what}{low}"


def validate_args(constraints: dict[str, list[Any]]) -> Callable[[Callable], Callable]:
    """Decorator: validate a public function's arguments against ``constraints`` (parameter
    name -> list of accepted constraints, scikit-learn's declarative form as in
    ``_parameter_constraints``) before it runs; an argument outside them raises
    :class:`InvalidParameterError` naming the parameter, the constraints and the value."""

    def deco(func: Callable) -> Callable:
        sig = inspect.signature(func)
        unknown = set(constraints) - set(sig.parameters)
        if unknown:
            raise TypeError(f"{func.__qualname__} has no parameters {sorted(unknown)}")

        checks = {
            k: [c if isinstance(c, _Constraint) else make_constraint(c) for c in v]
            for k, v in constraints.items()
        }

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            for name, accepted in checks.items():
                value = bound.arguments[name]
                if not any(c.is_satisfied_by(value) for c in accepted):
                    raise InvalidParameterError(
                        f"the {name!r} parameter of {func.__qualname__} must be "
                        f"{_describe(accepted)}; got {_short(value)}"
                    )
            return func(*args, **kwargs)

        return wrapper

    return deco


def _describe(accepted: list[Any]) -> str:
    shown = [str(c) for c in accepted if not getattr(c, "hidden", False)]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"


def _short(value: Any) -> str:
    if isinstance(value, np.ndarray) or hasattr(value, "detach"):
        return f"{type(value).__name__} of dtype {value.dtype} and shape {tuple(value.shape)}"
    r = repr(value)
    return f"{type(value).__name__} {r[:60]}{'...' if len(r) > 60 else ''}"


def check_labels(y: Any, n: int) -> np.ndarray:
    """``y`` as a 1-D array of ``n`` class labels (integers, strings or integral floats)."""
    if not Array(ndim=1, kinds="biuUSf").is_satisfied_by(y):
        raise InvalidInputError("y must be a 1-D array-like of class labels")
    y = np.asarray(y)
    if len(y) != n:
        raise InvalidInputError(f"y must have one label per row of X ({n}), got {len(y)}")
    if y.dtype.kind == "f" and not (np.isfinite(y).all() and (y == np.round(y)).all()):
        raise InvalidInputError("float labels must be finite integers")
    return y


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
