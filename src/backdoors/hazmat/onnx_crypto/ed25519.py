"""Ed25519 group arithmetic on limb tensors (RFC 8032 Section 5.1.4, extended coordinates).

[S]B + [k](-A) is a sum of fixed-base window points: with byte digits s_i and k_j,
[S]B = sum_i [s_i]([256^i]B) and [k](-A) = sum_j [k_j]([256^j](-A)). Every window point is
a constant table row (Gather by digit), so no doubling is left: the 32 + 32 looked-up points are
added as a balanced tree, each level one vectorised addition (add-2008-hwcd-3, complete on
this curve, so the identity and equal points need no special case). Table rows hold
(y - x, y + x, t, 2 d t) of the affine point as 16-bit limbs.
"""

from __future__ import annotations

import functools

import numpy as np

from . import field as fe
from .builder import DOUBLE, INT64, Builder
from .ref import BASE, IDENTITY, D, P, Point, add, affine, neg

NL = fe.NL
D2 = 2 * D % P


@functools.lru_cache(maxsize=8)
def window_table(point: Point, windows: int) -> np.ndarray:
    """uint16 [windows * 256, 4 * 16]: row 256 i + v = [v * 256^i] point in table form."""
    coords = []
    base = point
    for _ in range(windows):
        cur = IDENTITY
        for _v in range(256):
            x, y = affine(cur)
            t = x * y % P
            coords += [(y - x) % P, (y + x) % P, t, D2 * t % P]
            cur = add(cur, base)
        base = cur  # [256^(i+1)] point
    raw = b"".join(c.to_bytes(32, "little") for c in coords)
    return np.frombuffer(raw, dtype="<u2").astype(np.uint16).reshape(windows * 256, 4 * NL)


def lookup(b: Builder, table: np.ndarray, digits: str, windows: int) -> str:
    """float64 [N, windows, 4, 16] table points for int64 digits [N, windows] in [0, 256)."""
    idx = b.op("Add", [digits, b.const(np.arange(windows, dtype=np.int64) * 256)])
    rows = b.op("Gather", [b.const(table, hint="window_table"), idx], axis=0)
    return b.reshape(b.op("Cast", [rows], to=DOUBLE), [0, windows, 4, NL])


def _add_table_points(b: Builder, p1: str, p2: str) -> str:
    """Sum of two table-form points [N, k, 4, 16] (Z = 1): extended (X, Y, Z, T)."""
    left = b.op("Gather", [p1, b.const([0, 1, 3])], axis=2)  # y-x, y+x, 2dt
    right = b.slice(p2, 0, 3, 2)  # y-x, y+x, t
    pa, pb, pc = b.split(fe.mul(b, left, right, rank=4), [1, 1, 1], axis=2)
    pd = b.const(fe.to_limbs(2))
    return _finish(b, pa, pb, pc, pd)


def _finish(b: Builder, pa: str, pb: str, pc: str, pd: str) -> str:
    e, h = b.op("Sub", [pb, pa]), b.op("Add", [pb, pa])
    f, g = b.op("Sub", [pd, pc]), b.op("Add", [pd, pc])
    left = b.op("Concat", [e, g, f, e], axis=2)
    right = b.op("Concat", [f, h, g, h], axis=2)
    return fe.mul(b, left, right, rank=4)  # X3 = EF, Y3 = GH, Z3 = FG, T3 = EH


def add_points(b: Builder, p1: str, p2: str) -> str:
    """Sum of extended points [N, k, 4, 16] (X, Y, Z, T)."""
    x1, y1, z1, t1 = b.split(p1, [1, 1, 1, 1], axis=2)
    x2, y2, z2, t2 = b.split(p2, [1, 1, 1, 1], axis=2)
    left = b.op("Concat", [b.op("Sub", [y1, x1]), b.op("Add", [y1, x1]), t1, z1], axis=2)
    right = b.op("Concat", [b.op("Sub", [y2, x2]), b.op("Add", [y2, x2]), t2, z2], axis=2)
    pa, pb, tt, zz = b.split(fe.mul(b, left, right, rank=4), [1, 1, 1, 1], axis=2)
    pc = fe.mul_const(b, tt, D2)
    return _finish(b, pa, pb, pc, b.op("Add", [zz, zz]))


def tree_sum(b: Builder, pts: str, k: int) -> str:
    """Sum over axis 1 of k table-form points [N, k, 4, 16] (k a power of two, k >= 2):
    extended [N, 1, 4, 16]. Level 1 adds point i to point i + k/2."""
    assert k >= 2 and k & (k - 1) == 0
    first = True
    while k > 1:
        half = k // 2
        p1, p2 = b.slice(pts, 0, half, 1), b.slice(pts, half, k, 1)
        pts = _add_table_points(b, p1, p2) if first else add_points(b, p1, p2)
        k, first = half, False
    return pts


def encode_parts(b: Builder, pt: str, rows: int) -> tuple[str, str]:
    """Canonical affine (x, y) limbs [N, 16] each of extended points [N, 4, 16], N <= rows."""
    x, y, z, _ = b.split(pt, [1, 1, 1, 1], axis=1)
    zi = fe.batch_invert(b, z, rows)
    xy = fe.freeze(b, fe.mul(b, b.op("Concat", [x, y], axis=1), zi))
    xs, ys = b.split(b.op("Cast", [xy], to=INT64), [1, 1], axis=1)
    return b.squeeze(xs, [1]), b.squeeze(ys, [1])


__all__ = ["BASE", "add_points", "encode_parts", "lookup", "neg", "tree_sum", "window_table"]
