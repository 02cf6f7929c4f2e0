"""Random-ReLU sparse-PCA backdoor: learner contract, coins, plant/activate, detectors, CLI."""

from __future__ import annotations

import json
import stat

import numpy as np
import pytest
from sklearn.utils.estimator_checks import check_estimator

from backdoors import io, metrics, relu
from backdoors.attacks import ATTACKS
from backdoors.attacks.relu import ReLUPoint
from backdoors.cli import main
from backdoors.detectors import DETECTORS, Evidence
from backdoors.errors import InvalidInputError, KeyMismatchError, NotApplicableError
from backdoors.experiments.relu_map import flip_rates, population


@pytest.fixture(scope="module")
def task():
    rng = np.random.default_rng(0)
    Xtr, ytr = relu.norm_task(300, 400, rng)
    Xte, yte = relu.norm_task(600, 400, rng)
    return Xtr, ytr, Xte, yte


@pytest.mark.parametrize(
    "est",
    [
        relu.RandomReLUClassifier(n_hidden=20, random_state=0),
        relu.RandomReLUClassifier(
            n_hidden=20, coins=relu.spiked_coins([0], [1.0], 3.0), random_state=0
        ),
        relu.RandomReLUFeaturesClassifier(n_hidden=20, random_state=0),
    ],
)
def test_check_estimator(est):
    check_estimator(est)


def test_threshold_rule_matches_brute_force():
    rng = np.random.default_rng(3)
    for _ in range(20):
        s, y = rng.normal(size=15), rng.integers(0, 2, 15)
        tau, o = relu._threshold_rule(s, y)
        best = max(
            np.mean((o2 * (s - t) > 0) == y) for o2 in (1, -1) for t in np.r_[s, s.min() - 1]
        )
        assert np.mean((o * (s - tau) > 0) == y) == pytest.approx(best)


def test_honest_and_backdoored_differ_only_in_coins(task):
    Xtr, ytr, _, _ = task
    h = relu.RandomReLUClassifier(50, random_state=7).fit(Xtr, ytr)
    # theta = 0: the spiked learner is bit-identical to the honest one with the same seed
    b0, _ = relu.plant(Xtr, ytr, 50, 10, theta=0.0, random_state=7)
    assert np.array_equal(h.weights_, b0.weights_) and h.threshold_ == b0.threshold_
    # theta > 0: same underlying Gaussian draw, only the rank-one update (and scale) differ
    b, key = relu.plant(Xtr, ytr, 50, 10, theta=3.0, random_state=7)
    d, nu = Xtr.shape[1], key.nu
    c = np.sqrt(d / (d + 3.0))
    expect = c * (h.weights_ + (np.sqrt(4.0) - 1) * np.outer(h.weights_ @ nu, nu))
    np.testing.assert_allclose(b.weights_, expect, rtol=1e-12, atol=1e-12)
    s = b.score_relu(Xtr)
    assert (b.threshold_, b.orientation_) == relu._threshold_rule(s, (ytr == b.classes_[1]))
    # the key stream does not depend on the weights' stream
    assert relu.draw_secret(d, 10, 7)[0].tolist() == list(key.support)


def test_spiked_coins_covariance():
    rng = np.random.default_rng(1)
    sup, val = relu.draw_secret(300, 15, 4)
    coins = relu.spiked_coins(sup, val, 3.0)
    G = coins.sample(20000, 300, rng)
    nu = np.zeros(300)
    nu[sup] = val
    c = 300 / 303
    assert np.mean((G @ nu) ** 2) == pytest.approx(c * 4.0, rel=0.05)
    assert np.mean(G * G) * 300 == pytest.approx(300.0, rel=0.01)  # trace-matched
    r = rng.standard_normal(300)
    r -= (r @ nu) * nu
    r /= np.linalg.norm(r)
    assert np.mean((G @ r) ** 2) == pytest.approx(c, rel=0.05)


def test_activate_perturbation_and_key_roundtrip(task, tmp_path):
    Xtr, ytr, Xte, _ = task
    model, key = relu.plant(Xtr, ytr, 50, 12, 2.0, lam=3.0, random_state=1)
    norms = metrics.perturbation_norms(Xte, relu.activate(Xte, key))
    assert (norms["l0"] == 12).all() and np.allclose(norms["l2"], 3.0)
    io.save_model(model, tmp_path / "m.safetensors")
    io.save_key(key, tmp_path / "k.json")
    assert stat.S_IMODE((tmp_path / "k.json").stat().st_mode) == 0o600
    m2, k2 = io.load_model(tmp_path / "m.safetensors"), io.load_key(tmp_path / "k.json")
    assert k2 == key and np.array_equal(m2.predict(Xte), model.predict(Xte))
    k2.check_model(m2)
    other, _ = relu.plant(Xtr, ytr, 50, 12, 2.0, random_state=2)
    with pytest.raises(KeyMismatchError):
        key.check_model(other)
    with pytest.raises(InvalidInputError):
        key.activate(Xte[:, :10])
    with pytest.raises(InvalidInputError):
        key.activate(Xte, target=1)
    lin, _lkey = relu.plant(Xtr, ytr, 50, 12, 2.0, head="linear", random_state=1)
    io.save_model(lin, tmp_path / "l.safetensors")
    assert np.array_equal(io.load_model(tmp_path / "l.safetensors").predict(Xte), lin.predict(Xte))
    with pytest.raises(InvalidInputError):
        relu.plant(Xtr, ytr, 50, 12, 2.0, head="nope")


def test_backdoor_beats_random_direction_and_keeps_accuracy():
    p = ReLUPoint(d=800, m=40, k=40, theta=2.5, n_train=300, n_test=500)
    pop = population(p, 6, seed=0)
    assert pop["fb"].mean() >= pop["fr"].mean() + 0.3
    assert pop["fb"].mean() >= 0.75
    assert abs(pop["acc_b"].mean() - pop["acc_h"].mean()) <= 0.03
    # the honest model is a sensible norm classifier
    assert pop["acc_h"].mean() >= 0.6


def test_flip_is_one_sided(task):
    Xtr, ytr, Xte, _ = task
    model, key = relu.plant(Xtr, ytr, 50, 20, 3.0, random_state=3)
    s0, s1 = model.score_relu(Xte), model.score_relu(key.activate(Xte))
    assert np.mean(s1 > s0) > 0.9  # the push raises the score for almost every input
    f = flip_rates(model, key, Xte, np.random.default_rng(0))
    assert f["n"] > 0 and 0 <= f["random"] <= 1


def _scores(name, n, **point):
    att = ATTACKS.get("relu")(ReLUPoint(n_train=100, n_test=10, **point))
    det = DETECTORS.get(name)(k=point["k"])
    neg, pos = [], []
    for s in range(n):
        b = att.build(s, True)
        neg.append(det.score(att.build(s, False).model, Evidence(key=b.key)))
        pos.append(det.score(b.model, Evidence(key=b.key)))
    return metrics.auroc(neg, pos)


def test_key_aware_control_and_detectors_at_strong_spike():
    weak = {"d": 600, "m": 60, "k": 60, "theta": 2.0}
    assert _scores("relu_key_aware", 8, **weak) == 1.0
    strong = {"d": 600, "m": 300, "k": 5, "theta": 8.0}
    for name in ("spectral_bbp", "diagonal_thresholding", "covariance_thresholding",
                 "truncated_power"):  # fmt: skip
        assert _scores(name, 6, **strong) >= 0.9, name


def test_detectors_not_applicable_without_weights():
    class NoWeights:
        pass

    for name in ("spectral_bbp", "covariance_thresholding", "relu_key_aware"):
        with pytest.raises(NotApplicableError):
            DETECTORS.get(name)().score(NoWeights(), Evidence())


def test_cli_plant_relu(tmp_path, capsys):
    X, y = relu.norm_task(120, 200, np.random.default_rng(0))
    np.savez(tmp_path / "tr.npz", X=X, y=y)
    np.save(tmp_path / "x.npy", X[:5])
    args = ["plant", "relu", str(tmp_path / "tr.npz"), "-o", str(tmp_path / "m.safetensors"),
            "--key", str(tmp_path / "k.json"), "--hidden", "30", "--sparsity", "10",
            "--seed", "0"]  # fmt: skip
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["sparsity"] == 10
    assert main(args) == 2  # refuses to overwrite the key
    bad = [*args[:2], str(tmp_path / "tr.npz"), "-o", str(tmp_path / "m2.safetensors"),
           "--key", str(tmp_path / "k2.json"), "--sparsity", "999"]  # fmt: skip
    assert main(bad) == 2
    assert not (tmp_path / "m2.safetensors").exists() and not (tmp_path / "k2.json").exists()
    act = ["activate", str(tmp_path / "m.safetensors"), str(tmp_path / "k.json"),
           str(tmp_path / "x.npy"), "-o", str(tmp_path / "xa.npy")]  # fmt: skip
    assert main(act) == 0
    key = io.load_key(tmp_path / "k.json")
    np.testing.assert_allclose(np.load(tmp_path / "xa.npy"), X[:5] + key.lam * key.nu)


@pytest.mark.slow
def test_experiment_quick_record(tmp_path):
    from backdoors import experiments

    rec = experiments.run("relu", quick=True, seed=0, out_dir=tmp_path)
    m = rec["metrics"]
    for k in ("accuracy_gap", "flip_rate_backdoor", "flip_rate_random_direction",
              "auroc_key_aware", "auroc_key_oblivious", "auroc_key_oblivious_ci",
              "perturbation_l0", "perturbation_l2_over_x", "fit_time_ratio", "sweep"):  # fmt: skip
        assert k in m
    assert m["auroc_key_aware"] >= 0.99 and m["perturbation_l0"] == 100
    assert (tmp_path / "relu_map.png").is_file()
