"""GF(2^255 - 19) and the scalar reduction mod L as portable ONNX (int32, values < 2^24).

A field element is an int32 tensor ``[..., 32]`` of non-negative 8-bit-radix limbs,
``v = sum_k x_k 2^(8 k)``, loosely reduced. Every :class:`Fe` carries a per-limb upper bound
known at build time, and every operation checks that no value it creates reaches ``2^24``
(then an int32 ``MatMul`` is exact even where a runtime computes it in float32; OpenVINO's CPU
plugin does). A product is the outer product contracted with a constant 0/1 matrix into 63
coefficients ``c_k = sum_(i+j=k) x_i y_j`` (no ``2^256 = 38`` fold inside the contraction, so
``c_k < 32 max(x) max(y)``), one carry round, the fold of limbs 32..63 times 38, and wrap carry
rounds (``q = x div 256`` moves up a limb, limb 31's times 38 to limb 0) until the bound is
back below :data:`TARGET`. Subtraction adds a multiple of p whose limbs dominate the
subtrahend's bound, so every limb stays non-negative and ``Div`` is floor division in every
runtime. :func:`freeze` and :func:`normalize` produce exact bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .builder import Builder
from .portable_sha512 import I32, c32
from .ref import L, P

NL = 32
LIMIT = 1 << 24  # every int32 value (and MatMul partial sum) stays below this
TARGET = 300  # bound of a reduced element's limbs: sums of two feed a product


@dataclass(frozen=True)
class Fe:
    """A tensor of field elements and the upper bound of each of its 32 limbs."""

    name: str
    ub: np.ndarray  # int64 [32]


def limbs(v: int, n: int = NL) -> np.ndarray:
    return np.array([(v >> (8 * k)) & 0xFF for k in range(n)], dtype=np.int64)


def const(b: Builder, v: int) -> Fe:
    x = limbs(v % P)
    return Fe(c32(b, x), x)


def _check(ub: np.ndarray) -> None:
    if int(np.max(ub)) >= LIMIT:
        raise AssertionError(f"portable field bound {int(np.max(ub))} >= 2^24")


def _round_bound(ub: np.ndarray, wrap: int | None) -> np.ndarray:
    """Bound after one carry round (``wrap``: multiplier of the top limb's carry into limb
    0, or None to keep the top limb whole)."""
    q = ub // 256
    r = np.minimum(ub, 255)
    out = r.copy()
    out[1:] += q[:-1]
    if wrap is None:
        out[-1] = ub[-1] + q[-2]
    else:
        out[0] += wrap * q[-1]
    return out


def _carry_matrix(n: int, wrap: int | None) -> np.ndarray:
    m = np.zeros((n, n), dtype=np.int64)
    for k in range(n - 1):
        m[k, k], m[k, k + 1] = -256, 1
    if wrap is not None:
        m[n - 1, n - 1], m[n - 1, 0] = -256, wrap
    return m


def carry(b: Builder, x: str, ub: np.ndarray, wrap: int | None) -> tuple[str, np.ndarray]:
    """One parallel carry round on limbs ``x [..., n]``."""
    mat = _carry_matrix(len(ub), wrap)
    _check(256 * (ub // 256) + 256)
    q = b.op("Div", [x, c32(b, [256] * len(ub))])
    x = b.op("Add", [x, b.op("MatMul", [q, c32(b, mat)])])
    ub = _round_bound(ub, wrap)
    _check(ub)
    return x, ub


def reduce(b: Builder, a: Fe, target: int = TARGET) -> Fe:
    """Wrap carry rounds (value kept mod p) until every limb bound is <= target."""
    x, ub = a.name, a.ub
    for _ in range(12):
        if int(ub.max()) <= target:
            return Fe(x, ub)
        x, ub = carry(b, x, ub, 38)
    raise AssertionError(f"cannot reduce limbs below {target}")


def normalize(b: Builder, x: str, ub: np.ndarray) -> str:
    """Exact base-256 digits (limbs 0..n-2 in [0, 255], the top limb keeps the rest) of
    non-negative limbs ``x [..., n]`` (no wrap: the value is preserved as an integer)."""
    ub = np.asarray(ub, dtype=np.int64)
    while int((ub[:-1] // 256).max()) > 1:
        x, ub = carry(b, x, ub, None)
    for _ in range(len(ub)):  # carries of 0 or 1 ripple through at most n - 1 limbs
        x, ub = carry(b, x, ub, None)
    return x


def _product_matrix() -> np.ndarray:
    t = np.zeros((NL * NL, 2 * NL), dtype=np.int64)
    for i in range(NL):
        for j in range(NL):
            t[NL * i + j, i + j] = 1
    return t


_PRODUCT = _product_matrix()
_FOLD = np.vstack([np.eye(NL, dtype=np.int64), 38 * np.eye(NL, dtype=np.int64)])  # [64, 32]


def mul(b: Builder, x: Fe, y: Fe) -> Fe:
    """x * y mod p (broadcasting over the leading dimensions), reduced to :data:`TARGET`
    (inputs whose product could reach 2^24 are reduced first)."""
    cub = np.outer(x.ub, y.ub).reshape(-1) @ _PRODUCT
    if int(cub.max()) >= LIMIT:
        x, y = reduce(b, x), reduce(b, y)
        cub = np.outer(x.ub, y.ub).reshape(-1) @ _PRODUCT
    _check(cub)
    outer = b.op("Mul", [b.unsqueeze(x.name, [-1]), b.unsqueeze(y.name, [-2])])
    flat = b.op(
        "Reshape",
        [outer, b.op("Concat", [b.op("Shape", [outer], end=-2), b.const([NL * NL])], axis=0)],
    )
    c = b.op("MatMul", [flat, c32(b, _PRODUCT)])  # [..., 64]
    c, cub = carry(b, c, cub, None)
    fub = cub @ _FOLD
    _check(fub)
    return reduce(b, Fe(b.op("MatMul", [c, c32(b, _FOLD)]), fub))


def add(b: Builder, x: Fe, y: Fe) -> Fe:
    ub = x.ub + y.ub
    _check(ub)
    return Fe(b.op("Add", [x.name, y.name]), ub)


def _offset(value: int, minimum: np.ndarray) -> np.ndarray:
    """Limbs of ``value`` with limb k >= minimum[k] (borrowing; the top limb takes the rest)."""
    rest = sum(int(m) << (8 * k) for k, m in enumerate(minimum))
    if value < rest:
        raise AssertionError("offset too small")
    d = value - rest
    out = np.array(
        [(d >> (8 * k)) & 0xFF for k in range(NL - 1)] + [d >> (8 * (NL - 1))], dtype=np.int64
    )
    out = out + np.asarray(minimum, dtype=np.int64)
    assert sum(int(a) << (8 * k) for k, a in enumerate(out)) == value
    return out


def _p_multiple(minimum: np.ndarray) -> np.ndarray:
    rest = sum(int(m) << (8 * k) for k, m in enumerate(minimum))
    return _offset(-(-rest // P) * P, minimum)


def sub(b: Builder, x: Fe, y: Fe) -> Fe:
    """x - y mod p as x + (a multiple of p dominating y limb by limb) - y, reduced."""
    off = _p_multiple(y.ub)
    ub = x.ub + off
    _check(ub)
    out = b.op("Sub", [b.op("Add", [x.name, c32(b, off)]), y.name])
    return reduce(b, Fe(out, ub))


def sqr(b: Builder, x: Fe) -> Fe:
    return mul(b, x, x)


def sqr_n(b: Builder, x: Fe, n: int, shape: list, unroll: int = 5) -> Fe:
    """x^(2^n): a Scan of n // unroll steps of ``unroll`` squarings (its state bound is
    :data:`TARGET` in every limb, a fixed point of a reduced squaring), then the rest.
    ``shape``: x's shape (``None`` for a dimension known only at run time)."""
    x = reduce(b, x)
    if n >= 2 * unroll:
        bound = np.full(NL, TARGET, dtype=np.int64)

        def body(bb: Builder, v: list[str], z: list[str]) -> list[str]:
            y = Fe(bb.op("Add", [v[0], z[0]]), bound)  # z: zeros (a Scan must read its input)
            for _ in range(unroll):
                y = sqr(bb, y)
            assert (y.ub <= bound).all()
            return [y.name]

        zeros = c32(b, np.zeros((n // unroll, NL)))
        (out,) = b.scan([(x.name, I32, shape)], [(zeros, I32, [NL])], body)
        x, n = Fe(out, bound), n % unroll
    for _ in range(n):
        x = sqr(b, x)
    return x


def invert(b: Builder, z: Fe, shape: list) -> Fe:
    """z^(p - 2) (= 1/z; 0 for z = 0) by the addition chain of 2^255 - 21 (``shape``: z's)."""
    z2 = sqr(b, z)
    z9 = mul(b, sqr_n(b, z2, 2, shape), z)
    z11 = mul(b, z9, z2)
    z_5 = mul(b, sqr(b, z11), z9)
    z_10 = mul(b, sqr_n(b, z_5, 5, shape), z_5)
    z_20 = mul(b, sqr_n(b, z_10, 10, shape), z_10)
    z_40 = mul(b, sqr_n(b, z_20, 20, shape), z_20)
    z_50 = mul(b, sqr_n(b, z_40, 10, shape), z_10)
    z_100 = mul(b, sqr_n(b, z_50, 50, shape), z_50)
    z_200 = mul(b, sqr_n(b, z_100, 100, shape), z_100)
    z_250 = mul(b, sqr_n(b, z_200, 50, shape), z_50)
    return mul(b, sqr_n(b, z_250, 5, shape), z11)


def pairs16(b: Builder, x: str) -> str:
    """16-bit limbs [..., 16] of exact bytes [..., 32] (x_2i + 256 x_(2i+1))."""
    m = np.zeros((NL, 16), dtype=np.int64)
    for i in range(16):
        m[2 * i, i], m[2 * i + 1, i] = 1, 256
    return b.op("MatMul", [x, c32(b, m)])


def less_than(b: Builder, x16: str, bound: int) -> str:
    """bool [...]: value < bound for exact 16-bit limbs ``x16 [..., 16]`` (the most
    significant differing limb decides: sum_k sign(x_k - b_k) 2^k < 0, |sum| < 2^16)."""
    bl = [(bound >> (16 * k)) & 0xFFFF for k in range(16)]
    d = b.op("Sub", [x16, c32(b, bl)])
    pos = b.op("Cast", [b.op("Greater", [d, c32(b, 0)])], to=6)
    neg = b.op("Cast", [b.op("Less", [d, c32(b, 0)])], to=6)
    s = b.op("MatMul", [b.op("Sub", [pos, neg]), c32(b, [[1 << k] for k in range(16)])])
    return b.squeeze(b.op("Less", [s, c32(b, 0)]), [-1])


def freeze(b: Builder, a: Fe) -> str:
    """Exact canonical bytes [..., 32] (int32 in [0, 255]) of the value mod p in [0, p)."""
    a = reduce(b, a)
    zero = b.op("Mul", [b.slice(a.name, 0, 1, -1), c32(b, 0)])
    x = normalize(b, b.op("Concat", [a.name, zero], axis=-1), np.append(a.ub, 0))  # 33 limbs
    # fold bit 255 and above: t = x >> 255 = h31 + 2 x32 < 4; value - t 2^255 + 19 t
    h31 = b.op("Div", [b.slice(x, NL - 1, NL, -1), c32(b, 128)])
    t = b.op("Add", [h31, b.op("Mul", [b.slice(x, NL, NL + 1, -1), c32(b, 2)])])
    # limb 31 mod 128 and limb 32 mod 1 (= 0) by Mod (tract's optimizer does not finish on
    # graphs with many x - c (x div c))
    keep = c32(b, [LIMIT] * (NL - 1) + [128, 1])
    x = b.op("Add", [b.op("Mod", [x, keep]), b.op("Mul", [t, c32(b, np.eye(NL + 1)[0] * 19)])])
    ub = np.full(NL + 1, 255, dtype=np.int64)
    ub[0], ub[NL] = 255 + 19 * 3, 0
    x = b.slice(normalize(b, x, ub), 0, NL, -1)  # value < 2^255 + 76 < 2p, exact bytes
    # v >= p iff v + 19 >= 2^255; then v - p < 76 is the single low byte (x_0 + 19) mod 256
    geq = b.op("Not", [less_than(b, pairs16(b, x), P)])
    low = b.op("Add", [b.slice(x, 0, 1, -1), c32(b, 19)])
    low = b.op("Mod", [low, c32(b, 256)])
    reduced = b.op("Mul", [low, c32(b, np.eye(NL, dtype=np.int64)[0])])
    return b.op("Where", [b.unsqueeze(geq, [-1]), reduced, x])


_C = L - 2**252
_FOLD_L = np.stack([limbs(pow(256, j, L), 34) for j in range(64)])  # [64, 34]


def reduce_mod_l(b: Builder, digest: str) -> str:
    """int32 [M, 32] byte digits (little-endian) of k = h mod L, or of k + L when that is
    below 2^254 (every use is [k] applied to a point of order L), from digest bytes [M, 64].

    V = sum_j h_j (256^j mod L) < 2^267 (34 limbs), V = lo + 2^252 t, k = lo + L - c t with
    c = L - 2^252 < 2^125: lo < 2^252 and c t < L, so 0 < k < 2^254."""
    _check(np.full(34, 64 * 255 * 255))
    v = normalize(b, b.op("MatMul", [digest, c32(b, _FOLD_L)]), _FOLD_L.sum(0) * 255)
    top = b.slice(v, 31, 34, 1)  # t = (x31 >> 4) + 16 x32 + 4096 x33 < 2^15
    hi = b.op("Div", [top, c32(b, [16, 1, 1])])
    t = b.op("MatMul", [hi, c32(b, [[1], [16], [4096]])])  # [M, 1]
    lo = b.op("Mod", [b.slice(v, 0, 32, 1), c32(b, [LIMIT] * (NL - 1) + [16])])  # V mod 2^252
    ct = b.op("Mul", [t, c32(b, limbs(_C, 18))])  # [M, 18], each < 2^23
    y = normalize(b, ct, np.full(18, 255 * (1 << 15)))
    pad = np.zeros((18, NL), dtype=np.int64)
    pad[np.arange(18), np.arange(18)] = 1
    y32 = b.op("MatMul", [y, c32(b, pad)])  # [M, 32]
    minimum = np.array([255] * 18 + [0] * 14, dtype=np.int64)
    off = _offset(L, minimum)
    k = b.op("Sub", [b.op("Add", [lo, c32(b, off)]), y32])
    k = b.op("Concat", [k, b.op("Mul", [b.slice(k, 0, 1, 1), c32(b, 0)])], axis=1)
    return b.slice(normalize(b, k, np.append(off + 255, 0)), 0, NL, 1)
