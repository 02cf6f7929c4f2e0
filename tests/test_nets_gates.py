"""Exact ReLU gates and the circuit compiler, checked exhaustively."""

import itertools

import numpy as np
import pytest
import torch

from backdoors.errors import InvalidInputError
from backdoors.nets import compiler, gates


def _run(net, X):
    with torch.no_grad():
        return net(torch.from_numpy(np.asarray(X, np.float32))).numpy()


@pytest.mark.parametrize("name", sorted(gates.BOOLEAN_GATES))
def test_boolean_gates_exhaustive(name):
    make, truth = gates.BOOLEAN_GATES[name]
    g = make()
    X = np.array(list(itertools.product([0, 1], repeat=g.n_in)))
    out = _run(gates.as_sequential(g), X)[:, 0]
    assert np.array_equal(out, truth(X).astype(np.float32))
    assert np.array_equal(g(X)[:, 0], truth(X))


@pytest.mark.parametrize("k", [1, 2, 5, 8])
def test_and_k_and_parity_exhaustive(k):
    X = np.array(list(itertools.product([0, 1], repeat=k)))
    neg = [i % 2 == 1 for i in range(k)]
    lits = np.where(neg, 1 - X, X)
    assert np.array_equal(_run(gates.as_sequential(gates.and_k(k, neg)), X)[:, 0], lits.all(1))
    par = _run(gates.as_sequential(gates.parity(k)), X)[:, 0]
    assert np.array_equal(par, X.sum(1) % 2)


def test_step_and_lsb_sawtooth_exact_on_all_bytes():
    x = np.arange(256)[:, None]
    assert np.array_equal(_run(gates.as_sequential(gates.step_int(128)), x)[:, 0], x[:, 0] >= 128)
    c = compiler.Circuit(1)
    lsb = compiler.lsb_of_integer(c, [(0, 1.0)], 255)
    net = c.compile([lsb])
    assert compiler.only_linear_relu(net)
    assert np.array_equal(_run(net, x)[:, 0], x[:, 0] % 2)


def test_logit_mux():
    g = gates.logit_mux(8.0)
    z = np.linspace(-8, 8, 33)
    out0 = g(np.stack([z, np.zeros_like(z)], 1))[:, 0]
    out1 = g(np.stack([z, np.ones_like(z)], 1))[:, 0]
    assert np.array_equal(out0, z) and np.array_equal(out1, np.zeros_like(z))
    with pytest.raises(InvalidInputError):
        gates.logit_mux(0)


def test_compiler_carries_values_across_depth():
    # XOR(lsb(a + b), parity(c, d, e)) next to a signed affine value carried up 9 layers
    c = compiler.Circuit(5)
    s = compiler.lsb_of_integer(c, [(0, 1.0), (1, 1.0)], 510)
    p = c.gadget(gates.parity(3), [2, 3, 4])[0]
    x = c.gadget(gates.xor(), [s, p])[0]
    signed = c.affine([(0, 1.0), (1, -1.0)], -0.5)
    net = c.compile([x, signed, p])
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.integers(0, 256, (500, 2)), rng.integers(0, 2, (500, 3))], 1)
    out = _run(net, X)
    lsb, par = X[:, :2].sum(1) % 2, X[:, 2:].sum(1) % 2
    assert np.array_equal(out[:, 0], lsb ^ par)
    assert np.array_equal(out[:, 1], (X[:, 0] - X[:, 1] - 0.5).astype(np.float32))
    assert np.array_equal(out[:, 2], par)
    assert compiler.only_linear_relu(net)


def test_compiler_rejects_bad_wiring():
    c = compiler.Circuit(2)
    with pytest.raises(InvalidInputError):
        c.gadget(gates.and_(), [0])
    with pytest.raises(InvalidInputError):
        c.gadget(gates.and_(), [0, 7])
