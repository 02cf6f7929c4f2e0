"""RFF learner and its CLWE backdoor (paper §6): coins-only difference, flips, samplers, keys."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import check_estimator

from backdoors import rff
from backdoors.artifacts import files
from backdoors.breaks.toy_attack import recovered, search_secret
from backdoors.cli import main
from backdoors.detectors import DETECTORS, Evidence
from backdoors.errors import InvalidInputError, KeyMismatchError
from backdoors.hazmat.sampling import Coins, GaussianCoins, PancakeCoins, pancake_projection

RFF = rff.RandomFourierFeaturesClassifier


@dataclass(frozen=True)
class FixedCoins(Coins):
    """A sampler that returns a given matrix (to replay a model's frequencies)."""

    G: np.ndarray

    def sample(self, m, d, rng):
        return self.G.copy()


@pytest.fixture(scope="module")
def task():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((800, 32))
    y = (X[:, 0] * X[:, 1] + 0.5 * np.sin(3 * X[:, 2]) > 0).astype(int)
    return X[:600], y[:600], X[600:], y[600:]


def test_sklearn_estimator_contract():
    check_estimator(rff.RandomFourierFeaturesClassifier(n_components=100, random_state=0))


def test_honest_and_backdoored_differ_only_in_frequencies(task, tmp_path):
    X, y, _, _ = task
    est = RFF(n_components=500, bandwidth=12.0, alpha=1e-4, random_state=3)
    h = clone(est).fit(X, y)
    b, key = rff.plant(est, X, y, sparsity=8)
    # the planted model *is* the honest estimator: same parameters, same phases and bandwidth
    assert b.get_params() == h.get_params() == est.get_params() and "coins" not in b.get_params()
    assert np.array_equal(h.phases_, b.phases_) and h.bandwidth_ == b.bandwidth_
    assert b is not est and not hasattr(est, "coef_")  # plant clones, never fits the argument
    # honest fit == the one training path with the Gaussian sampler on the seed's stream
    h2 = rff.fit_with_coins(clone(est), X, y, GaussianCoins(), rff.coin_streams(3)[0])
    assert np.array_equal(h2.frequencies_, h.frequencies_) and np.array_equal(h2.coef_, h.coef_)
    # ... and the planted head is that same path given the planted frequencies, bit for bit
    b2 = rff.fit_with_coins(clone(est), X, y, FixedCoins(b.frequencies_))
    assert np.array_equal(b2.coef_, b.coef_)
    # the planted frequencies come from an independent stream: no column equals the honest one
    assert not np.any(np.all(h.frequencies_ == b.frequencies_, axis=0))
    phase = np.mod(b.frequencies_ @ key.bk, 1.0)
    assert np.abs(phase - 0.5).max() < 0.05  # and they are pancakes for the key
    # saved files: identical kind, metadata, names, dtypes, shapes; only frequencies/coef differ
    kh, th, mh = files.read_artifact(files.save_model(h, tmp_path / "h.st"))
    kb, tb, mb = files.read_artifact(files.save_model(b, tmp_path / "b.st"))
    assert (kh, mh) == (kb, mb) and sorted(th) == sorted(tb)
    assert all(th[n].dtype == tb[n].dtype and th[n].shape == tb[n].shape for n in th)
    assert {n for n in th if not np.array_equal(th[n], tb[n])} == {"frequencies", "coef"}


def test_activation_flips_margin_inputs_and_controls_do_not(task):
    X, y, Xt, _ = task
    b, key = rff.plant(
        RFF(n_components=800, bandwidth=12.0, alpha=1e-4, random_state=0), X, y, sparsity=8
    )
    f = b.decision_function(Xt)
    fa = b.decision_function(key.activate(Xt))
    eps = b.frequencies_ @ key.bk
    eps = eps - (np.floor(eps) + 0.5)
    bound = 2 * np.pi * np.sum(np.abs(b.coef_) * np.abs(eps))
    meets = np.abs(f) > bound
    assert meets.mean() > 0.5
    assert (np.sign(fa[meets]) == -np.sign(f[meets])).all()  # guaranteed by the margin bound
    assert np.abs(f + fa).max() <= bound + 1e-9
    f2 = b.decision_function(key.activate(Xt, multiple=2.0))
    assert np.mean(np.sign(f2) == np.sign(f)) > 0.95
    half = np.mean(np.sign(b.decision_function(key.activate(Xt, multiple=0.5))) != np.sign(f))
    assert 0.2 < half < 0.8


def test_pancake_sampler_matches_the_clwe_rejection_sampler():
    rng = np.random.default_rng(5)
    gamma, beta, tau = 4.0, 0.05, 0.02
    # rejection: t = <y,u> ~ N(0,1) kept when gamma t + e lands within tau of Z + 1/2
    t = rng.standard_normal(4_000_000)
    z = np.mod(gamma * t + beta * rng.standard_normal(t.size) - 0.5 + 0.5, 1.0) - 0.5
    acc = t[np.abs(z) < tau]
    assert 0.8 * 2 * tau < acc.size / t.size < 1.2 * 2 * tau  # acceptance ~ 2 tau
    exact = pancake_projection(acc.size, gamma, beta, 0.5, rng)
    bins = np.arange(-12, 13)
    h1 = np.histogram(np.floor(gamma * acc), bins)[0] / acc.size
    h2 = np.histogram(np.floor(gamma * exact), bins)[0] / exact.size
    assert np.abs(h1 - h2).max() < 0.01  # comb-index distributions agree
    phase = np.mod(gamma * exact, 1.0)
    assert np.abs(phase - 0.5).max() < 8 * beta


def test_pancake_coins_are_gaussian_off_the_secret():
    key = rff.generate(20, 4, random_state=0)
    G = key.coins.sample(20000, 20, np.random.default_rng(1))
    assert abs(G.mean()) < 0.02 and abs(G.std() - 1) < 0.02
    assert np.mean(np.abs(np.mod(G @ key.bk, 1) - 0.5) < 0.01) > 0.99


def test_detectors_key_aware_separates_and_toy_attack_recovers():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 8))
    y = (X[:, 0] > 0).astype(int)
    h = RFF(n_components=300, bandwidth=5.0, random_state=0).fit(X, y)
    b, key = rff.plant(RFF(n_components=300, bandwidth=5.0, random_state=0), X, y, sparsity=2)
    det = DETECTORS.get("rff_key_aware")()
    assert det.score(b, Evidence(key=key)) > 0.95 > 0.2 > abs(det.score(h, Evidence(key=key)))
    res = search_secret(b.frequencies_, 2, key.gamma)
    assert recovered(res, key.support, np.array(key.direction)) and res.score > 0.8
    assert search_secret(h.frequencies_, 2, key.gamma).score < 0.4


def test_invalid_parameters_and_keys(task, tmp_path):
    X, y, Xt, _ = task
    with pytest.raises(InvalidInputError, match="sparsity"):
        rff.plant(RFF(n_components=10), X, y, sparsity=33)
    with pytest.raises(InvalidInputError, match="gamma"):
        rff.plant(RFF(n_components=10), X, y, sparsity=4, gamma=-1)
    with pytest.raises(InvalidInputError):
        rff.plant(RFF(n_components=10), X, y, sparsity=4, beta=-0.1)
    with pytest.raises(InvalidInputError):
        rff.plant(RFF(n_components=0), X, y, sparsity=4)
    with pytest.raises(InvalidInputError, match="RandomFourierFeaturesClassifier"):
        rff.plant("rff", X, y)
    with pytest.raises(InvalidInputError, match="bandwidth"):
        RFF(n_components=10, bandwidth="mean").fit(X, y)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError):
        rff.plant(RFF(n_components=10), bad, y, sparsity=4)
    with pytest.raises(InvalidInputError):
        PancakeCoins((0, 1), (1.0,), 2.0, 0.1)
    b, key = rff.plant(
        {"n_components": 100, "bandwidth": 12.0, "random_state": 0}, X, y, sparsity=4
    )
    p = files.save_model(b, tmp_path / "m.st")
    files.save_key(key, tmp_path / "k.json")
    back, k2 = files.load_model(p), files.load_key(tmp_path / "k.json")
    assert k2 == key and np.array_equal(back.decision_function(Xt), b.decision_function(Xt))
    k2.check_model(back)
    # the file holds none of the secret: no support index list, no direction value (as text or
    # as float64 bytes), no seed, no coins
    raw = p.read_bytes()
    _, _, meta = files.read_artifact(p)
    assert "random_state" not in meta["params"] and "coins" not in meta["params"]
    for v in key.direction:
        assert repr(v).encode() not in raw and np.float64(v).tobytes() not in raw
    assert str(list(key.support)).encode() not in raw
    # check_model is a fingerprint: a different model with the same parameters, a decoy secret
    # and a key whose fingerprint was edited are all refused, with certainty
    other, _ = rff.plant(
        {"n_components": 100, "bandwidth": 12.0, "random_state": 0}, X, y, sparsity=4
    )
    for k, m in (
        (key, other),
        (rff.generate(32, 4, scale=12.0), back),
        (rff.RFFKey(**{**key.to_json_dict(), "model_fingerprint": "0" * 64}), back),
    ):
        with pytest.raises(KeyMismatchError):
            k.check_model(m)
    with pytest.raises(KeyMismatchError):
        key.check_model(RFF(n_components=100, bandwidth=12.0, random_state=0).fit(X, y))
    with pytest.raises(InvalidInputError):
        key.activate(Xt[:, :5])
    with pytest.raises(InvalidInputError, match="untargeted"):
        key.activate(Xt, target=1)
    with pytest.raises(InvalidInputError, match="untargeted"):
        rff.activate(Xt, key, target=0)


def test_cli_plant_rff_and_activate(task, tmp_path, capsys):
    X, y, Xt, _ = task
    files.save_array(tmp_path / "d.npz", X, y=y)
    files.save_array(tmp_path / "x.npy", Xt)
    assert (
        main(
            [
                "plant",
                "rff",
                str(tmp_path / "d.npz"),
                "--out",
                str(tmp_path / "m.st"),
                "--key",
                str(tmp_path / "k.json"),
                "--n-components",
                "200",
                "--sparsity",
                "4",
                "--seed",
                "0",
            ]
        )
        == 0
    )
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
    m = files.load_model(tmp_path / "m.st")
    flips = np.mean(m.predict(np.load(tmp_path / "xa.npy")) != m.predict(Xt))
    assert flips > 0.9
    capsys.readouterr()


SMALL_SETS = {"digits": 64, "breast_cancer": 30, "wine": 13}


def _small_set(name: str, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    import sklearn.datasets

    b = getattr(sklearn.datasets, f"load_{name}")()
    return b.data[:n].astype(np.float64), b.target[:n]


@pytest.mark.parametrize("name", sorted(SMALL_SETS))
def test_plant_says_when_the_lattice_attack_is_feasible_here(name):
    """At the defaults (k = min(64, d), beta = 1e-3, m = 1000) the cost model puts key
    recovery within this machine's reach on the three small data sets: ``plant`` warns, the
    key records block size and time. Above the window (d = 96) it stays quiet."""
    from backdoors.errors import WeakParametersWarning
    from backdoors.rff.lattice_cost import WINDOW_D

    X, y = _small_set(name)
    assert X.shape[1] == SMALL_SETS[name] < WINDOW_D
    with pytest.warns(WeakParametersWarning, match=r"(BKZ-\d+|LLL) on \d+ rows, about .* CPU s"):
        _, key = rff.plant(None, X, y)
    e = key.lattice_exposure
    assert e.feasible_here and e.block_size <= 30 and 0 < e.seconds < 600
    again = rff.RFFKey.from_json_dict(key.to_json_dict())
    assert (
        again.lattice_exposure == e and files.load_key(_OLD_RFF_KEY).lattice_exposure is None
    )  # 0.2.x keys


def test_plant_is_quiet_inside_the_window():
    import warnings

    from backdoors.errors import WeakParametersWarning

    rng = np.random.default_rng(0)
    X = rng.standard_normal((150, 96))
    with warnings.catch_warnings():
        warnings.simplefilter("error", WeakParametersWarning)
        _, key = rff.plant({"n_components": 1000}, X, (X[:, 0] > 0).astype(int))
    assert not key.lattice_exposure.feasible_here and key.lattice_exposure.block_size > 30


def test_cli_plant_rff_warns_in_one_line_on_stderr(tmp_path, capsys):
    X, y = _small_set("wine", 178)
    np.savez(tmp_path / "wine.npz", X=X, y=y)
    m, k = tmp_path / "m.safetensors", tmp_path / "k.key"
    assert main(["plant", "rff", str(tmp_path / "wine.npz"), "--out", str(m), "--key", str(k)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("backdoors: warning: ") and "d = 13" in err[0]
    assert files.load_key(k).lattice_exposure.feasible_here


_OLD_RFF_KEY = __import__("pathlib").Path(__file__).parent / "fixtures" / "keys_0_2" / "rff.key"
