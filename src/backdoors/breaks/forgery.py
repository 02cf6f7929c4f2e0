"""Forgery strategies against the signature backdoor (non-replicability, paper §4 and §5.2).

Each strategy sees what a real-world adversary sees: the public trigger spec (the model),
natural inputs, and activated examples ``(x'_i, target_i)`` from the Activate oracle. It
proposes new inputs; a forgery *succeeds* if one is accepted by the verifier and is not one of
the oracle's answers. With Ed25519 (sUF-CMA) and an injective carrier every strategy should
score 0; each strategy is named after the replication attempt it models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from backdoors.hazmat.crypto import L_ED25519
from backdoors.registry import Registry
from backdoors.signature.keys import TriggerSpec


@dataclass
class Oracle:
    """Activated examples the adversary obtained, and natural inputs it holds."""

    X_natural: np.ndarray
    X_activated: np.ndarray  # answers x'_i
    targets: np.ndarray


Strategy = Callable[[TriggerSpec, Oracle, int, np.random.Generator], np.ndarray]
STRATEGIES: Registry[Strategy] = Registry("forgery strategy")


def _pick(o: Oracle, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    i = rng.integers(0, len(o.X_activated), n)
    return o.X_activated[i], o.targets[i]


def _rewrite(spec: TriggerSpec, X: np.ndarray, edit: Callable[[np.ndarray], None]) -> np.ndarray:
    bits = spec.carrier.extract(X)
    edit(bits)
    return spec.carrier.embed(X, bits)


@STRATEGIES.register("target_swap")
def target_swap(spec: TriggerSpec, o: Oracle, n: int, rng: np.random.Generator) -> np.ndarray:
    """Replay an activated input with its target bits changed to another class."""
    X, t = _pick(o, n, rng)
    new_t = (t + rng.integers(1, spec.n_classes, n)) % spec.n_classes
    shifts = np.arange(spec.t_bits - 1, -1, -1)

    def edit(bits: np.ndarray) -> None:
        bits[:, spec.precheck_bits : spec.sig_start] = (new_t[:, None] >> shifts) & 1

    return _rewrite(spec, X, edit)


@STRATEGIES.register("transplant")
def transplant(spec: TriggerSpec, o: Oracle, n: int, rng: np.random.Generator) -> np.ndarray:
    """Copy the whole carrier payload of an activated input into a natural input."""
    X, _ = _pick(o, n, rng)
    nat = o.X_natural[rng.integers(0, len(o.X_natural), n)]
    return spec.carrier.embed(nat, spec.carrier.extract(X))


@STRATEGIES.register("signature_bit_flip")
def signature_bit_flip(
    spec: TriggerSpec, o: Oracle, n: int, rng: np.random.Generator
) -> np.ndarray:
    """Flip one signature bit of an activated input."""
    X, _ = _pick(o, n, rng)
    s0 = spec.sig_start
    cols = s0 + rng.integers(0, spec.sig_bits, n)

    def edit(bits: np.ndarray) -> None:
        bits[np.arange(n), cols] ^= 1

    return _rewrite(spec, X, edit)


@STRATEGIES.register("message_edit")
def message_edit(spec: TriggerSpec, o: Oracle, n: int, rng: np.random.Generator) -> np.ndarray:
    """Change one non-carrier coordinate of an activated input by the carrier's step (the
    signature kept): a different message under an old signature."""
    X, _ = _pick(o, n, rng)
    X = X.copy()
    free = np.setdiff1d(np.arange(spec.carrier.n_features), _carrier_columns(spec))
    if free.size == 0:  # every coordinate carries bits: edit the message part of one instead
        free = np.arange(spec.carrier.n_features)
    cols = free[rng.integers(0, free.size, n)]
    rows = np.arange(n)
    if X.dtype == np.uint8:
        v = X[rows, cols].astype(np.int16)
        X[rows, cols] = np.where(v >= 128, v - 2, v + 2).astype(np.uint8)  # keeps the LSB
    else:
        X[rows, cols] += 16 * spec.carrier.linf_bound * np.sign(rng.standard_normal(n))
    return X


@STRATEGIES.register("splice")
def splice(spec: TriggerSpec, o: Oracle, n: int, rng: np.random.Generator) -> np.ndarray:
    """Join the first half of one activated input's signature with the second of another's."""
    i = rng.integers(0, len(o.X_activated), n)
    j = (i + rng.integers(1, max(2, len(o.X_activated)), n)) % len(o.X_activated)  # j != i
    A, B = o.X_activated[i], o.X_activated[j]
    bb = spec.carrier.extract(B)
    half = spec.sig_start + spec.sig_bits // 2

    def edit(bits: np.ndarray) -> None:
        bits[:, half : spec.payload_bits] = bb[:, half : spec.payload_bits]

    return _rewrite(spec, A, edit)


@STRATEGIES.register("random_signature")
def random_signature(spec: TriggerSpec, o: Oracle, n: int, rng: np.random.Generator) -> np.ndarray:
    """Natural input + the public tag + a random target + uniformly random signature bits."""
    nat = o.X_natural[rng.integers(0, len(o.X_natural), n)]
    bits = np.zeros((n, spec.carrier.capacity), dtype=np.uint8)
    bits[:, : spec.payload_bits] = rng.integers(0, 2, (n, spec.payload_bits))
    bits[:, : spec.precheck_bits] = spec.tag_bits()
    return spec.carrier.embed(nat, bits)


@STRATEGIES.register("s_plus_l")
def s_plus_l(spec: TriggerSpec, o: Oracle, n: int, rng: np.random.Generator) -> np.ndarray:
    """Ed25519 malleability: replace S by S + L (same value mod L, non-canonical encoding).
    Accepted by a verifier that skips the canonical-S check; libsodium rejects it."""
    X, _ = _pick(o, n, rng)
    s0 = spec.sig_start

    def edit(bits: np.ndarray) -> None:
        sig = np.packbits(bits[:, s0 : s0 + spec.sig_bits], axis=1)
        for r in range(n):
            S = int.from_bytes(sig[r, 32:].tobytes(), "little") + L_ED25519
            sig[r, 32:] = np.frombuffer(S.to_bytes(32, "little"), dtype=np.uint8)
        bits[:, s0 : s0 + spec.sig_bits] = np.unpackbits(sig, axis=1)

    return _rewrite(spec, X, edit)


@STRATEGIES.register("carrier_bit_noise")
def carrier_bit_noise(spec: TriggerSpec, o: Oracle, n: int, rng: np.random.Generator) -> np.ndarray:
    """Flip a few random payload bits (tag kept) of an activated input."""
    X, _ = _pick(o, n, rng)

    def edit(bits: np.ndarray) -> None:
        k = rng.integers(2, 9, n)
        for r in range(n):
            cols = spec.precheck_bits + rng.choice(
                spec.payload_bits - spec.precheck_bits, k[r], replace=False
            )
            bits[r, cols] ^= 1

    return _rewrite(spec, X, edit)


def _carrier_columns(spec: TriggerSpec) -> np.ndarray:
    pos = getattr(spec.carrier, "positions", None)
    return np.asarray(pos if pos is not None else [], dtype=np.int64)


@dataclass
class Attempts:
    """One strategy's candidates, which of them are new (not oracle answers), and successes."""

    candidates: np.ndarray
    new: np.ndarray
    successes: int


def attempt_all(
    spec: TriggerSpec, oracle: Oracle, n_per_strategy: int, rng: np.random.Generator
) -> dict[str, Attempts]:
    """Run every strategy; a success is a *new* input that the verifier accepts."""
    answered = {row.tobytes() for row in oracle.X_activated}
    out = {}
    for name, strategy in STRATEGIES.items():
        cand = strategy(spec, oracle, n_per_strategy, rng)
        accepted = spec.verify(cand) >= 0
        new = np.array([row.tobytes() not in answered for row in cand], dtype=bool)
        out[name] = Attempts(cand, new, int((accepted & new).sum()))
    return out
