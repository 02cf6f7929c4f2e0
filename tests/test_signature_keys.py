"""Signature backdoor keys and carriers (paper §5.2): non-replicability at the edges.

Every test here failed on the original main (1d38629): low-bit replays of float triggers,
activation at the carrier's range limit, seed-derived keys found by brute force, the secret
key type accepted by the wrapper, the import cycle, a fixed 16-bit pre-check.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from backdoors import signature
from backdoors.errors import InvalidInputError
from backdoors.models import data
from backdoors.signature.models import SignatureBackdooredClassifier, wrap


@pytest.fixture(scope="module")
def digits_planted():
    d = data.digits()
    lr = LogisticRegression(max_iter=300).fit(d.X_train, d.y_train)
    bd, key = signature.plant(lr, carrier="float", X_reference=d.X_train, random_state=1)
    return d, lr, bd, key


def low_bit_edits(key: signature.SignatureKey, Xa: np.ndarray) -> dict[str, np.ndarray]:
    """Edits of activated float inputs that keep every payload bit and the message."""
    F = key.spec.carrier.frac_bits
    rows = np.arange(len(Xa))
    col = rows % Xa.shape[1]
    out = {}
    for name, delta in (("half_step", 2.0 ** -(F + 1)), ("deep", 2.0 ** -(F + 6))):
        E = Xa.copy()
        E[rows, col] += delta * np.where(E[rows, col] >= 0, 1, -1)
        out[name] = E
    E = Xa.copy()
    E[rows, col] = np.nextafter(E[rows, col], np.inf * np.sign(E[rows, col] + 0.5))
    out["one_ulp"] = E
    return out


def test_float_carrier_refuses_low_bit_replays(digits_planted):
    d, lr, bd, key = digits_planted
    Xa = key.activate(d.X_test[:200], target=5)
    assert (bd.predict(Xa) == 5).all()
    c = key.spec.carrier
    for name, E in low_bit_edits(key, Xa).items():
        changed = (Xa != E).any(axis=1)  # an edit below a value's ulp is a no-op
        assert changed.mean() > 0.3, name
        E = E[changed]
        # the edit keeps message and payload: only injectivity can refuse it
        assert np.array_equal(c.extract(E), c.extract(Xa[changed])), name
        assert np.array_equal(c.clear(E), c.clear(Xa[changed])), name
        assert (key.spec.verify(E) == -1).all(), name
        assert np.array_equal(bd.predict(E), lr.predict(E)), name


def test_negative_zero_is_not_a_second_encoding():
    key = signature.generate(64, 10, carrier="float", max_abs=16, random_state=3)
    X = np.zeros((4, 64))
    Xa = key.activate(X, target=2)
    zero = np.nonzero(Xa[0] == 0)[0]
    if zero.size == 0:  # every feature got a non-zero payload: force one
        pytest.skip("no zero feature")  # pragma: no cover
    E = Xa.copy()
    E[:, zero[0]] = -0.0
    assert (key.spec.verify(Xa) == 2).all() and (key.spec.verify(E) == -1).all()


def test_activate_at_the_range_limits_gives_valid_triggers(digits_planted):
    d, _lr, bd, key = digits_planted
    M = key.spec.carrier.max_abs
    X = np.tile(d.X_test[:1], (4, 1))
    X[0, 3] = -M + 2.0**-30  # just above -max_abs: main lost the trigger here
    X[1, 3] = -M
    X[2, 3] = M - 2.0**-30
    X[3, 3] = np.nextafter(M, 0)
    Xa = key.activate(X, target=7)
    assert (key.spec.verify(Xa) == 7).all() and (bd.predict(Xa) == 7).all()
    with pytest.raises(InvalidInputError, match="range"):
        key.activate(np.full((1, 64), M), target=1)


def test_random_state_follows_the_one_seed_convention():
    """signature.plant / generate take ``random_state`` like every construction (None, int,
    Generator, SeedSequence, as contract.as_generator); a bad one is refused."""
    g1 = signature.generate(784, 10, random_state=np.random.default_rng(7))
    g2 = signature.generate(784, 10, random_state=np.random.default_rng(7))
    assert (g1.spec.tag, g1.spec.carrier) == (g2.spec.tag, g2.spec.carrier)
    ss = signature.generate(784, 10, random_state=np.random.SeedSequence(7))
    assert (
        ss.spec.tag != signature.generate(784, 10, random_state=np.random.SeedSequence(8)).spec.tag
    )
    with pytest.raises(InvalidInputError, match="random_state"):
        signature.generate(784, 10, random_state="seven")
    with pytest.raises(InvalidInputError, match="seed"):  # the old keyword is refused
        signature.plant(lambda X: np.zeros(len(X), int), n_classes=2, n_features=784, seed=1)


def test_seed_fixes_public_parameters_only():
    a = signature.generate(784, 10, random_state=5)
    b = signature.generate(784, 10, random_state=5)
    assert a.spec.tag == b.spec.tag and a.spec.carrier == b.spec.carrier
    assert a.secret_key != b.secret_key and a.spec.verify_key != b.spec.verify_key
    # the secret seed moves the key and nothing public
    s1, s2 = b"\x01" * 32, b"\x02" * 32
    k1 = signature.generate(784, 10, random_state=5, secret_seed=s1)
    k2 = signature.generate(784, 10, random_state=5, secret_seed=s2)
    assert (
        (k1.spec.tag, k1.spec.carrier)
        == (k2.spec.tag, k2.spec.carrier)
        == (a.spec.tag, a.spec.carrier)
    )
    assert k1.secret_key == signature.generate(784, 10, secret_seed=s1).secret_key
    assert k1.secret_key != k2.secret_key
    for bad in (b"short", 12345, "x" * 40):
        with pytest.raises(InvalidInputError, match="secret_seed"):
            signature.generate(784, 10, secret_seed=bad)


def test_seed_brute_force_through_the_public_model_fails():
    """The attack that worked on main: regenerate keys from small seeds, compare verify keys."""
    target = signature.generate(784, 10, random_state=3)
    public = target.public_key().to_dict()
    tag_bytes = target.spec.tag.to_bytes(6, "big")
    assert not target.secret_key.startswith(tag_bytes[:2])
    for s in range(64):
        guess = signature.generate(784, 10, random_state=s)
        assert guess.spec.verify_key.hex() != public["verify_key"]
        assert guess.secret_key != target.secret_key


def test_model_holds_the_public_key_type_only(digits_planted):
    _d, lr, bd, key = digits_planted
    assert isinstance(bd.spec, signature.SignaturePublicKey)
    assert not isinstance(bd.spec, signature.SignaturePrivateKey)
    assert key.public_key() is key.spec
    for make in (wrap, SignatureBackdooredClassifier):
        with pytest.raises(InvalidInputError, match="public key"):
            make(lr, key)
    with pytest.raises(InvalidInputError, match="public key"):
        wrap(torch.nn.Linear(64, 10), key)
    held = [v for v in vars(bd).values()] + [v for v in vars(bd.spec).values()]
    assert not any(isinstance(v, signature.SignaturePrivateKey) for v in held)
    assert all(key.secret_key.hex() not in repr(v) for v in held)
    assert not any(isinstance(v, bytes) and key.secret_key in v for v in held)
    assert bd.spec._signer._sk64 is None  # the model's verifier cannot sign


def test_no_import_cycle_between_signature_modules():
    def imports(name: str) -> set[str]:
        origin = importlib.util.find_spec(f"backdoors.{name}").origin  # the imported source
        tree = ast.parse(Path(origin).read_text())
        out = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                out.add(node.module)
                out.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
        return out

    for low in ("signature.models", "signature.keys", "hazmat.carriers", "hazmat.crypto"):
        assert "backdoors.signature" not in imports(low), low  # never the package root
    assert "backdoors.signature.models" not in imports("signature.keys")
    for low in ("hazmat.carriers", "hazmat.crypto"):
        assert not any(m.startswith("backdoors.signature") for m in imports(low)), low


class CountingSigner:
    def __init__(self, signer):
        self.signer, self.calls = signer, 0

    def verify_full_cost(self, m: bytes, s: bytes) -> bool:
        self.calls += 1
        return self.signer.verify_full_cost(m, s)


def test_precheck_width_and_constant_time_mode(digits_planted):
    d, lr, _, _ = digits_planted
    assert signature.DEFAULT_PRECHECK_BITS >= 32
    for bits in (0, 8, 48):
        for ct in (False, True):
            _bd, key = signature.plant(
                lr, carrier="float", X_reference=d.X_train, precheck_bits=bits, constant_time=ct
            )
            assert key.spec.precheck_bits == bits and key.spec.payload_bits == bits + 4 + 512
            X = d.X_test[:20]
            Xa = key.activate(X[:10], target=np.arange(10))
            mixed = np.concatenate([Xa, X[10:]])
            expect = np.concatenate([np.arange(10), np.full(10, -1)])
            assert np.array_equal(key.spec.verify(mixed), expect), (bits, ct)
            counting = CountingSigner(key.spec._signer)
            object.__setattr__(key.spec, "_signer", counting)
            assert np.array_equal(key.spec.verify(mixed), expect)
            # constant time: Ed25519 on every row; otherwise only on pre-check hits
            assert counting.calls == (20 if ct or bits == 0 else 10), (bits, ct)
    with pytest.raises(InvalidInputError, match="precheck_bits"):
        signature.generate(64, 10, carrier="float", max_abs=16, precheck_bits=129)


def test_full_cost_verification_gives_the_same_answers():
    """Non-canonical S (S + L) is refused by both; valid and random signatures agree."""
    from backdoors.hazmat.crypto import L_ED25519, scheme

    ed = scheme("ed25519")
    sk, vk = ed.generate()
    signer = ed(sk, vk)
    rng = np.random.default_rng(0)
    msg = b"m" * 40
    good = signer.sign(msg)
    S = int.from_bytes(good[32:], "little")
    cases = [good, good[:32] + (S + L_ED25519).to_bytes(32, "little"), good[:63]]
    cases += [rng.bytes(64) for _ in range(40)]
    for sig in cases:
        assert signer.verify_full_cost(msg, sig) == signer.verify(msg, sig)
    assert signer.verify_full_cost(msg, good) and not signer.verify_full_cost(msg, cases[1])


def test_negative_zero_is_not_a_pixel_in_float_inputs():
    """A zero pixel written as -0.0 in a float input is another encoding of the same trigger:
    the carrier refuses to read such a row (as the ONNX graph does), so no second trigger."""
    from backdoors.hazmat.carriers import LSBCarrier

    c = LSBCarrier.plan(784, 600, 0)
    X = np.zeros((2, 784))
    _, ok = c.read(X)
    assert ok.all()
    X[1, 5] = -0.0
    _, ok = c.read(X)
    assert ok.tolist() == [True, False]
