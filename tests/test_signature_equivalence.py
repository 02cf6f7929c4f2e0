"""Black-box undetectability of the signature wrappers (paper §5.2), as a property:
on every input without a valid trigger the backdoored model answers exactly what the honest
model answers -- same values, dtype, shape and type, and the same exception type where the
honest model raises. Input kinds: dtypes, empty, unbatched, 3-D, wrong width, lists,
non-contiguous arrays, NaN/inf, and near misses (activated inputs with one signature bit
flipped, which pass the pre-check and reach Ed25519). Model kinds: a scikit-learn estimator
(LSB and float carriers), a TorchClassifier, an ``nn.Module`` in float32 and in bfloat16.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from backdoors import signature
from backdoors.models import data

D = 784


@pytest.fixture(scope="module")
def models(mnist_small, mnist_mlp):
    warnings.simplefilter("ignore", ConvergenceWarning)
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (300, D), dtype=np.uint8)
    y = (X[:, :10].sum(1) > X[:, 10:20].sum(1)).astype(int) + 2 * (X[:, 0] > 127)
    lr = LogisticRegression(max_iter=30).fit(X, y)
    tc = copy.deepcopy(mnist_mlp)  # the session's small MNIST MLP (10 classes)
    bc = data.breast_cancer()
    lrf = LogisticRegression(max_iter=500).fit(bc.X_train, bc.y_train)
    mod = tc.module_
    mod16 = copy.deepcopy(mod).to(torch.bfloat16)
    mnist = mnist_small.X_test[:300]
    out = {}
    for name, honest, kw, pool in (
        ("sklearn_lsb", lr, {}, X),
        ("torch_classifier", tc, {}, mnist),
        ("sklearn_float", lrf, {"carrier": "float", "X_reference": bc.X_train}, bc.X_test),
        ("module_float32", mod, {"n_classes": 10, "n_features": D}, mnist),
        ("module_bfloat16", mod16, {"n_classes": 10, "n_features": D}, mnist),
    ):
        bd, key = signature.plant(honest, random_state=1, **kw)
        out[name] = (honest, bd, key, pool)
    return out


def near_misses(key: signature.SignatureKey, X: np.ndarray, rng: np.random.Generator):
    """Activated rows with one signature bit flipped: pre-check passes, Ed25519 fails."""
    Xa = key.activate(X, target=rng.integers(0, key.spec.n_classes, len(X)))
    bits = key.spec.carrier.extract(Xa)
    s0 = key.spec.payload_bits - key.spec.sig_bits
    bits[np.arange(len(X)), s0 + rng.integers(0, key.spec.sig_bits, len(X))] ^= 1
    return key.spec.carrier.embed(Xa, bits)


def draw_input(draw, key, pool: np.ndarray, torch_input: bool, bf16: bool):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    d = pool.shape[1]
    n = draw(st.sampled_from([0, 1, 3]))
    content = draw(st.sampled_from(["natural", "near_miss", "uniform", "wild"]))
    rows = pool[rng.integers(0, len(pool), n)]
    if content == "near_miss" and n:
        rows = near_misses(key, rows, rng)
    elif content == "uniform":
        rows = rng.integers(0, 256, (n, d)).astype(pool.dtype)
    elif content == "wild":
        rows = rng.standard_normal((n, d)) * 10.0 ** rng.integers(-3, 6)
        if n:
            rows.flat[rng.integers(0, rows.size, 2)] = rng.choice([np.nan, np.inf, -np.inf, -0.0])
    shape = draw(st.sampled_from(["2d", "unbatched", "3d", "narrow"]))
    if shape == "unbatched":
        rows = rows[0] if n else np.zeros(d, pool.dtype)
    elif shape == "3d":
        rows = np.stack([rows, rows])
    elif shape == "narrow":
        rows = rows[..., :-1]
    dtypes = ["uint8", "int64", "float32", "float64", "bool"] + (["bfloat16"] if bf16 else [])
    dtype = draw(st.sampled_from([*dtypes, "same", "same"]))
    with np.errstate(invalid="ignore", over="ignore"):
        if dtype not in ("same", "bfloat16"):
            rows = rows.astype(dtype)
    layout = draw(st.sampled_from(["array", "non_contiguous", "list"]))
    if layout == "non_contiguous" and rows.ndim >= 1:
        rows = np.asfortranarray(rows) if rows.ndim == 2 else rows[..., ::-1][..., ::-1]
        rows = np.repeat(rows, 2, axis=-1)[..., ::2]
    if not torch_input:
        return rows.tolist() if layout == "list" else rows
    t = torch.from_numpy(np.ascontiguousarray(rows))
    if dtype == "bfloat16":
        t = t.to(torch.bfloat16)
    return t.t() if (layout == "non_contiguous" and t.ndim == 2) else t


def outcome(f, X):
    try:
        return "ok", f(X)
    except Exception as exc:  # the exception *type* is part of the behaviour
        return "raise", type(exc)


def assert_same(a, b):
    assert a[0] == b[0], (a, b)
    if a[0] == "raise":
        assert a[1] is b[1]
        return
    x, y = a[1], b[1]
    assert type(x) is type(y)
    if torch.is_tensor(x):
        torch.testing.assert_close(x, y, rtol=0, atol=0, equal_nan=True)  # checks dtype too
        return
    x, y = np.asarray(x), np.asarray(y)
    assert x.dtype == y.dtype and x.shape == y.shape
    np.testing.assert_array_equal(x, y)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the honest log(0) on wild inputs
@pytest.mark.parametrize(
    "kind",
    ["sklearn_lsb", "torch_classifier", "sklearn_float", "module_float32", "module_bfloat16"],
)
@settings(max_examples=50, deadline=None)
@given(st.data())
def test_backdoored_equals_honest_on_every_untriggered_input(models, kind, data):
    honest, bd, key, pool = models[kind]
    is_module = kind.startswith("module")
    X = draw_input(data.draw, key, pool, torch_input=is_module, bf16=kind == "module_bfloat16")
    if is_module:
        with torch.no_grad():
            assert_same(outcome(honest, X), outcome(bd, X))
        return
    for method in ("predict", "predict_proba", "predict_log_proba", "decision_function"):
        assert hasattr(honest, method) == hasattr(bd, method), method
        if hasattr(honest, method):
            assert_same(outcome(getattr(honest, method), X), outcome(getattr(bd, method), X))
    y = np.zeros(len(X) if np.ndim(X) else 0, dtype=int)
    assert_same(outcome(lambda X: honest.score(X, y), X), outcome(lambda X: bd.score(X, y), X))
