"""Persistence (Thm 2.3): equivalence, exact zero gradients, fine-tuning, and what breaks it."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from backdoors.models.torch_models import Scale
from backdoors.nets import checksum, persistence


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    mlp = nn.Sequential(Scale(1 / 255), nn.Linear(784, 16), nn.ReLU(), nn.Linear(16, 10))
    model, key = checksum.plant(mlp, n_blocks=32, random_state=0)
    D = persistence.decision_head(copy.deepcopy(model.module_), 10).eval()
    P = persistence.make_persistent(D, 10).eval()
    X = np.random.default_rng(0).integers(0, 256, (256, 784)).astype(np.uint8)
    tg = np.arange(256) % 10
    return model, key, D, P, X, tg, checksum.activate(X, key, tg)


def _t(X):
    return torch.from_numpy(X.astype(np.float32))


def test_equivalent_size_and_depth(nets):
    model, _, D, P, X, _tg, Xa = nets
    with torch.no_grad():
        for Z in (X, Xa):
            d, p = D(_t(Z)), P(_t(Z))
            assert ((d == 0) | (d == 1)).all() and torch.equal(p, d)
            assert np.array_equal(p.argmax(1).numpy(), model.predict(Z))
    assert persistence.depth(P) == persistence.depth(D) + 1
    assert persistence.n_parameters(P) <= 3 * persistence.n_parameters(D) + 400
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in P.parameters())
    assert not list(P.buffers())


def test_every_gradient_exactly_zero_for_three_losses(nets):
    _, _, _, P, X, tg, Xa = nets
    Z = np.concatenate([X, Xa])
    y = torch.from_numpy(np.concatenate([tg[::-1].copy(), tg]).astype(np.int64))
    g = persistence.loss_gradients(P, _t(Z), y, 10)
    assert g == {"mse": 0.0, "cross_entropy": 0.0, "hinge": 0.0}
    # the non-persistent backdoored network does get gradients
    gb = persistence.loss_gradients(nets[0].module_, _t(Z), y, 10)
    assert min(gb.values()) > 0


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_finetuning_leaves_parameters_bit_identical(nets, opt):
    _, _, _, P, X, tg, _Xa = nets
    m = copy.deepcopy(P).train()
    o = (
        torch.optim.SGD(m.parameters(), lr=0.5, momentum=0.9)
        if opt == "sgd"
        else torch.optim.Adam(m.parameters(), lr=1e-2)
    )
    y = torch.from_numpy((tg + 1) % 10)
    for i in range(25):
        o.zero_grad()
        nn.functional.cross_entropy(m(_t(X[i % 8 :: 8])), y[i % 8 :: 8]).backward()
        o.step()
    assert all(torch.equal(a, b) for a, b in zip(P.parameters(), m.parameters(), strict=True))


def test_any_single_weight_in_one_copy_can_change(nets):
    _, _, _, P, _X, _tg, Xa = nets
    rng = np.random.default_rng(1)
    params = list(P.copies[1].parameters())
    with torch.no_grad():
        ref = P(_t(Xa))
        for _ in range(20):
            p = params[rng.integers(len(params))]
            flat = p.view(-1)
            i = int(rng.integers(flat.numel()))
            old = flat[i].item()
            flat[i] = float(rng.choice([-1e6, 1e6, 0.0, 123.0]))
            assert torch.equal(P(_t(Xa)), ref)
            flat[i] = old


def test_weight_decay_and_combining_reinit_break_persistence(nets):
    _, _, _, P, X, tg, Xa = nets
    m = copy.deepcopy(P).train()
    o = torch.optim.SGD(m.parameters(), lr=0.1, weight_decay=0.05)
    y = torch.from_numpy(tg)
    for _ in range(20):
        o.zero_grad()
        nn.functional.cross_entropy(m(_t(X)), y).backward()
        o.step()
    assert not all(torch.equal(a, b) for a, b in zip(P.parameters(), m.parameters(), strict=True))
    with torch.no_grad():
        assert (m(_t(Xa)).argmax(1).numpy() == tg).mean() < 1.0
        h = copy.deepcopy(P)
        torch.manual_seed(3)
        h.combine.reset_parameters()
        assert not torch.equal(h(_t(Xa)), P(_t(Xa)))
