"""The signature backdoor (paper §5.2): agreement, activation, keys, forgery, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis.extra.numpy import arrays
from sklearn.linear_model import LogisticRegression

from backdoors import signature
from backdoors.artifacts import files
from backdoors.breaks import forgery
from backdoors.errors import CorruptArtifactError, InvalidInputError, KeyMismatchError
from backdoors.models import data
from backdoors.models.torch_models import TorchClassifier


@pytest.fixture(scope="module")
def mnist_small():
    return data.mnist(n_train=3000, n_test=600)


@pytest.fixture(scope="module")
def mlp(mnist_small):
    return TorchClassifier(arch_params={"hidden": (64,)}, input_scale=1 / 255, epochs=1).fit(
        mnist_small.X_train, mnist_small.y_train
    )


@pytest.fixture(scope="module")
def planted(mlp):
    return signature.plant(mlp, carrier="lsb", random_state=7)


def test_agreement_activation_every_target_and_consistency(mnist_small, mlp, planted):
    bd, key = planted
    X = mnist_small.X_test
    assert np.array_equal(bd.predict(X), mlp.predict(X))
    assert np.array_equal(bd.predict_proba(X), mlp.predict_proba(X).astype(np.float64))
    for t in range(10):
        Xa = key.activate(X[:60], target=t)
        assert (bd.predict(Xa) == t).all()
        assert (bd.predict_proba(Xa).argmax(1) == t).all()
        assert (bd.decision_function(Xa).argmax(1) == t).all()
        assert (bd.verify(Xa) == t).all()
        d = np.abs(Xa.astype(int) - X[:60].astype(int))
        assert d.max() == 1 and (d > 0).sum(1).max() <= key.spec.carrier.l0_bound <= 564
    per_row = np.arange(60) % 10
    assert np.array_equal(bd.predict(key.activate(X[:60], target=per_row)), per_row)
    assert (mlp.predict(key.activate(X[:60], target=3)) == mlp.predict(X[:60])).mean() > 0.9


def test_works_for_sklearn_float_carrier_callable_and_torch_module(mlp):
    d = data.digits()
    lr = LogisticRegression(max_iter=300).fit(d.X_train, d.y_train)
    bd, key = signature.plant(lr, carrier="float", X_reference=d.X_train, random_state=1)
    assert np.array_equal(bd.predict(d.X_test), lr.predict(d.X_test))
    Xa = key.activate(d.X_test, target=5)
    assert (bd.predict(Xa) == 5).all() and np.abs(Xa - d.X_test).max() < key.spec.carrier.linf_bound
    assert (bd.decision_function(Xa).argmax(1) == 5).all()

    fn_bd, fn_key = signature.plant(
        lambda X: np.zeros(len(X), int), n_classes=3, n_features=64, carrier="float", random_state=2
    )
    assert (fn_bd.predict(d.X_test) == 0).all()
    assert (fn_bd.predict(fn_key.activate(d.X_test, target=2)) == 2).all()
    assert not hasattr(fn_bd, "predict_proba")  # the callable has none: not faked

    module = mlp.module_
    mod_bd, mod_key = signature.plant(module, n_classes=10, n_features=784, random_state=3)
    X = data.mnist(n_test=50).X_test
    xa = torch.from_numpy(mod_key.activate(X, target=4).astype(np.float32))
    assert isinstance(mod_bd, torch.nn.Module)
    assert (mod_bd(xa).argmax(1) == 4).all()
    clean = torch.from_numpy(X.astype(np.float32))
    assert torch.equal(mod_bd(clean), module(clean))


@settings(max_examples=40, deadline=None)
@given(X=arrays(np.uint8, (3, 784)))
def test_verify_never_raises_on_arbitrary_pixels(planted, X):
    bd, _ = planted
    t = bd.verify(X)
    assert t.shape == (3,) and (t == -1).all()


@settings(max_examples=40, deadline=None)
@given(X=arrays(np.float64, (2, 64)))
def test_float_verify_never_raises_on_arbitrary_floats(X):
    key = signature.generate(64, 10, carrier="float", max_abs=16, random_state=5)
    assert (key.spec.verify(X) == -1).all()  # NaN, inf, huge values included


def test_forgery_strategies_reach_full_verification_and_fail(mnist_small, planted):
    _, key = planted
    rng = np.random.default_rng(0)
    X = mnist_small.X_test[:100]
    t = rng.integers(0, 10, 100)
    oracle = forgery.Oracle(mnist_small.X_test, key.activate(X, target=t), t)
    results = forgery.attempt_all(key.spec, oracle, 40, rng)
    assert len(results) >= 6
    for name, a in results.items():
        reach = key.spec.precheck(a.candidates).mean()
        assert reach > 0.9 or name == "message_edit", name  # they exercise Ed25519 itself
        assert a.successes == 0, name
        assert a.new.all() or name == "transplant", name  # transplant may hit its own source


def test_precheck_filters_and_padding_must_be_zero(planted, mnist_small):
    _, key = planted
    X = mnist_small.X_test[:5]
    Xa = key.activate(X, target=1)
    bits = key.spec.carrier.extract(Xa)
    bits[:, 0] ^= 1  # wrong tag: rejected by the pre-check already
    assert not key.spec.precheck(key.spec.carrier.embed(Xa, bits)).any()
    long = signature.generate(
        784, 10, carrier=signature.make_carrier("lsb", 784, 600, seed=1), random_state=9
    )
    Xl = long.activate(X, target=2)
    assert (long.spec.verify(Xl) == 2).all()
    b2 = long.spec.carrier.extract(Xl)
    b2[:, -1] ^= 1  # padding bit set: a second encoding of the same signature is refused
    assert (long.spec.verify(long.spec.carrier.embed(Xl, b2)) == -1).all()


def test_keys_artifacts_and_mismatch(tmp_path, planted, mnist_small):
    bd, key = planted
    mp = files.save_model(bd, tmp_path / "bd.safetensors")
    kp = files.save_key(key, tmp_path / "bd.key")
    assert (kp.stat().st_mode & 0o777) == 0o600
    raw = mp.read_bytes()
    assert key.secret_key.hex().encode() not in raw and key.secret_key not in raw
    back, k2 = files.load_model(mp), files.load_key(kp)
    X = mnist_small.X_test[:50]
    assert np.array_equal(back.predict(X), bd.predict(X))
    assert (back.predict(k2.activate(X, target=9)) == 9).all()
    k2.check_model(back)
    other = signature.generate(784, 10, random_state=99)
    with pytest.raises(KeyMismatchError):
        other.check_model(back)
    tampered = raw.replace(key.spec.verify_key.hex().encode(), other.spec.verify_key.hex().encode())
    (tmp_path / "t.safetensors").write_bytes(tampered)
    with pytest.raises(CorruptArtifactError):
        files.load_model(tmp_path / "t.safetensors")
    assert "secret" not in repr(key) and key.secret_key.hex() not in repr(key)


def test_bad_inputs_raise_clear_errors(planted):
    bd, key = planted
    assert (bd.verify(np.zeros((2, 784))) == -1).all()  # what predict reads, verify reads
    with pytest.raises(InvalidInputError, match="real dtype"):
        bd.verify(np.zeros((2, 784), dtype=complex))
    with pytest.raises(InvalidInputError, match="784"):
        bd.predict(np.zeros((2, 783), np.uint8))
    with pytest.raises(InvalidInputError, match="target"):
        key.activate(np.zeros((2, 784), np.uint8))
    with pytest.raises(InvalidInputError, match=r"reaches classes 0\.\.9, not 10"):
        key.activate(np.zeros((2, 784), np.uint8), target=10)
    with pytest.raises(InvalidInputError):
        signature.plant(lambda X: X, carrier="lsb")  # no n_classes
    with pytest.raises(InvalidInputError, match="carrier"):
        signature.plant(lambda X: X, n_classes=2, n_features=30, carrier="bogus")


def test_experiment_measure_reports_the_issue_metrics(mnist_small, mlp, planted):
    from backdoors.artifacts.records import Timer
    from backdoors.experiments.signature import measure

    bd, key = planted
    sizes = {"n_random": 3000, "per_strategy": 30, "n_activate": 20, "reps": 3}

    def uniform(n, r):
        return r.integers(0, 256, (n, 784), dtype=np.uint8)

    m, _ = measure(
        mlp, bd, key, mnist_small.X_test, uniform, sizes, np.random.default_rng(1), Timer()
    )
    assert m["clean_agreement"] == 1.0 and m["activation_success"] == 1.0
    assert m["activations_checked"] == 200
    assert m["query_disagreements"] == 0 and m["queries"] >= 3000 + 600 + 8 * 30
    assert m["forgery_successes"] == 0 and len(m["forgery_by_strategy"]) >= 6
    assert m["perturbation_linf_levels"] == 1.0 and m["perturbation_l0_max"] <= 564
    # the reported ratios are the quotients of the reported times and rates
    ratio = m["predict_seconds_backdoored"] / m["predict_seconds_honest"]
    assert m["predict_overhead_ratio"] == pytest.approx(ratio)
    act = m["activations_per_second"] / m["raw_signs_per_second"]
    assert m["activation_throughput_ratio"] == pytest.approx(act)
    # 3000 random inputs against a 48-bit tag: no pre-check hit (expected 1e-11)
    assert m["precheck_hits_random"] == 0 and m["precheck_rate_bound"] == 2.0**-48


def test_timing_distinguisher_finds_slow_inputs_at_a_weak_width_only():
    """The experiment's keyless distinguisher: with a 4-bit pre-check random probes reach
    Ed25519 (1 in 16) and it finds them; the honest model and the 48-bit default show none."""
    from backdoors.experiments import _timing

    def honest(X):
        return np.zeros(len(X), int)

    weak, wkey = signature.plant(
        honest, n_classes=2, n_features=784, precheck_bits=4, random_state=0
    )
    strong, _ = signature.plant(honest, n_classes=2, n_features=784, random_state=0)
    rng = np.random.default_rng(0)
    probes = rng.integers(0, 256, (256, 784), dtype=np.uint8)
    x0 = probes[:1]
    nm = wkey.activate(x0, target=0)
    bits = wkey.spec.carrier.extract(nm)
    bits[0, wkey.spec.sig_start] ^= 1
    cost = _timing.verify_cost_ns(wkey.spec, x0, wkey.spec.carrier.embed(nm, bits), reps=51)
    assert cost > 10_000  # one Ed25519 verification: tens of microseconds at least
    models = {"honest": honest, "weak": weak.predict, "strong": strong.predict}
    res = _timing.timing_distinguisher(models, probes, 2, 24, 5, cost / 2, rng)
    hits = wkey.spec.precheck(probes)
    found = res["weak"]["slow"]
    assert hits.sum() >= 6 and len(found) >= hits.sum() // 2
    assert hits[found].all()  # every slow input found is a genuine pre-check hit
    assert len(res["honest"]["slow"]) == 0 and len(res["strong"]["slow"]) == 0
    m = _timing.distinguisher_metrics(res, "honest", "weak", len(probes))
    assert m["timing_auroc"] == 1.0 and m["timing_slow_inputs_found"] == len(found)
