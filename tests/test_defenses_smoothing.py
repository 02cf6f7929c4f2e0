"""Smoothing (paper §6): vote, bounds, uint8 domain, reproducibility, artifacts, CLI."""

from __future__ import annotations

import numpy as np
import pytest

from backdoors import signature
from backdoors.artifacts import files
from backdoors.cli import main
from backdoors.defenses import DEFENSES
from backdoors.defenses.smoothing import immunize, lower_bound, noisy_copies
from backdoors.errors import InvalidInputError
from backdoors.models.adapters import CallableClassifier


def test_vote_of_a_threshold_rule_matches_gaussian_tail():
    h = CallableClassifier(lambda X: (X[:, 0] > 0).astype(int), classes=np.array([0, 1]))
    X = np.array([[-3.0], [-0.01], [0.01], [3.0]])
    sm = immunize(h, 1.0, n_samples=4000, seed=1)
    p = sm.predict_proba(X)[:, 1]
    from scipy.stats import norm

    assert np.allclose(p, norm.cdf(X[:, 0]), atol=0.03)
    assert sm.predict(X)[[0, 3]].tolist() == [0, 1]
    assert np.array_equal(sm.predict_proba(X), immunize(h, 1.0, 4000, seed=1).predict_proba(X))
    assert not np.array_equal(sm.predict_proba(X), immunize(h, 1.0, 4000, seed=2).predict_proba(X))
    r = sm.predict_with_bound(X)
    assert r["abstain"].tolist() == [False, True, True, False]


def test_bounds_are_below_the_estimate_and_cover():
    k = np.array([0, 10, 50, 100])
    for m in ("clopper-pearson", "hoeffding"):
        lb = lower_bound(k, 100, 0.05, m)
        assert np.all(lb <= k / 100) and np.all(lb >= 0)
    rng = np.random.default_rng(0)
    draws = rng.binomial(200, 0.7, 2000)
    assert np.mean(lower_bound(draws, 200) <= 0.7) >= 0.94
    with pytest.raises(InvalidInputError):
        lower_bound(k, 100, method="nope")


def test_uint8_noise_stays_in_domain():
    X = np.array([[0, 255, 128]], dtype=np.uint8).repeat(500, axis=0)
    Z = noisy_copies(X, 0.1, np.random.default_rng(0))
    assert Z.dtype == np.uint8
    assert abs(Z[:, 2].astype(float).std() - 25.5) < 2.5
    assert (Z[:, 0] == 0).mean() > 0.45  # clipped at the boundary


def test_smoothing_removes_the_signature_backdoor(mnist_small, mnist_mlp):
    ds, clf = mnist_small, mnist_mlp
    model, key = signature.plant(clf, carrier="lsb", random_state=0)
    X, y = ds.X_test[:40], ds.y_test[:40]
    tg = (model.predict(X) + 1) % 10
    Xa = signature.activate(X, key, target=tg)
    assert np.all(model.predict(Xa) == tg)
    sm = DEFENSES.get("smoothing")(model, 0.05, n_samples=15, seed=0)
    assert np.mean(sm.predict(Xa) == tg) <= 1 / 40
    assert np.mean(sm.predict(X) == y) >= np.mean(model.predict(X) == y) - 0.05


def test_artifact_roundtrip_and_cli(mnist_small, mnist_mlp, tmp_path):
    ds, clf = mnist_small, mnist_mlp
    files.save_model(clf, tmp_path / "m.safetensors")
    out = tmp_path / "imm.safetensors"
    assert (
        main(["immunize", str(tmp_path / "m.safetensors"), "--sigma", "-1", "--out", str(out)]) == 2
    )
    assert not out.exists()
    assert (
        main(
            [
                "immunize",
                str(tmp_path / "m.safetensors"),
                "--sigma",
                "0.05",
                "--samples",
                "8",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    loaded = files.load_model(out)
    ref = immunize(clf, 0.05, n_samples=8, seed=0)
    X = ds.X_test[:20]
    assert np.array_equal(loaded.predict(X), ref.predict(X))
    assert loaded.decision_function(X).shape == (20, 10)
