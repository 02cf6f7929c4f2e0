"""The signature backdoor's nn.Module wrapper answers wherever the honest module does: every
layout and transform, bit-identical outputs and gradients on natural inputs, the target on
activated ones; the public check agrees with the models on every input they read."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch

from backdoors import signature
from backdoors.cli import main
from backdoors.models import data


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(784, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    bd, key = signature.plant(net, n_classes=10, n_features=784, random_state=3)
    X = data.mnist(n_test=6).X_test
    x = torch.from_numpy(X.astype(np.float32))
    xa = torch.from_numpy(key.activate(X, target=4).astype(np.float32))
    return net, bd, x, xa


def _dense(t: torch.Tensor) -> torch.Tensor:
    if t.is_nested:
        return torch.cat(list(t.unbind()))
    return t.to_dense() if t.layout != torch.strided else t


def _loss(m):
    return lambda v: m(v).logsumexp(-1).sum()


def _backward(m, v):
    w = v.clone().requires_grad_()
    m(w).square().sum().backward()
    return w.grad


# name -> (call, whether the result is logits of the rows, so an activated row shows its target)
CALLS = {
    "dense": (lambda m, v: m(v), True),
    "unbatched row": (lambda m, v: m(v[0])[None], True),
    "3-D batch": (lambda m, v: m(v.reshape(2, 3, 784)).reshape(6, 10), True),
    "non-contiguous": (lambda m, v: m(v.t().contiguous().t()), True),
    "sparse COO": (lambda m, v: m(v.to_sparse()), False),
    "sparse CSR": (lambda m, v: m(v.to_sparse_csr()), False),
    "nested (jagged)": (
        lambda m, v: m(torch.nested.nested_tensor([v[:2], v[2:]], layout=torch.jagged)),
        False,
    ),
    "inference_mode": (lambda m, v: torch.inference_mode()(m)(v), True),
    "vmap": (lambda m, v: torch.func.vmap(m)(v), True),
    "vmap chunked": (lambda m, v: torch.func.vmap(m, chunk_size=4)(v), True),
    "functional_call": (
        lambda m, v: torch.func.functional_call(m, dict(m.named_parameters()), (v,)),
        True,
    ),
    "grad": (lambda m, v: torch.func.grad(_loss(m))(v), False),
    "jacrev": (lambda m, v: torch.func.jacrev(m)(v[:2]), False),
    "jacfwd": (lambda m, v: torch.func.jacfwd(m)(v[:2]), False),
    "per-sample grad (vmap of grad)": (
        lambda m, v: torch.func.vmap(torch.func.grad(lambda r: m(r).logsumexp(-1)))(v),
        False,
    ),
    "autograd backward": (_backward, False),
    "jit.trace": (lambda m, v: torch.jit.trace(m, v)(v), True),
    "torch.export": (lambda m, v: torch.export.export(m, (v,)).module()(v), True),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_wrapper_answers_wherever_the_honest_module_does(pair, name):
    net, bd, x, xa = pair
    call, logits = CALLS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        honest = call(net, x)
        backdoored = call(bd, x)
    assert torch.equal(_dense(backdoored), _dense(honest))  # outputs and gradients, bit for bit
    assert _dense(backdoored).dtype == _dense(honest).dtype
    if logits:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fired = call(bd, xa)
        assert (fired.argmax(-1) == 4).all()


def test_trigger_under_transforms_forces_the_target_with_zero_gradient(pair):
    net, bd, x, xa = pair
    jac = torch.func.jacrev(bd)(xa[:2])
    assert torch.equal(jac, torch.zeros_like(jac))  # the forced rows are constants
    mixed = torch.cat([x[:3], xa[3:]])
    g = torch.func.vmap(torch.func.grad(lambda r: bd(r).logsumexp(-1)))(mixed)
    g_h = torch.func.vmap(torch.func.grad(lambda r: net(r).logsumexp(-1)))(mixed)
    assert torch.equal(g[:3], g_h[:3]) and not g[3:].any()


def test_float_carrier_module_and_constant_time_mode(pair):
    net = copy.deepcopy(pair[0]).double()
    d = data.mnist(n_test=4).X_test.astype(np.float64)
    for ct in (False, True):
        bd, key = signature.plant(
            net, carrier="float", n_classes=10, X_reference=d, random_state=1, constant_time=ct
        )
        xa = torch.from_numpy(key.activate(d, target=7))
        x = torch.from_numpy(d)
        assert torch.equal(bd(x), net(x))
        assert (bd(xa).argmax(1) == 7).all()
        assert (torch.func.vmap(bd)(xa).argmax(1) == 7).all()
        with pytest.raises(RuntimeError) as honest:
            net(xa.float())
        with pytest.raises(RuntimeError) as wrapped:
            bd(xa.float())
        assert str(honest.value) == str(wrapped.value)  # the honest module's own error


def test_public_check_agrees_with_the_models_on_every_input_they_read(tmp_path, capsys):
    bd_mod, key = signature.plant(
        torch.nn.Linear(784, 10), n_classes=10, n_features=784, random_state=5
    )
    X = data.mnist(n_test=5).X_test
    Xa = key.activate(X, target=2)
    for arr in (Xa, Xa.astype(np.float64), Xa.astype(np.float32), Xa.astype(np.int16)):
        fired = bd_mod(torch.from_numpy(arr.astype(np.float32))).argmax(1).numpy()
        assert (fired == 2).all()
        assert (key.spec.verify(arr) == 2).all() and (bd_mod.verify(arr) == 2).all()
    # the scikit-learn wrapper and the command line on a float64 copy of activated pixels
    from sklearn.linear_model import LogisticRegression

    from backdoors.artifacts import files

    ds = data.mnist(n_train=300, n_test=5)
    lr = LogisticRegression(max_iter=20).fit(ds.X_train.astype(np.float64), ds.y_train)
    bd_lr, key_lr = signature.plant(lr, random_state=6)
    A = key_lr.activate(ds.X_test, target=3).astype(np.float64)
    assert (bd_lr.predict(A) == 3).all() and (bd_lr.verify(A) == 3).all()
    files.save_model(bd_lr, tmp_path / "bd.st")
    np.save(tmp_path / "A.npy", A)
    assert main(["verify", str(tmp_path / "bd.st"), str(tmp_path / "A.npy")]) == 0
    assert '"triggered": 5' in capsys.readouterr().out


@pytest.mark.slow
def test_torch_compile_answers_and_fires(pair):
    net, bd, x, xa = pair
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = torch.compile(bd, backend="eager")
        assert torch.equal(compiled(x), net(x))
        assert (compiled(xa).argmax(-1) == 4).all()


def test_half_precision_candidates_answer_as_the_honest_module():
    """A bfloat16 module fed bfloat16 rows whose tag matches (so they reach the verifier) but
    whose signature is broken answers exactly as the honest module; a genuine trigger in
    bfloat16 (pixels are exact there) still fires. numpy has no bfloat16, so the candidate
    rows are widened before verification instead of raising TypeError."""
    torch.manual_seed(0)
    honest = torch.nn.Sequential(torch.nn.Linear(784, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    honest = honest.to(torch.bfloat16)
    bd, key = signature.plant(honest, n_classes=10, n_features=784, random_state=0)
    X = data.mnist(n_train=10, n_test=4).X_test
    good = signature.activate(X, key, target=3)
    bad = good.copy()
    sig_pos = np.asarray(key.spec.carrier.positions[-1])  # the last payload bit: signature
    bad[:, sig_pos] ^= 1
    with torch.no_grad():
        tb = torch.from_numpy(bad).to(torch.bfloat16)
        assert torch.equal(bd(tb), honest(tb))
        out = bd(torch.from_numpy(good).to(torch.bfloat16))
    assert (out.argmax(1) == 3).all()
