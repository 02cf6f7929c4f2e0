"""The hash scalar h = SHA-512(R || A || M) (512 bits, little-endian) reduced mod L in the graph.

The result is 32 byte digits of some k < 2^254 with k = h (mod L), which is all the fixed-base
tables need ([k](-A) = [h mod L](-A) because A has order L):

1. V = sum_j h_j (256^j mod L): one MatMul with a constant [64, 16] limb matrix, V < 2^266.
2. Exact carries (16-bit limbs, float64) give V = lo + 2^252 t with lo < 2^252, t < 2^14.
3. 2^252 = -c (mod L) with c = L - 2^252 < 2^125, so k = lo + L - c t lies in (0, 2^254).
4. Exact carries again, then each 16-bit limb splits into two bytes.
"""

from __future__ import annotations

import numpy as np

from . import field as fe
from .builder import DOUBLE, INT64, Builder
from .ref import L

NL = fe.NL
_C = L - 2**252
_RIPPLE = 20  # 3 rounds shrink carries to 0 / +-1, then a carry ripples at most 15 limbs


def _limbs(v: int) -> np.ndarray:
    return np.array([(v >> (16 * k)) & 0xFFFF for k in range(NL)], dtype=np.float64)


_FOLD = np.stack([_limbs(pow(256, j, L)) for j in range(64)])  # [64, 16]


def reduce_mod_l(b: Builder, digest: str) -> str:
    """int64 [n, 32] byte digits (little-endian) of k = h mod L (+ a multiple of L)."""
    h = b.op("Cast", [digest], to=DOUBLE)  # [n, 64]
    x = fe.carry(b, b.op("MatMul", [h, b.const(_FOLD)]), rounds=_RIPPLE, wrap=False)
    t = b.op("Floor", [b.op("Mul", [b.slice(x, NL - 1, NL, 1), b.const(np.float64(2**-12))])])
    step = -_limbs(_C)
    step[NL - 1] -= 2**12  # lo = x - 2^252 t, then - c t
    x = b.op("Add", [b.op("Add", [x, b.op("Mul", [t, b.const(step)])]), b.const(_limbs(L))])
    x = fe.carry(b, x, rounds=_RIPPLE, wrap=False)
    high = b.op("Floor", [b.op("Mul", [x, b.const(np.float64(1 / 256))])])
    low = b.op("Sub", [x, b.op("Mul", [high, b.const(np.float64(256))])])
    pairs = b.op("Concat", [b.unsqueeze(low, [2]), b.unsqueeze(high, [2])], axis=2)
    return b.op("Cast", [b.reshape(pairs, [0, 2 * NL])], to=INT64)
