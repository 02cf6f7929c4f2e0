"""GF(2^255 - 19) as float64 tensors [..., 16] of 16-bit limbs: v = sum_k x_k 2^(16 k).

Every value is an integer held exactly in a double (|value| < 2^53 throughout), so the graph's
arithmetic is exact integer arithmetic that runs on onnxruntime's fast float kernels (MatMul,
Floor); int64 Div was three times slower. Limbs are signed and loosely reduced: after a
multiplication every limb is in [0, 2^16 + 2^10]. A product is the outer product x_i y_j
contracted with a constant 0/1/38 matrix T[(i, j), k] (i + j = k, or k + 16 with 2^256 = 38
mod p); for inputs with |limb| < 2^18.5 every partial sum is below 16 * 38 * 2^37 < 2^47.
A carry round moves q_k = floor(x_k / 2^16) from limb k to limb k + 1 (limb 15 to limb 0 times
38) as one MatMul with a constant matrix; three rounds bring any product back to the bound.
:func:`freeze` returns the canonical representative in [0, p) with limbs in [0, 2^16).
"""

from __future__ import annotations

import numpy as np

from .builder import DOUBLE, Builder
from .ref import P

NL = 16
RADIX = 1 << 16


def _product_matrix() -> np.ndarray:
    t = np.zeros((NL * NL, NL))
    for i in range(NL):
        for j in range(NL):
            t[NL * i + j, (i + j) % NL] = 1 if i + j < NL else 38
    return t


_PRODUCT = _product_matrix()


def to_limbs(v: int) -> np.ndarray:
    v %= P
    return np.array([(v >> (16 * k)) & 0xFFFF for k in range(NL)], dtype=np.float64)


def from_limbs(x) -> int:
    return sum(int(a) << (16 * k) for k, a in enumerate(np.asarray(x).tolist())) % P


def _carry_matrix(wrap: bool) -> np.ndarray:
    m = np.zeros((NL, NL))
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
    inv_radix = b.const(np.float64(1.0 / RADIX))
    for _ in range(rounds):
        q = b.op("Floor", [b.op("Mul", [x, inv_radix])])
        x = b.op("Add", [x, b.op("MatMul", [q, mat])])
    return x


def mul(b: Builder, x: str, y: str, rank: int = 3) -> str:
    """x * y mod p; shapes broadcast over the leading dimensions, ``rank`` = result rank."""
    outer = b.op("Mul", [b.unsqueeze(x, [-1]), b.unsqueeze(y, [-2])])  # [..., 16, 16]
    flat = b.reshape(outer, [0] * (rank - 1) + [NL * NL])
    return carry(b, b.op("MatMul", [flat, b.const(_PRODUCT)]))


def mul_const(b: Builder, x: str, c: int) -> str:
    """x * c mod p for a constant field element c (one MatMul with c's wrapped Toeplitz)."""
    cl = to_limbs(c)
    mat = np.array(
        [[cl[k - i] if i <= k else 38 * cl[k - i + NL] for k in range(NL)] for i in range(NL)]
    )
    return carry(b, b.op("MatMul", [x, b.const(mat)]))


def sqr(b: Builder, x: str, rank: int = 3) -> str:
    return mul(b, x, x, rank)


def sqr_n(b: Builder, x: str, n: int, unroll: int = 5) -> str:
    """x^(2^n): a Loop of n // unroll iterations of ``unroll`` squarings, then the rest."""
    if n >= 2 * unroll:

        def body(bb: Builder, _it: str, v: list[str]) -> list[str]:
            y = v[0]
            for _ in range(unroll):
                y = sqr(bb, y)
            return [y]

        (x,) = b.loop(n // unroll, [(x, DOUBLE)], body)
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


def batch_invert(b: Builder, z: str, rows: int) -> str:
    """1/z for z [n, 1, 16], n <= rows (a power of two), with one inversion (Montgomery).

    Rows are padded with ones to ``rows``; a product tree is built bottom-up, its root
    inverted, and inverses pushed down: 1/a = b/(ab), 1/b = a/(ab). Needs every z != 0
    (true for Z of points computed with the complete addition law).
    """
    n = b.op("Shape", [z], start=0, end=1)
    pad_shape = b.op("Concat", [b.op("Sub", [b.const([rows]), n]), b.const([1, NL])], axis=0)
    one = b.const(to_limbs(1).reshape(1, 1, NL))
    level = b.op("Concat", [z, b.op("Expand", [one, pad_shape])], axis=0)  # [rows, 1, 16]
    pairs = []
    k = rows
    while k > 1:
        lo, hi = b.split(b.reshape(level, [k // 2, 2, NL]), [1, 1], axis=1)
        pairs.append((lo, hi))
        level, k = mul(b, lo, hi), k // 2
    inv = invert(b, level)  # [1, 1, 16]
    for lo, hi in reversed(pairs):
        k = 2 * k
        swapped = b.op("Concat", [hi, lo], axis=1)  # [k/2, 2, 16]
        inv = b.reshape(mul(b, swapped, inv), [k, 1, NL])
    return b.op("Slice", [inv, b.const([0]), n, b.const([0])])


def _positive_offset() -> np.ndarray:
    """Limbs of 32 p, each in [2^18, 2^21): added to make loose limbs non-negative."""
    v = 32 * P
    limbs = [(v >> (16 * k)) & 0xFFFF for k in range(NL)]
    limbs[NL - 1] = v >> (16 * (NL - 1))
    for k in range(NL - 1):  # borrow 2^19 into limb k from limb k + 1
        limbs[k] += 1 << 19
        limbs[k + 1] -= 1 << 3
    assert sum(a << (16 * k) for k, a in enumerate(limbs)) == v
    assert min(limbs) >= 1 << 18 and max(limbs) < 1 << 21
    return np.array(limbs, dtype=np.float64)


def _floor_mod(b: Builder, x: str, m: int) -> str:
    q = b.op("Floor", [b.op("Mul", [x, b.const(np.float64(1.0 / m))])])
    return b.op("Sub", [x, b.op("Mul", [q, b.const(np.float64(m))])])


def freeze(b: Builder, x: str) -> str:
    """Canonical limbs in [0, 2^16) of the value in [0, p), for inputs with |limb| < 2^18."""
    x = b.op("Add", [x, b.const(_positive_offset())])  # every limb now in (0, 2^22)
    # Exact carries without wrap: after 17 rounds limbs 0..14 are in [0, 2^16) (two rounds
    # make every carry 0 or 1, then a carry ripples at most 15 limbs).
    x = carry(b, x, rounds=17, wrap=False)
    # Fold the bits >= 255 (2^255 = 19 mod p): value < 2^255 + 19 * 2^7 afterwards.
    top = b.op("Floor", [b.op("Mul", [b.slice(x, NL - 1, NL, -1), b.const(np.float64(2**-15))])])
    fold = np.zeros(NL)
    fold[0], fold[NL - 1] = 19, -(1 << 15)
    x = b.op("Add", [x, b.op("Mul", [top, b.const(fold)])])
    x = carry(b, x, rounds=16, wrap=False)
    # Now 0 <= v < 2^255 + 2^12 with limbs in [0, 2^16) (limb 15 <= 2^15). v >= p iff the limb
    # vector is lexicographically >= p's (most significant limb first); then v - p < 2^16 and
    # its low limb is (x_0 + 19) mod 2^16, every other limb 0.
    p_limbs = to_limbs(P - 1) + np.eye(NL)[0]
    sign = b.op("Sign", [b.op("Sub", [x, b.const(p_limbs)])])
    weights = np.array([[1 << k] for k in range(NL)], dtype=np.float64)  # 2-D: empty batches
    geq = b.op("GreaterOrEqual", [b.op("MatMul", [sign, b.const(weights)]), b.const(0.0)])
    low = _floor_mod(b, b.op("Add", [b.slice(x, 0, 1, -1), b.const(np.float64(19))]), RADIX)
    reduced = b.op("Mul", [low, b.const(np.eye(NL)[0])])
    return b.op("Where", [geq, reduced, x])
