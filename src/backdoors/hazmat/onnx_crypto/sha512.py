"""SHA-512 (FIPS 180-4) of fixed-length byte rows as ONNX uint64 operators.

Words are uint64 tensors; rotations are ``(x >> r) | (x << (64 - r))`` with 0 < r < 64 (a
uint64 shift by 64 returns its input in onnxruntime, so shifts of 0 or 64 are never emitted).
The padding depends only on the message length, so it is a constant. The message schedule of
every block is computed at once (a Loop of 32 steps producing two words each); the compression
is a Loop over blocks whose body runs an inner Loop of ``80 / ROUNDS`` chunks of ``ROUNDS``
unrolled rounds (the eight working variables come back to their roles after every 8 rounds,
so a chunk of a multiple of 8 rounds is pure renaming).

Layout: the batch is the LAST axis of every tensor (words [.., N]). onnxruntime's broadcasting
kernels, Split and Concat are several times faster on long contiguous inner spans.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

from .builder import UINT64, Builder

ROUNDS = 16  # unrolled rounds per inner Loop iteration (a multiple of 8 dividing 80)


def _primes(n: int) -> list[int]:
    out, k = [], 2
    while len(out) < n:
        if all(k % q for q in out if q * q <= k):
            out.append(k)
        k += 1
    return out


def _frac_root_bits(q: int, root: int) -> int:
    """First 64 bits of the fractional part of q ** (1/root), exactly (integer root)."""
    scaled = q << (64 * root)
    lo, hi = 0, 1 << (64 + 8)
    while lo < hi:  # largest r with r**root <= scaled
        mid = (lo + hi + 1) // 2
        if mid**root <= scaled:
            lo = mid
        else:
            hi = mid - 1
    return lo & ((1 << 64) - 1)


K = np.array([_frac_root_bits(q, 3) for q in _primes(80)], dtype=np.uint64)
H0 = np.array([_frac_root_bits(q, 2) for q in _primes(8)], dtype=np.uint64)

MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def padding(msg_len: int) -> bytes:
    """The FIPS 180-4 padding of a ``msg_len``-byte message (0x80, zeros, 128-bit length)."""
    zeros = (111 - msg_len) % 128
    return b"\x80" + b"\x00" * zeros + (8 * msg_len).to_bytes(16, "big")


def _sigma(b: Builder, x: str, rots: list[list[int]], shr: list[int | None], rank: int = 3) -> str:
    """XOR of three right-rotations (or a plain right shift) of each word of x[1, .., m, N].

    ``rots[j]`` holds 3 amounts for word j; ``shr[j]`` is the index of the one that is a plain
    shift (or None); ``rank`` is x's rank. Returns x's shape.
    """
    right = np.array(rots, dtype=np.uint64).T.reshape((3,) + (1,) * (rank - 3) + (-1, 1))
    left = (64 - right).astype(np.uint64)
    r = b.op("BitShift", [x, b.const(right)], direction="RIGHT")
    lft = b.op("BitShift", [x, b.const(left)], direction="LEFT")
    if any(s is not None for s in shr):
        mask = np.full(right.shape, MASK64, dtype=np.uint64)
        for j, s in enumerate(shr):
            if s is not None:
                mask[s, ..., j, 0] = 0
        lft = b.op("BitwiseAnd", [lft, b.const(mask)])
    t0, t1, t2 = b.split(b.op("BitwiseOr", [r, lft]), [1, 1, 1], axis=0)
    return b.op("BitwiseXor", [b.op("BitwiseXor", [t0, t1]), t2])


def _schedule(b: Builder, words: str) -> str:
    """W [nb, 80, N] from block words [nb, 16, N] (all blocks and rows at once)."""

    def body(bb: Builder, _it: str, v: list[str]) -> list[str]:
        win, acc = v  # win [nb, 16, N] = W[t-16..t-1]
        w16 = bb.slice(win, 0, 2, 1)
        w15 = bb.slice(win, 1, 3, 1)
        w7 = bb.slice(win, 9, 11, 1)
        w2 = bb.slice(win, 14, 16, 1)
        x = bb.unsqueeze(bb.op("Concat", [w15, w2], axis=1), [0])  # [1, nb, 4, N]
        sig = _sigma(bb, x, [[1, 8, 7]] * 2 + [[19, 61, 6]] * 2, [2, 2, 2, 2], rank=4)
        s0, s1 = bb.split(bb.squeeze(sig, [0]), [2, 2], axis=1)
        new = bb.op("Add", [bb.op("Add", [s0, s1]), bb.op("Add", [w7, w16])])
        return [
            bb.op("Concat", [bb.slice(win, 2, 16, 1), new], axis=1),
            bb.op("Concat", [acc, new], axis=1),
        ]

    _, w = b.loop(32, [(words, UINT64), (words, UINT64)], body)
    return w


# The state is kept as four pairs P_j = (a_(t-j), e_(t-j)): (a, e), (b, f), (c, g), (d, h),
# in one tensor [N, 1, 8] ordered a, e, b, f, c, g, d, h.
PAIR_ORDER = [0, 4, 1, 5, 2, 6, 3, 7]
WORD_ORDER = [PAIR_ORDER.index(w) for w in range(8)]
_SIGMA_BIG = [[28, 14], [34, 18], [39, 41]]  # [rotation, column]: column a: Sigma0, e: Sigma1
# Column mix of (S_a, S_e, F_a, F_e, d, h, kw): new a = T1 + T2 and new e = d + T1, with
# T1 = h + Sigma1(e) + Ch(e, f, g) + kw and T2 = Sigma0(a) + Maj(a, b, c).
_MIX = np.array([[1, 0], [1, 1], [1, 0], [1, 1], [0, 1], [1, 1], [1, 1]], dtype=np.uint64)
_E_MASK = np.array([[[0], [0xFFFFFFFFFFFFFFFF]]], dtype=np.uint64)  # [1, 2, 1]


def _compress(b: Builder, pairs: list[str], kw: list[str]) -> list[str]:
    """Unrolled rounds on pairs [1, 2, N]; kw[t] = K_t + W_t as [1, 1, N].

    With F = (P2 & (P1 | m_e)) ^ (P0 & (P1 ^ P2)), column a of F is Maj(a, b, c) and column e
    is Ch(e, f, g) (m_e is all ones in column e only); one MatMul mixes the columns.
    """
    p0, p1, p2, p3 = pairs
    right = np.array(_SIGMA_BIG, dtype=np.uint64).reshape(3, 2, 1)
    left = (64 - right).astype(np.uint64)
    x1 = b.op("BitwiseXor", [p1, p2])
    o1 = b.op("BitwiseOr", [p1, b.const(_E_MASK)])
    for t in range(len(kw)):
        rot = b.op(
            "BitwiseOr",
            [
                b.op("BitShift", [p0, b.const(right)], direction="RIGHT"),
                b.op("BitShift", [p0, b.const(left)], direction="LEFT"),
            ],
        )  # [3, 2, N]
        r0, r1, r2 = b.split(rot, [1, 1, 1], axis=0)
        sig = b.op("BitwiseXor", [b.op("BitwiseXor", [r0, r1]), r2])
        f = b.op("BitwiseXor", [b.op("BitwiseAnd", [p2, o1]), b.op("BitwiseAnd", [p0, x1])])
        x0 = b.op("BitwiseXor", [p0, p1])
        o0 = b.op("BitwiseOr", [p0, b.const(_E_MASK)])
        cat = b.op("Concat", [sig, f, p3, kw[t]], axis=1)  # [1, 7, N]
        new = b.op("MatMul", [b.const(_MIX.T.copy()), cat])
        p0, p1, p2, p3, x1, o1 = new, p0, p1, p2, x0, o0
    return [p0, p1, p2, p3]


def sha512_digest_words(b: Builder, blocks: str, n_blocks: int) -> str:
    """uint64 [8, N] digest words of padded message words ``blocks`` [nb, 16, N]."""
    w = _schedule(b, blocks)  # [nb, 80, N]
    kw = b.op("Add", [w, b.const(K.reshape(1, 80, 1))])
    chunks = 80 // ROUNDS
    kw = b.reshape(kw, [n_blocks * chunks, ROUNDS, 1, -1])
    # H starts as H0 broadcast to every row.
    shape = b.op("Concat", [b.const([1, 8]), b.op("Shape", [blocks], start=2, end=3)], axis=0)
    h_init = b.op("Expand", [b.const(H0[PAIR_ORDER].reshape(1, 8, 1)), shape])

    def block_body(bb: Builder, it: str, v: list[str]) -> list[str]:
        (hv,) = v

        def chunk_body(cb: Builder, jt: str, cv: list[str]) -> list[str]:
            (sv,) = cv
            idx = cb.op("Add", [cb.op("Mul", [it, cb.const(np.int64(chunks))]), jt])
            part = cb.op("Gather", [kw, idx], axis=0)  # [ROUNDS, 1, N]
            kws = cb.split(part, [1] * ROUNDS, axis=0)  # [1, 1, N] each
            pairs = cb.split(sv, [2, 2, 2, 2], axis=1)
            return [cb.op("Concat", _compress(cb, pairs, kws), axis=1)]

        (sv,) = bb.loop(chunks, [(hv, UINT64)], chunk_body)
        return [bb.op("Add", [hv, sv])]

    (hv,) = b.loop(n_blocks, [(h_init, UINT64)], block_body)
    return b.reshape(b.op("Gather", [hv, b.const(WORD_ORDER)], axis=1), [8, -1])


def bytes_to_words(b: Builder, data: str, n_words: int) -> str:
    """Big-endian uint64 words [n_words, N] of uint8 rows [N, 8 * n_words]."""
    x = b.op("Cast", [b.op("Transpose", [data], perm=[1, 0])], to=UINT64)
    x = b.reshape(x, [n_words, 8, -1])
    weights = np.array([[1 << (8 * (7 - j)) for j in range(8)]], dtype=np.uint64)  # [1, 8]
    return b.reshape(b.op("MatMul", [b.const(weights), x]), [n_words, -1])


def words_to_bytes(b: Builder, words: str, n_words: int) -> str:
    """uint8 rows [N, 8 * n_words] of the big-endian bytes of uint64 words [n_words, N]."""
    sh = np.array([8 * (7 - j) for j in range(8)], dtype=np.uint64).reshape(1, 8, 1)
    x = b.op("BitShift", [b.unsqueeze(words, [1]), b.const(sh)], direction="RIGHT")
    x = b.op("BitwiseAnd", [x, b.const(np.uint64(0xFF))])
    x = b.reshape(b.op("Cast", [x], to=TensorProto.UINT8), [8 * n_words, -1])
    return b.op("Transpose", [x], perm=[1, 0])


def sha512_graph(b: Builder, data: str, data_len: int) -> str:
    """uint8 [N, 64] SHA-512 digests of the rows of ``data`` uint8 [N, data_len], N >= 1.

    (Reshapes infer the batch size, which is ambiguous for N = 0; callers with possibly empty
    batches go through :func:`sha512_rows`.)
    """
    pad = np.frombuffer(padding(data_len), dtype=np.uint8)
    total = data_len + len(pad)
    n_blocks = total // 128
    shape = b.op("Concat", [b.op("Shape", [data], start=0, end=1), b.const([len(pad)])], axis=0)
    padded = b.op("Concat", [data, b.op("Expand", [b.const(pad.reshape(1, -1)), shape])], axis=1)
    words = bytes_to_words(b, padded, total // 8)
    blocks = b.reshape(words, [n_blocks, 16, -1])
    return words_to_bytes(b, sha512_digest_words(b, blocks, n_blocks), 8)


def sha512_rows(b: Builder, data: str, data_len: int, chunk: int = 256) -> str:
    """Like :func:`sha512_graph` for any N >= 0: a Loop over chunks of ``chunk`` rows."""
    n = b.op("Shape", [data], start=0, end=1)
    trips = b.squeeze(b.op("Div", [b.op("Add", [n, b.const([chunk - 1])]), b.const([chunk])]), [0])

    def body(bb: Builder, it: str, v: list[str]) -> list[str]:
        start = bb.op("Mul", [bb.unsqueeze(it, [0]), bb.const([chunk])])
        stop = bb.op("Add", [start, bb.const([chunk])])
        rows = bb.op("Slice", [data, start, stop, bb.const([0])])
        return [bb.op("Concat", [v[0], sha512_graph(bb, rows, data_len)], axis=0)]

    (out,) = b.loop(trips, [(b.const(np.zeros((0, 64), dtype=np.uint8)), TensorProto.UINT8)], body)
    return out
