"""GF(2^255 - 19) as int64 tensors [..., 16] of 16-bit limbs: v = sum_k x_k 2^(16 k).

Limbs are signed and only loosely reduced: after a multiplication every |limb| <= 2^16 + 2^10.
A product is sum_i x_i * Y[i, k] with the wrapped Toeplitz matrix Y[i, k] = y_(k-i) for i <= k
and 38 y_(k-i+16) for i > k (2^256 = 38 mod p), built by one Gather; every term is below
2^(5.25 + 2 * 19) for inputs with |limb| < 2^19, so int64 is exact. A carry round moves
q_k = trunc(x_k / 2^16) from limb k to limb k + 1 (limb 15 to limb 0 times 38) as one MatMul
with a constant matrix; three rounds bring any product back to the loose bound.
:func:`freeze` returns the canonical representative in [0, p) with limbs in [0, 2^16).
"""

from __future__ import annotations

import numpy as np

from .builder import INT64, Builder
from .ref import P

NL = 16
RADIX = 1 << 16
_TOEPLITZ_IDX = np.array([[k - i + NL for k in range(NL)] for i in range(NL)], dtype=np.int64)


def to_limbs(v: int) -> np.ndarray:
    v %= P
    return np.array([(v >> (16 * k)) & 0xFFFF for k in range(NL)], dtype=np.int64)


def from_limbs(x) -> int:
    return sum(int(a) << (16 * k) for k, a in enumerate(np.asarray(x).tolist())) % P


def _carry_matrix(wrap: bool) -> np.ndarray:
    m = np.zeros((NL, NL), dtype=np.int64)
    for k in range(NL):
        if k < NL - 1:
            m[k, k] = -RADIX
            m[k, k + 1] = 1
        elif wrap:
            m[k, k] = -RADIX
            m[k, 0] = 38
    return m


def carry(b: Builder, x: str, rounds: int = 3, wrap: bool = True) -> str:
    """``rounds`` parallel carry rounds (value preserved mod p; exact integer if not wrap)."""
    mat = b.const(_carry_matrix(wrap))
    radix = b.const(np.int64(RADIX))
    for _ in range(rounds):
        q = b.op("Div", [x, radix])
        x = b.op("Add", [x, b.op("MatMul", [q, mat])])
    return x


def mul(b: Builder, x: str, y: str) -> str:
    """x * y mod p (shapes broadcast over the leading dimensions)."""
    ext = b.op("Concat", [b.op("Mul", [y, b.const(np.int64(38))]), y], axis=-1)
    ymat = b.op("Gather", [ext, b.const(_TOEPLITZ_IDX)], axis=-1)  # [..., 16, 16]
    prod = b.op("Mul", [b.unsqueeze(x, [-1]), ymat])
    return carry(b, b.op("ReduceSum", [prod, b.const([-2])], keepdims=0))


def mul_const(b: Builder, x: str, c: int) -> str:
    """x * c mod p for a constant field element c."""
    cl = to_limbs(c)
    ext = np.concatenate([38 * cl, cl])
    prod = b.op("Mul", [b.unsqueeze(x, [-1]), b.const(ext[_TOEPLITZ_IDX])])
    return carry(b, b.op("ReduceSum", [prod, b.const([-2])], keepdims=0))


def sqr(b: Builder, x: str) -> str:
    return mul(b, x, x)


def sqr_n(b: Builder, x: str, n: int, unroll: int = 5) -> str:
    """x^(2^n): a Loop of n // unroll iterations of ``unroll`` squarings, then the rest."""
    if n >= 2 * unroll:

        def body(bb: Builder, _it: str, v: list[str]) -> list[str]:
            y = v[0]
            for _ in range(unroll):
                y = sqr(bb, y)
            return [y]

        (x,) = b.loop(n // unroll, [(x, INT64)], body)
        n %= unroll
    for _ in range(n):
        x = sqr(b, x)
    return x


def invert(b: Builder, z: str) -> str:
    """z^(p - 2) (= 1/z, and 0 for z = 0) by the addition chain 2^255 - 21."""
    z2 = sqr(b, z)
    z9 = mul(b, sqr_n(b, z2, 2), z)
    z11 = mul(b, z9, z2)
    z_5 = mul(b, sqr(b, z11), z9)  # z^(2^5 - 1)
    z_10 = mul(b, sqr_n(b, z_5, 5), z_5)
    z_20 = mul(b, sqr_n(b, z_10, 10), z_10)
    z_40 = mul(b, sqr_n(b, z_20, 20), z_20)
    z_50 = mul(b, sqr_n(b, z_40, 10), z_10)
    z_100 = mul(b, sqr_n(b, z_50, 50), z_50)
    z_200 = mul(b, sqr_n(b, z_100, 100), z_100)
    z_250 = mul(b, sqr_n(b, z_200, 50), z_50)
    return mul(b, sqr_n(b, z_250, 5), z11)


def _positive_offset() -> np.ndarray:
    """Limbs of 32 p, each in [2^18, 2^21): added to make loose limbs non-negative."""
    v = 32 * P
    limbs = [(v >> (16 * k)) & 0xFFFF for k in range(NL)]
    limbs[NL - 1] = v >> (16 * (NL - 1))
    for k in range(NL - 1):  # borrow 2^19 into limb k from limb k + 1
        limbs[k] += 1 << 19
        limbs[k + 1] -= 1 << 3
    out = np.array(limbs, dtype=np.int64)
    assert sum(int(a) << (16 * k) for k, a in enumerate(limbs)) == v
    assert out.min() >= 1 << 18 and out.max() < 1 << 21
    return out


def freeze(b: Builder, x: str) -> str:
    """Canonical limbs in [0, 2^16) of the value in [0, p), for inputs with |limb| < 2^18."""
    x = b.op("Add", [x, b.const(_positive_offset())])  # every limb now in (0, 2^22)
    # Exact carries without wrap: after 17 rounds limbs 0..14 are in [0, 2^16) (two rounds
    # make every carry 0 or 1, then a carry ripples at most 15 limbs).
    x = carry(b, x, rounds=17, wrap=False)
    # Fold the bits >= 255 (2^255 = 19 mod p): value < 2^255 + 19 * 2^7 afterwards.
    top = b.op("Div", [b.slice(x, NL - 1, NL, -1), b.const(np.int64(1 << 15))])
    fold = np.zeros(NL, dtype=np.int64)
    fold[0], fold[NL - 1] = 19, -(1 << 15)
    x = b.op("Add", [x, b.op("Mul", [top, b.const(fold)])])
    x = carry(b, x, rounds=16, wrap=False)
    # Now 0 <= v < 2^255 + 2^12 with limbs in [0, 2^16) (limb 15 <= 2^15). v >= p iff the limb
    # vector is lexicographically >= p's (most significant limb first); then v - p < 2^16 and
    # its low limb is (x_0 + 19) mod 2^16, every other limb 0.
    p_limbs = to_limbs(P - 1) + np.eye(NL, dtype=np.int64)[0]
    sign = b.op("Sign", [b.op("Sub", [x, b.const(p_limbs)])])
    weights = np.array([[1 << k] for k in range(NL)], dtype=np.int64)  # 2-D: empty batches work
    geq = b.op("GreaterOrEqual", [b.op("MatMul", [sign, b.const(weights)]), b.const(np.int64(0))])
    low = b.op(
        "BitwiseAnd",
        [b.op("Add", [b.slice(x, 0, 1, -1), b.const(np.int64(19))]), b.const(np.int64(0xFFFF))],
    )
    reduced = b.op("Mul", [low, b.const(np.eye(NL, dtype=np.int64)[0])])
    return b.op("Where", [geq, reduced, x])
