"""The coin backdoors' secrets, attacked the way an outsider would (white-box).

An attacker holds the saved file, the public API and (worst case) the seed the user passed.
They rebuild every honest coin that can be rebuilt from that, diff it against the stored coins,
turn the diff into a key and try it. On the original code each attack recovered the key
exactly (flip rate 1.0 for RFF, overlap 1.0 for ReLU); here the recovered "key" must do no
better than a random direction.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from backdoors import relu, rff
from backdoors.artifacts import files
from backdoors.hazmat.sampling import Coins, random_unit, sparse_support

SEED = 7


@pytest.fixture(scope="module")
def rff_task():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((700, 128))  # d >> k, so chance support overlap is ~k^2/d = 2
    y = (X[:, 0] * X[:, 1] + 0.5 * np.sin(3 * X[:, 2]) > 0).astype(int)
    return X[:500], y[:500], X[500:]


@pytest.fixture(scope="module")
def relu_task():
    rng = np.random.default_rng(1)
    Xtr, ytr = relu.norm_task(300, 400, rng)
    return Xtr, ytr


def _flip(model, X, Z) -> float:
    f, fz = model.decision_function(X), model.decision_function(Z)
    return float(np.mean(np.sign(fz) != np.sign(f)))


def _rff_diff_key(G_stored, G_rebuilt, k, gamma, scale):
    """The published attack: the k columns that differ most are the support; the diff is rank
    one on them (planted = honest - (Yu)u^T + t u^T), so its top right singular vector is u."""
    D = G_stored - G_rebuilt
    S = np.sort(np.argsort(-np.linalg.norm(D, axis=0))[:k])
    u = np.linalg.svd(D[:, S], full_matrices=False)[2][0]
    return rff.RFFKey(
        G_stored.shape[1], tuple(int(i) for i in S), tuple(map(float, u)), gamma, 1e-3, scale
    )


def test_rff_file_and_seed_do_not_give_the_key(rff_task, tmp_path):
    X, y, Xt = rff_task
    k = 16
    model, key = rff.plant(
        rff.RandomFourierFeaturesClassifier(n_components=400, random_state=SEED), X, y, sparsity=k
    )
    path = files.save_model(model, tmp_path / "m.safetensors")
    # attacker: the file alone, plus every seed it (or the in-memory model) could reveal
    _, tensors, meta = files.read_artifact(path)
    loaded = files.load_model(path)
    seeds = {
        meta["params"].get("random_state"),
        loaded.get_params()["random_state"],
        model.get_params()["random_state"],
        SEED,
    } - {None}
    assert seeds == {SEED}  # only the seed the attacker was told (the file stores none)
    params = {p: v for p, v in meta["params"].items() if p != "random_state"}
    gamma = 2 * np.sqrt(k)  # the default: the attacker may assume it
    true_flip = _flip(loaded, Xt, key.activate(Xt))
    assert true_flip > 0.9
    for s in seeds:
        rebuilt = rff.RandomFourierFeaturesClassifier(**params, random_state=s).fit(X, y)
        assert np.array_equal(rebuilt.phases_, tensors["phases"])  # public randomness: shared
        guess = _rff_diff_key(
            tensors["frequencies"], rebuilt.frequencies_, k, gamma, float(meta["bandwidth"])
        )
        assert len(set(guess.support) & set(key.support)) <= k // 2
        flip = _flip(loaded, Xt, guess.activate(Xt))
        assert 0.25 < flip < 0.75, flip  # like a random direction (true key: > 0.9)


def test_relu_seed_and_weights_do_not_give_the_key(relu_task):
    Xtr, ytr = relu_task
    d, k, theta = Xtr.shape[1], 20, 2.0
    model, key = relu.plant(
        relu.RandomReLUClassifier(n_hidden=50, random_state=SEED), Xtr, ytr, sparsity=k, theta=theta
    )
    # plant never invents a seed of its own and keeps it in the model (random_state=None
    # stays None), and an unseeded estimator gives an unseeded model
    unseeded, _ = relu.plant(relu.RandomReLUClassifier(n_hidden=50), Xtr, ytr, sparsity=k)
    assert unseeded.get_params()["random_state"] is None
    seeds = {model.get_params()["random_state"], SEED} - {None}
    for s in seeds:
        # the original key derivation from the model's seed: stream [seed, 1]
        rng = np.random.default_rng([int(s), 1])
        S, u = sparse_support(d, k, rng), random_unit(k, rng)
        assert len(set(S.tolist()) & set(key.support)) <= k // 2
        # weight diff against the honest weights regenerated from the seed
        h = relu.RandomReLUClassifier(n_hidden=50, random_state=s).fit(Xtr, ytr)
        D = model.weights_ - np.sqrt(d / (d + theta)) * h.weights_
        nu_hat = np.linalg.svd(D, full_matrices=False)[2][0]
        assert abs(nu_hat @ key.nu) < 0.5  # the original code gave 1.0 here
        nu_u = np.zeros(d)
        nu_u[S] = u
        assert abs(nu_u @ key.nu) < 0.5


@pytest.mark.parametrize("construction", ["rff", "relu"])
def test_secret_is_in_no_parameter_attribute_repr_clone_or_skops(construction, rff_task, relu_task):
    if construction == "rff":
        X, y, _ = rff_task
        est = rff.RandomFourierFeaturesClassifier(n_components=200, random_state=SEED)
        model, key = rff.plant(est, X, y, sparsity=8)
        secret_values = key.direction
    else:
        X, y = relu_task
        est = relu.RandomReLUClassifier(n_hidden=40, random_state=SEED)
        model, key = relu.plant(est, X, y, sparsity=10)
        secret_values = key.values
    honest = clone(est).fit(X, y)
    assert model.get_params() == honest.get_params() == clone(model).get_params()
    assert repr(model) == repr(honest) == repr(est)
    assert "coins" not in model.get_params()
    assert sorted(vars(model)) == sorted(vars(honest))  # same public attribute names
    for name, value in vars(model).items():
        assert not isinstance(value, Coins), name
        assert not isinstance(value, tuple | list) or not set(key.support) <= set(value), name
    raw = files.sklearn_to_bytes(model).tobytes()
    for v in secret_values:
        assert repr(v).encode() not in raw and np.float64(v).tobytes() not in raw
    assert b"Coins" not in raw and b"support" not in raw
