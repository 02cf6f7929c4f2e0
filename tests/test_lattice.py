"""The primal lattice attack on RFF frequencies (detectors/lattice.py) and its cost model."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from backdoors import rff
from backdoors.detectors import DETECTORS, Evidence
from backdoors.detectors.lattice import LatticeDetector, embedding_basis, lattice_attack
from backdoors.errors import NotApplicableError
from backdoors.rff.lattice_cost import delta, required_block_size, usvp_margin

needs_fpylll = pytest.mark.skipif(
    importlib.util.find_spec("fpylll") is None, reason="fpylll not installed (extra 'lattice')"
)


def _task(d: int, n: int = 600, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    return X, y


def test_registered_and_rff_only():
    assert DETECTORS.get("lattice") is LatticeDetector
    X, y = _task(8)
    relu_like = type("W", (), {"weights_": np.zeros((10, 8))})()
    assert not LatticeDetector().applies_to(relu_like)
    h = rff.RandomFourierFeaturesClassifier(n_components=80, random_state=0).fit(X, y)
    assert LatticeDetector().applies_to(h)


@needs_fpylll
def test_recovers_key_and_flips_inputs():
    """d = 20, m = 300, k = 8, LLL only: the recovered direction is +-bk and activates."""
    X, y = _task(20)
    model, key = rff.plant(
        rff.RandomFourierFeaturesClassifier(n_components=300, random_state=1), X, y, sparsity=8
    )
    det = LatticeDetector(block_size=2, noise=1e-3, secret_norm=key.gamma)
    res = det.recover(model, Evidence(seed=0))
    assert res.recovered and res.score > 0.99
    err = min(np.linalg.norm(res.direction - key.bk), np.linalg.norm(res.direction + key.bk))
    assert err < 0.05 * key.gamma
    f = model.decision_function(X)
    fa = model.decision_function(res.activate(X, model.bandwidth_))
    assert np.mean(np.sign(fa) != np.sign(f)) > 0.95


@needs_fpylll
def test_honest_frequencies_score_low():
    X, y = _task(20)
    det = LatticeDetector(block_size=2, noise=1e-3, secret_norm=2 * np.sqrt(8))
    for seed in range(2):
        h = rff.RandomFourierFeaturesClassifier(n_components=300, random_state=seed).fit(X, y)
        res = det.recover(h, Evidence(seed=seed))
        assert not res.recovered and res.direction is None
        assert res.score < 0.4  # null sd 1/sqrt(2 * 60) = 0.09, max over ~60 candidates


def test_missing_fpylll_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "fpylll", None)  # makes `import fpylll` fail
    with pytest.raises(NotApplicableError, match="backdoors\\[lattice\\]"):
        lattice_attack(np.random.default_rng(0).standard_normal((200, 8)))


@needs_fpylll
def test_too_few_rows_or_too_large_is_not_applicable():
    G = np.random.default_rng(0).standard_normal((60, 40))
    with pytest.raises(NotApplicableError, match="rows"):
        lattice_attack(G)
    with pytest.raises(NotApplicableError, match="too large"):
        lattice_attack(np.zeros((3000, 784)) + 1.0, max_rank=400)


def test_embedding_contains_the_planted_vector():
    """(2P t, 2P C K^T t, P) with t = <g_i, bk> rounded to Z + 1/2 is an integer combination
    of the basis rows (the Kannan construction), and it is short."""
    key = rff.generate(12, 4, random_state=0)
    G = key.coins.sample(40, 12, np.random.default_rng(1))
    B = np.array(embedding_basis(G, 100.0, 16), dtype=np.float64)
    t = np.floor(G @ key.bk) + 0.5
    coeff = np.concatenate([t - 0.5, [1.0]])
    v = coeff @ B
    assert np.allclose(v[:40], 32 * t)
    assert v[-1] == 16
    assert np.linalg.norm(v[40:-1]) < 0.2 * np.linalg.norm(v[:40])


def test_cost_model_monotone():
    assert delta(2) > delta(20) > delta(60) > delta(200) > 1
    # more noise -> larger block size; the planted point of the outside evaluation is easy
    easy = required_block_size(64, 1000, 8.0, 1e-3, held_out=200)
    hard = required_block_size(64, 1000, 8.0, 1e-2, held_out=200)
    assert easy.block_size is not None and hard.block_size is not None
    assert easy.block_size <= 30 < hard.block_size
    assert usvp_margin(64, 200, 8.0, 1e-3, 30) > usvp_margin(64, 200, 8.0, 1e-3, 10)


@needs_fpylll
def test_regime_map_tiny_point_is_broken_not_undetected():
    """At d = 16 the lattice recovers the key (proven by activation), the estimate agrees,
    and the map does not call the point undetected; at beta = 0.1 the flip is gone."""
    from backdoors.experiments.rff_map import regime_map

    sizes = {
        "betas": (1e-3, 1e-1),
        "rows": [{"d": 16, "m": 200, "k": 4}],
        "pop": 1,
        "n_train": 300,
        "lattice": {
            "pop": 1,
            "block_size": 2,
            "max_seconds": 5.0,
            "points": {(16, 200, 4): (1e-3,)},
        },
    }
    low, high = regime_map(sizes, seed=0)
    assert low["lattice"]["key_recovery_rate"] == 1.0
    assert low["lattice"]["recovered_key_flip_rate"] > 0.9
    assert low["estimate_breaks_here"] and low["detected"]
    assert not low["effective_and_undetected"]
    assert "lattice" not in high
    assert high["flip_rate_all"] < low["flip_rate_all"] and not high["effective"]


@needs_fpylll
def test_a_reduction_that_kills_its_process_is_retried_then_reported(monkeypatch):
    """fplll can end the process it runs in (``std::runtime_error: infinite loop in babai``,
    seen in a full rff run at seed 1000): reductions run in a forked child, a dead child is
    retried with the next float type, and if every one dies the detector says so
    (not applicable, with the reason) instead of taking its worker down."""
    import os

    from backdoors.detectors import _bkz, lattice
    from backdoors.evaluation.scoring import run_detector

    real = _bkz._reduce_child
    tried = []
    # a process with onnxruntime thread pools alive (as in the full suite, or an audit of an
    # ONNX model): an exit() in the fork would run their atexit handlers and hang
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )  # fmt: skip
    model = helper.make_model(g, ir_version=9, opset_imports=[helper.make_opsetid("", 18)])
    sess = ort.InferenceSession(model.SerializeToString())
    sess.run(None, {"x": np.zeros(1, np.float32)})
    assert onnx is not None

    def dies_on_auto(conn, rows, step):
        if step["float_type"] is None:
            os.abort()  # as fplll's uncaught C++ exception does
        real(conn, rows, step)

    rows = [[3, 1, 0], [1, 4, 1], [0, 1, 5]]
    monkeypatch.setattr(_bkz, "_reduce_child", dies_on_auto)
    out = lattice.isolated_reduction(rows, {"kind": "lll"})
    vol = abs(np.linalg.det(np.array(rows, float)))
    assert abs(abs(np.linalg.det(np.array(out, float))) - vol) < 1e-6  # same lattice volume
    assert min(np.linalg.norm(out, axis=1)) <= min(np.linalg.norm(rows, axis=1))

    def always_dies(conn, rows, step):
        tried.append(step["float_type"])
        os.abort()

    monkeypatch.setattr(_bkz, "_reduce_child", always_dies)
    with pytest.raises(lattice.ReductionCrashError, match="every float type"):
        lattice.isolated_reduction(rows, {"kind": "lll"})
    X, y = _task(8)
    h = rff.RandomFourierFeaturesClassifier(n_components=60, random_state=0).fit(X, y)
    res = run_detector(LatticeDetector(max_seconds=1.0), h, Evidence(seed=0))
    assert res.status == "not_applicable" and "failed numerically" in res.reason
