"""Random ReLU learner and its sparse-PCA backdoor: contract, coins-only difference, flips,
detectors, keys and CLI."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.utils.estimator_checks import check_estimator

from backdoors import io, relu
from backdoors.cli import main
from backdoors.detectors import DETECTORS, Evidence
from backdoors.errors import InvalidInputError, KeyMismatchError
from backdoors.experiments.relu import flip_window


@pytest.fixture(scope="module")
def task():
    return relu.norm_task(2000, 600, 600, seed=1)


def test_sklearn_estimator_contract():
    check_estimator(relu.RandomReLUClassifier(n_components=50, random_state=0))
    check_estimator(relu.RandomReLUClassifier(n_components=50, head="linear", random_state=0))


def test_threshold_rule_is_the_accuracy_maximiser():
    s = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    assert relu.best_threshold(s, np.array([0, 0, 1, 1, 1])) == pytest.approx(0.25)
    assert relu.best_threshold(s, np.array([1, 1, 1, 1, 1])) < 0.1


def test_honest_and_backdoored_differ_only_in_weights(task):
    X, y, _, _ = task
    h = relu.RandomReLUClassifier(100, random_state=5).fit(X, y)
    b, key = relu.plant(X, y, 100, 50, 4.0, 14.0, random_state=5, key_seed=1)
    off = np.setdiff1d(np.arange(2000), key.support)
    assert np.array_equal(h.weights_[:, off], b.weights_[:, off])
    b2 = relu.RandomReLUClassifier(100, coins=key.coins, random_state=5).fit(X, y)
    assert np.array_equal(b2.weights_, b.weights_) and b2.threshold_ == b.threshold_
    assert abs(np.linalg.norm(key.nu) - 1) < 1e-12 and np.count_nonzero(key.nu) == 50


def test_backdoor_beats_a_random_direction_and_the_key_aware_control_sees_it(task):
    X, y, Xt, _ = task
    rng = np.random.default_rng(0)
    adv, ka_h, ka_b = [], [], []
    det = DETECTORS.get("relu_key_aware")()
    for i in range(4):
        h = relu.RandomReLUClassifier(100, random_state=100 + i).fit(X, y)
        b, key = relu.plant(X, y, 100, 50, 4.0, 14.0, random_state=i, key_seed=i)
        f = flip_window(b, key, Xt, rng)
        adv.append(f["flip_rate_backdoor"] - f["flip_rate_random_direction"])
        ka_h.append(det.score(h, Evidence(key=key)))
        ka_b.append(det.score(b, Evidence(key=key)))
    assert np.mean(adv) > 0.3
    assert min(ka_b) > 2.0 > 0.5 > max(np.abs(ka_h))


def test_sparse_pca_detectors_catch_a_strong_spike(task):
    X, y, _, _ = task
    for name in ("diagonal_thresholding", "covariance_thresholding", "covariance_spectrum"):
        det = DETECTORS.get(name)()
        h = [
            det.score(relu.RandomReLUClassifier(100, random_state=i).fit(X, y), Evidence())
            for i in range(3)
        ]
        b = [
            det.score(
                relu.plant(X, y, 100, 10, 40.0, 14.0, random_state=i, key_seed=i)[0], Evidence()
            )
            for i in range(3)
        ]
        assert min(b) > max(h), name


def test_keys_artifacts_and_bad_input(task, tmp_path, capsys):
    X, y, Xt, _ = task
    with pytest.raises(InvalidInputError):
        relu.plant(X, y, 10, sparsity=2001)
    with pytest.raises(InvalidInputError):
        relu.plant(X, y, 10, theta=-1.0)
    io.save_array(tmp_path / "d.npz", X, y=y)
    io.save_array(tmp_path / "x.npy", Xt[:20])
    assert (
        main(
            [
                "plant",
                "relu",
                str(tmp_path / "d.npz"),
                "--out",
                str(tmp_path / "m.st"),
                "--key",
                str(tmp_path / "k.json"),
                "--seed",
                "0",
            ]
        )
        == 0
    )
    m, k = io.load_model(tmp_path / "m.st"), io.load_key(tmp_path / "k.json")
    k.check_model(m)
    with pytest.raises(KeyMismatchError):
        relu.generate(2000, 50, 4.0, 14.0, random_state=99).check_model(m)
    assert (
        main(
            [
                "activate",
                str(tmp_path / "m.st"),
                str(tmp_path / "k.json"),
                str(tmp_path / "x.npy"),
                "--out",
                str(tmp_path / "xa.npy"),
            ]
        )
        == 0
    )
    assert np.allclose(np.load(tmp_path / "xa.npy") - Xt[:20], 14.0 * k.nu)
    capsys.readouterr()
