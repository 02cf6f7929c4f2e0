"""SHA-512 (FIPS 180-4) as portable ONNX: int32 bit tensors, no Loop, no bitwise operator.

The *portable* profile of the verifier runs in runtimes that lack ONNX ``Loop`` (tract) or
compute 64-bit integers in 32 bits and float MatMuls in bfloat16 (OpenVINO's CPU plugin on
CPUs with AVX512-BF16). Every value is an int32 below ``2^24`` (exact even where a runtime
runs an int32 MatMul in float32), every loop is unrolled, and the only operators are
``Add/Sub/Mul/Div/Mod`` (on non-negative operands: floor and truncation agree), ``MatMul``,
``Concat/Slice/Reshape/Gather/Unsqueeze`` and ``Cast``.

A 64-bit word is its 64 bits (LSB first) as int32 0/1 values, so that

* a rotation or shift is a permutation: ``Sigma(x) = (x @ S) mod 2`` with ``S`` the sum of the
  three permutation matrices (XOR of bits is their sum mod 2);
* ``Ch(e, f, g) = g + e (f - g)`` and ``Maj(a, b, c) = c + (a XOR c)(b - c)`` on bits;
* a sum of words mod 2^64 goes through four 16-bit limbs: ``bits @ Lm`` (``Lm[j, j // 16] =
  2^(j mod 16)``), limb sums below ``2^19``, carry rounds (``q = s div 2^16``; ``s += q @ C``
  moves ``q`` one limb up, the top limb's carry dropped), and back to bits by ``div 2^j mod 2``.

The state is kept as four pairs ``(a, e), (b, f), (c, g), (d, h)`` of 128 bits each, so one
``MatMul`` computes ``Sigma0(a)`` and ``Sigma1(e)`` together and one ``MatMul`` forms the limbs of
the new ``a = T1 + T2`` and ``e = d + T1`` from ``[Sigma, F, (d, h), W_t]``.
"""

from __future__ import annotations

import numpy as np

from .builder import Builder
from .sha512 import H0, K, padding

I32 = 6  # TensorProto.INT32
WORD = 64
RADIX = 1 << 16
_PAIR = [0, 4, 1, 5, 2, 6, 3, 7]  # a, e, b, f, c, g, d, h
_WORD_ORDER = [_PAIR.index(w) for w in range(8)]


def c32(b: Builder, value, hint: str = "c") -> str:
    """An int32 constant of rank >= 1 (tract mis-types scalar constants in Scan bodies)."""
    return b.const(np.atleast_1d(np.asarray(value, dtype=np.int32)), dtype=np.int32, hint=hint)


def mod2(b: Builder, x: str, width: int) -> str:
    """``x mod 2`` of non-negative int32 ``x`` (``Mod``: tract's optimizer does not finish on
    long chains of the equivalent ``x - 2 (x div 2)``). The divisor has x's last dimension
    ``width``: tract's Scan mis-types a body whose constants broadcast along an axis."""
    return b.op("Mod", [x, c32(b, [2] * width)])


def _rot_matrix(rots: list[int], shr: int | None = None) -> np.ndarray:
    """[64, 64] 0..3 counts: out bit j = sum over rotations of in bit (j + r) mod 64 (LSB
    first), plus in bit j + shr (if < 64) for a plain right shift."""
    m = np.zeros((WORD, WORD), dtype=np.int32)
    for r in rots:
        for j in range(WORD):
            m[(j + r) % WORD, j] += 1
    if shr is not None:
        for j in range(WORD - shr):
            m[j + shr, j] += 1
    return m


_SIG0 = _rot_matrix([1, 8], 7)
_SIG1 = _rot_matrix([19, 61], 6)
_BIG = np.zeros((2 * WORD, 2 * WORD), dtype=np.int32)
_BIG[:WORD, :WORD] = _rot_matrix([28, 34, 39])  # Sigma0(a)
_BIG[WORD:, WORD:] = _rot_matrix([14, 18, 41])  # Sigma1(e)
_LM = np.zeros((WORD, 4), dtype=np.int32)
for _j in range(WORD):
    _LM[_j, _j // 16] = 1 << (_j % 16)
_MASK_A = np.array([1] * WORD + [0] * WORD, dtype=np.int32)


def _mix() -> np.ndarray:
    """[448, 8] limb matrix of [Sa, Se, Fa, Fe, d, h, W] -> limbs of (new a, new e)."""
    blocks = {"a": [0, 1, 2, 3, 5, 6], "e": [1, 3, 4, 5, 6]}  # Sa Se Fa Fe d h W = 0..6
    m = np.zeros((7 * WORD, 8), dtype=np.int32)
    for col, (_, parts) in enumerate(blocks.items()):
        for p in parts:
            m[p * WORD : (p + 1) * WORD, 4 * col : 4 * col + 4] = _LM
    return m


_MIX = _mix()


def _limbs(v: int) -> list[int]:
    return [(int(v) >> (16 * k)) & 0xFFFF for k in range(4)]


def _bits(v: int) -> list[int]:
    return [(int(v) >> j) & 1 for j in range(WORD)]


def carry_words(b: Builder, s: str, bound: int) -> str:
    """Limbs of words mod 2^64 from limbs ``s [..., 4]`` in [0, bound]: limbs 0..2 exact in
    [0, 2^16), limb 3 correct mod 2^16 (callers read its low 16 bits only)."""
    cmat = np.zeros((4, 4), dtype=np.int32)
    for k in range(4):
        cmat[k, k] = -RADIX
        if k < 3:
            cmat[k, k + 1] = 1
    rounds, q = 0, bound // RADIX
    while q > 1:  # bound-driven rounds until every carry is 0 or 1
        rounds, q = rounds + 1, (RADIX - 1 + q) // RADIX
    # then a carry of 1 ripples through limbs 1..3 (limb 3 is read mod 2^16 by the bit
    # extraction, so it needs no round of its own)
    rounds += 3
    cm, radix = c32(b, cmat), c32(b, [RADIX] * 4)
    for _ in range(rounds):
        s = b.op("Add", [s, b.op("MatMul", [b.op("Div", [s, radix]), cm])])
    return s


def limbs_to_bits(b: Builder, s: str, shape: list[int]) -> str:
    """Bits (LSB first) of exact 16-bit limbs ``s [..., 4]``, reshaped to ``shape``."""
    pw = c32(b, [1 << j for j in range(16)])
    return b.reshape(mod2(b, b.op("Div", [b.unsqueeze(s, [-1]), pw]), 16), shape)


def _sigma_small(b: Builder, x: str, mat: np.ndarray) -> str:
    return mod2(b, b.op("MatMul", [x, c32(b, mat)]), WORD)


def next_word(b: Builder, win: str) -> str:
    """W_(t+16) bits [M, 1, 64] from the window W_t..W_(t+15) [M, 16, 64]:
    sigma1(W_(t+14)) + W_(t+9) + sigma0(W_(t+1)) + W_t mod 2^64."""
    parts = [
        _sigma_small(b, b.slice(win, 14, 15, 1), _SIG1),
        b.slice(win, 9, 10, 1),
        _sigma_small(b, b.slice(win, 1, 2, 1), _SIG0),
        b.slice(win, 0, 1, 1),
    ]
    lm4 = c32(b, np.concatenate([_LM] * 4, axis=0))  # [256, 4]
    limbs = b.op("MatMul", [b.op("Concat", parts, axis=-1), lm4])  # [M, 1, 4]
    return limbs_to_bits(b, carry_words(b, limbs, 4 * (RADIX - 1)), [0, 1, WORD])


def _round(b: Builder, p: list[str], w_t: str, kl: str) -> list[str]:
    """One round on pairs p = [(a,e), (b,f), (c,g), (d,h)], each [M, 128] bits; ``kl`` the
    limbs of K_t twice [8]."""
    p0, p1, p2, p3 = p
    sig = mod2(b, b.op("MatMul", [p0, c32(b, _BIG)]), 2 * WORD)
    q = b.op("Mul", [p2, c32(b, _MASK_A)])  # c in column a, 0 in column e
    pq = b.op("Mul", [p0, q])
    s = b.op("Sub", [b.op("Add", [p0, q]), b.op("Add", [pq, pq])])  # a XOR c | e
    f = b.op("Add", [p2, b.op("Mul", [s, b.op("Sub", [p1, p2])])])  # Maj | Ch
    cat = b.op("Concat", [sig, f, p3, w_t], axis=1)  # [M, 448]
    limbs = b.reshape(b.op("Add", [b.op("MatMul", [cat, c32(b, _MIX)]), kl]), [0, 2, 4])
    new = limbs_to_bits(b, carry_words(b, limbs, 7 * (RADIX - 1)), [0, 2 * WORD])
    return [new, p0, p1, p2]


_K_LIMBS = np.array([_limbs(k) * 2 for k in K], dtype=np.int32)  # [80, 8]


def digest_bits(b: Builder, blocks: str, nb: int, rows: int | None = None) -> str:
    """Digest words' bits [M, 8, 64] (natural order a..h) of block bits [M, nb, 16, 64]:
    per block one Scan of the 80 rounds; its state is the four pairs ([M, 512]) and the
    message schedule's window of 16 words (each round computes the word 16 rounds ahead;
    the last 16 are not used). ``rows``: M if fixed at build time (Scan bodies then have
    static shapes), else None."""
    corner = b.slice(b.slice(b.slice(blocks, 0, 1, 1), 0, 1, 2), 0, 1, 3)  # [M, 1, 1, 1]
    zeros = b.reshape(b.op("Mul", [corner, c32(b, 0)]), [0, 1, 1])
    h = b.op("Add", [zeros, c32(b, [_bits(H0[i]) for i in _PAIR])])  # [M, 8, 64], pair order
    lm2 = c32(b, np.concatenate([_LM] * 2, axis=0))
    kl = c32(b, _K_LIMBS)

    def rnd(bb: Builder, v: list[str], x: list[str]) -> list[str]:
        state, win = v
        p = [bb.slice(state, 128 * i, 128 * (i + 1), 1) for i in range(4)]
        w_t = bb.reshape(bb.slice(win, 0, 1, 1), [0, WORD])
        new = bb.op("Concat", [bb.slice(win, 1, 16, 1), next_word(bb, win)], axis=1)
        return [bb.op("Concat", _round(bb, p, w_t, x[0]), axis=1), new]

    for blk in range(nb):
        win = b.squeeze(b.slice(blocks, blk, blk + 1, 1), [1])  # [M, 16, 64]
        state, _ = b.scan(
            [(b.reshape(h, [0, 8 * WORD]), I32, [rows, 8 * WORD]), (win, I32, [rows, 16, WORD])],
            [(kl, I32, [8])],
            rnd,
        )
        cat = b.op("Concat", [h, b.reshape(state, [0, 8, WORD])], axis=-1)
        limbs = carry_words(b, b.op("MatMul", [cat, lm2]), 2 * (RADIX - 1))
        h = limbs_to_bits(b, limbs, [0, 8, WORD])
    return b.op("Gather", [h, b.const(np.array(_WORD_ORDER, dtype=np.int64))], axis=1)


def bytes_to_bits(b: Builder, x: str, n_words: int) -> str:
    """Word bits [M, n_words, 64] (LSB first) of big-endian int32 byte rows [M, 8 n_words]."""
    bits = mod2(b, b.op("Div", [b.unsqueeze(x, [-1]), c32(b, [1 << i for i in range(8)])]), 8)
    bits = b.reshape(bits, [0, n_words, 8, 8])
    rev = b.const(np.arange(7, -1, -1, dtype=np.int64))
    return b.reshape(b.op("Gather", [bits, rev], axis=2), [0, n_words, WORD])


def bits_to_bytes(b: Builder, bits: str, n_words: int) -> str:
    """Big-endian int32 bytes [M, 8 n_words] of word bits [M, n_words, 64]."""
    x = b.reshape(bits, [0, n_words, 8, 8])
    x = b.op("MatMul", [x, c32(b, [[1 << i] for i in range(8)])])  # [M, nw, 8, 1]
    rev = b.const(np.arange(7, -1, -1, dtype=np.int64))
    return b.reshape(b.op("Gather", [x, rev], axis=2), [0, 8 * n_words])


def sha512_bytes(b: Builder, data: str, data_len: int, rows: int | None = None) -> str:
    """int32 [M, 64] SHA-512 digest bytes of int32 byte rows ``data [M, data_len]``
    (``data_len >= 1``, ``M >= 1``)."""
    if data_len < 1:
        raise ValueError("the portable SHA-512 hashes rows of at least one byte")
    pad = np.frombuffer(padding(data_len), dtype=np.uint8).astype(np.int32)
    total = data_len + len(pad)
    nb = total // 128
    zero_col = b.op("Mul", [b.slice(data, 0, 1, 1), c32(b, 0)])  # [M, 1] zeros
    padded = b.op("Concat", [data, b.op("Add", [zero_col, c32(b, pad.reshape(1, -1))])], axis=1)
    blocks = b.reshape(bytes_to_bits(b, padded, total // 8), [0, nb, 16, WORD])
    return bits_to_bytes(b, digest_bits(b, blocks, nb, rows), 8)
