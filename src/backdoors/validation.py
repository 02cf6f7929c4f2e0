"""Input validation shared by every model and construction (clear errors, never silent casts)."""

from __future__ import annotations

import numpy as np

from backdoors.errors import InvalidInputError

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
