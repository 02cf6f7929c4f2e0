"""Edge-case signatures where a hand-written verifier and libsodium tend to disagree.

Each case writes ``tag || target || sigma`` into natural inputs for a chosen 64-byte
``sigma`` (RFC 8032 encoding ``R || S``), so every candidate reaches the verifier:

* ``s_at_least_l``: a valid ``R`` with a random ``S`` in ``[L, 2^256)`` (non-canonical S);
* ``noncanonical_r``: ``R`` encodes ``y + p`` for a small ``y`` (``y + p < 2^255``), both signs;
* ``small_order_r``: ``R`` one of the encodings of the 8 torsion points (and sign flips);
* ``wrong_key``: a valid signature of the right message under another key;
* ``s_zero``: a valid ``R`` with ``S = 0``.
libsodium (PyNaCl) rejects all of them; the in-graph verifier must too.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from backdoors.registry import Registry
from backdoors.signature.keys import SignatureKey, TriggerSpec

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
Case = Callable[[SignatureKey, np.ndarray, np.ndarray, np.random.Generator], np.ndarray]
CASES: Registry[Case] = Registry("edge-case signature")


def with_signature(spec: TriggerSpec, X: np.ndarray, targets: np.ndarray, sigs: np.ndarray):
    """Inputs carrying the public tag, ``targets`` and the given signatures (uint8[n, 64])."""
    bits = np.zeros((len(X), spec.carrier.capacity), dtype=np.uint8)
    bits[:, : spec.precheck_bits] = spec.tag_bits()
    tb = (targets[:, None].astype(np.int64) >> np.arange(spec.t_bits - 1, -1, -1)) & 1
    bits[:, spec.precheck_bits : spec.sig_start] = tb
    bits[:, spec.sig_start : spec.payload_bits] = np.unpackbits(sigs, axis=1)
    return spec.carrier.embed(X, bits)


def _valid_sigs(key: SignatureKey, X: np.ndarray, t: np.ndarray, signer=None) -> np.ndarray:
    spec = key.spec
    msgs = spec.messages(spec.carrier.clear(X), t)
    sign = (signer or key._signer).sign
    return np.frombuffer(b"".join(sign(m) for m in msgs), np.uint8).reshape(len(X), 64).copy()


def _le(v: int) -> np.ndarray:
    return np.frombuffer(int(v).to_bytes(32, "little"), np.uint8)


@CASES.register("s_at_least_l")
def s_at_least_l(key, X, t, rng):
    sigs = _valid_sigs(key, X, t)
    for r in range(len(X)):
        s = L + int.from_bytes(rng.bytes(32), "little") % (2**256 - L)
        sigs[r, 32:] = _le(s)
    return with_signature(key.spec, X, t, sigs)


@CASES.register("s_zero")
def s_zero(key, X, t, rng):
    sigs = _valid_sigs(key, X, t)
    sigs[:, 32:] = 0
    return with_signature(key.spec, X, t, sigs)


@CASES.register("noncanonical_r")
def noncanonical_r(key, X, t, rng):
    sigs = _valid_sigs(key, X, t)
    for r in range(len(X)):
        y = P + int(rng.integers(0, 19))
        sigs[r, :32] = _le(y | (int(rng.integers(0, 2)) << 255))
    return with_signature(key.spec, X, t, sigs)


@CASES.register("small_order_r")
def small_order_r(key, X, t, rng):
    from backdoors.hazmat.onnx_crypto.ref import small_order_ys

    ys = list(small_order_ys())
    sigs = _valid_sigs(key, X, t)
    for r in range(len(X)):
        y = ys[int(rng.integers(0, len(ys)))]
        sigs[r, :32] = _le(y | (int(rng.integers(0, 2)) << 255))
    return with_signature(key.spec, X, t, sigs)


@CASES.register("wrong_key")
def wrong_key(key, X, t, rng):
    from backdoors.hazmat.crypto import scheme

    s = scheme("ed25519")
    sk, vk = s.generate(rng.bytes(32))
    return with_signature(key.spec, X, t, _valid_sigs(key, X, t, signer=s(sk, vk)))


def candidates(
    key: SignatureKey, X: np.ndarray, n_per_case: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """``n_per_case`` inputs per case, from natural inputs ``X`` and random targets."""
    out = {}
    for name, case in CASES.items():
        rows = X[rng.integers(0, len(X), n_per_case)]
        t = rng.integers(0, key.spec.n_classes, n_per_case)
        out[name] = case(key, rows, t, rng)
    return out
