"""Random-ReLU sparse-PCA backdoor: learner contract, coins, plant/activate, detectors, CLI."""

from __future__ import annotations

import json
import stat

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import check_estimator

from backdoors import metrics, relu
from backdoors.artifacts import files
from backdoors.cli import main
from backdoors.detectors import DETECTORS, Evidence
from backdoors.errors import InvalidInputError, KeyMismatchError, NotApplicableError
from backdoors.evaluation.recipes import ATTACKS
from backdoors.evaluation.recipes.relu import ReLUPoint
from backdoors.evaluation.scoring import run_detector
from backdoors.experiments.relu_map import flip_rates, population
from backdoors.hazmat.sampling import GaussianCoins


@pytest.fixture
def seeded_secrets(monkeypatch):
    """Replay fixed streams where plant would use fresh OS randomness (secret, planted weights),
    so that statistical assertions on one small model do not depend on the secret drawn."""
    seq = np.random.SeedSequence(2024)
    monkeypatch.setattr(relu, "fresh_rng", lambda: np.random.default_rng(seq.spawn(1)[0]))


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


def test_honest_and_backdoored_differ_only_in_coins(task, tmp_path):
    Xtr, ytr, _, _ = task
    est = relu.RandomReLUClassifier(n_hidden=50, random_state=7)
    h = clone(est).fit(Xtr, ytr)
    b, key = relu.plant(est, Xtr, ytr, sparsity=10, theta=3.0)
    assert b.get_params() == h.get_params() == est.get_params() and "coins" not in b.get_params()
    assert not hasattr(est, "weights_")  # plant clones, never fits the argument
    # honest fit == the one training path with the Gaussian sampler on the seed's stream
    rng = np.random.default_rng([7, 0])
    h2 = relu.fit_with_coins(clone(est), Xtr, ytr, GaussianCoins(), rng)
    assert np.array_equal(h2.weights_, h.weights_) and h2.threshold_ == h.threshold_
    # theta = 0 on the same stream: the spiked learner is bit-identical to the honest one
    coins0 = relu.spiked_coins(list(key.support), list(key.values), 0.0)
    b0 = relu.fit_with_coins(clone(est), Xtr, ytr, coins0, np.random.default_rng([7, 0]))
    assert np.array_equal(h.weights_, b0.weights_) and h.threshold_ == b0.threshold_
    # theta > 0 on the same stream: only the rank-one update (and scale) differ
    coins = relu.spiked_coins(list(key.support), list(key.values), 3.0)
    b3 = relu.fit_with_coins(clone(est), Xtr, ytr, coins, np.random.default_rng([7, 0]))
    d, nu = Xtr.shape[1], key.nu
    c = np.sqrt(d / (d + 3.0))
    expect = c * (h.weights_ + (np.sqrt(4.0) - 1) * np.outer(h.weights_ @ nu, nu))
    np.testing.assert_allclose(b3.weights_, expect, rtol=1e-12, atol=1e-12)
    # plant itself draws the weights from an independent stream: nothing diffs against h
    assert not np.any(np.all(np.isclose(b.weights_, c * h.weights_), axis=0))
    s = b.score_relu(Xtr)
    assert (b.threshold_, b.orientation_) == relu._threshold_rule(s, (ytr == b.classes_[1]))
    # saved files: same kind, metadata, names, dtypes, shapes; only the trained arrays differ
    kh, th, mh = files.read_artifact(files.save_model(h, tmp_path / "h.st"))
    kb, tb, mb = files.read_artifact(files.save_model(b, tmp_path / "b.st"))
    assert (kh, mh) == (kb, mb) and sorted(th) == sorted(tb)
    assert all(th[n].dtype == tb[n].dtype and th[n].shape == tb[n].shape for n in th)
    assert {n for n in th if not np.array_equal(th[n], tb[n])} <= {
        "weights",
        "threshold",
        "orientation",
    }
    assert not np.array_equal(th["weights"], tb["weights"])


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
    model, key = relu.plant(
        relu.RandomReLUClassifier(n_hidden=50, random_state=1),
        Xtr,
        ytr,
        sparsity=12,
        theta=2.0,
        lam=3.0,
    )
    norms = metrics.perturbation_norms(Xte, relu.activate(Xte, key))
    assert (norms["l0"] == 12).all() and np.allclose(norms["l2"], 3.0)
    files.save_model(model, tmp_path / "m.safetensors")
    files.save_key(key, tmp_path / "k.json")
    assert stat.S_IMODE((tmp_path / "k.json").stat().st_mode) == 0o600
    m2, k2 = files.load_model(tmp_path / "m.safetensors"), files.load_key(tmp_path / "k.json")
    assert k2 == key and np.array_equal(m2.predict(Xte), model.predict(Xte))
    k2.check_model(m2)
    other, _ = relu.plant({"n_hidden": 50, "random_state": 1}, Xtr, ytr, sparsity=12, theta=2.0)
    with pytest.raises(KeyMismatchError):
        key.check_model(other)
    with pytest.raises(InvalidInputError):
        key.activate(Xte[:, :10])
    with pytest.raises(InvalidInputError):
        key.activate(Xte, target=1)
    lin, _lkey = relu.plant(relu.honest_model("linear", 50, 1), Xtr, ytr, sparsity=12, theta=2.0)
    files.save_model(lin, tmp_path / "l.safetensors")
    assert np.array_equal(
        files.load_model(tmp_path / "l.safetensors").predict(Xte), lin.predict(Xte)
    )
    with pytest.raises(InvalidInputError):
        relu.honest_model("nope", 50)
    with pytest.raises(InvalidInputError, match="random-ReLU"):
        relu.plant(relu.RandomReLUClassifier, Xtr, ytr)


def test_backdoor_beats_random_direction_and_keeps_accuracy(seeded_secrets):
    p = ReLUPoint(d=800, m=40, k=40, theta=2.5, n_train=300, n_test=500)
    pop = population(p, 6, seed=0)
    assert pop["fb"].mean() >= pop["fr"].mean() + 0.3
    assert pop["fb"].mean() >= 0.75
    assert abs(pop["acc_b"].mean() - pop["acc_h"].mean()) <= 0.03
    # the honest model is a sensible norm classifier
    assert pop["acc_h"].mean() >= 0.6


def test_flip_is_one_sided(task, seeded_secrets):
    Xtr, ytr, Xte, _ = task
    model, key = relu.plant(
        relu.RandomReLUClassifier(n_hidden=200, random_state=3), Xtr, ytr, sparsity=20, theta=3.0
    )
    s0, s1 = model.score_relu(Xte), model.score_relu(key.activate(Xte))
    assert np.mean(s1 > s0) > 0.9  # the push raises the score for almost every input
    f = flip_rates(model, key, Xte, np.random.default_rng(0))
    # near-threshold inputs: the key flips clearly more of them than a random direction of the
    # same norm, and (one-sided) essentially only towards the high-score side
    assert f["n"] >= 50 and f["backdoor"] >= f["random"] + 0.25
    assert model.decision_function(key.activate(Xte)).mean() > model.decision_function(Xte).mean()


def _scores(name, n, **point):
    att = ATTACKS.get("relu")(ReLUPoint(n_train=100, n_test=10, **point))
    det = DETECTORS.get(name)(k=point["k"])
    neg, pos = [], []
    for s in range(n):
        b = att.build(s, True)
        neg.append(run_detector(det, att.build(s, False).model, Evidence(key=b.key)).score)
        pos.append(run_detector(det, b.model, Evidence(key=b.key)).score)
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
            DETECTORS.get(name)().check(NoWeights(), Evidence())


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
    key = files.load_key(tmp_path / "k.json")
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
