"""TorchClassifier keeps scikit-learn's estimator contract (DESIGN.md, Contracts: Models)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.utils.estimator_checks import check_estimator

from backdoors.errors import InvalidInputError
from backdoors.models.torch_models import TorchClassifier


def test_check_estimator_passes():
    """Every check of scikit-learn's conformance suite (a configuration that trains enough
    on the suite's small data sets: 40 epochs, lr 1e-2)."""
    est = TorchClassifier(epochs=40, lr=1e-2, arch_params={"hidden": (32,)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(est, on_fail=None)
    failed = [
        (r["check_name"], str(r["exception"])[:200]) for r in results if r["status"] == "failed"
    ]
    assert not failed, failed


def test_binary_decision_function_follows_sklearn_and_keeps_float32():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (200, 16)).astype(np.uint8)
    y = (X[:, 0] > 127).astype(int)
    est = TorchClassifier(epochs=5, input_scale=1 / 255, arch_params={"hidden": (8,)}).fit(X, y)
    df, z = est.decision_function(X), est.logits(X)
    assert df.shape == (200,) and df.dtype == np.float32 and z.shape == (200, 2)
    np.testing.assert_array_equal(est.predict(X), est.classes_[(df > 0).astype(int)])
    with pytest.raises(InvalidInputError, match="features"):  # a ValueError too
        est.predict(X[:, :5])
