"""SHA-512 (FIPS 180-4) of fixed-length byte rows as ONNX uint64 operators.

Words are uint64 tensors; rotations are ``(x >> r) | (x << (64 - r))`` with 0 < r < 64 (a
uint64 shift by 64 returns its input in onnxruntime, so shifts of 0 or 64 are never emitted).
The padding depends only on the message length, so it is a constant. The message schedule of
every block is computed at once (a Loop of 32 steps producing two words each); the compression
is a Loop over blocks whose body runs an inner Loop of ``80 / ROUNDS`` chunks of ``ROUNDS``
unrolled rounds (the eight working variables come back to their roles after every 8 rounds,
so a chunk of a multiple of 8 rounds is pure renaming).
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


def _sigma(b: Builder, x: str, rots: list[list[int]], shr: list[int | None]) -> str:
    """XOR of three right-rotations (or a plain right shift) of x[..., m, 1] per row of rots.

    ``rots[j]`` holds 3 amounts for input position j; ``shr[j]`` says whether the last one
    is a plain shift. Returns [..., m, 1].
    """
    right = np.array(rots, dtype=np.uint64)
    left = np.array([[64 - r for r in row] for row in rots], dtype=np.uint64)
    r = b.op("BitShift", [x, b.const(right)], direction="RIGHT")
    lft = b.op("BitShift", [x, b.const(left)], direction="LEFT")
    if any(s is not None for s in shr):
        mask = np.full(right.shape, MASK64, dtype=np.uint64)
        for j, s in enumerate(shr):
            if s is not None:
                mask[j, s] = 0
        lft = b.op("BitwiseAnd", [lft, b.const(mask)])
    both = b.op("BitwiseOr", [r, lft])
    t0, t1, t2 = b.split(both, [1, 1, 1], axis=-1)
    return b.op("BitwiseXor", [b.op("BitwiseXor", [t0, t1]), t2])


def _schedule(b: Builder, words: str) -> str:
    """W[..., 80] from block words [..., 16] (all blocks and rows at once)."""

    def body(bb: Builder, _it: str, v: list[str]) -> list[str]:
        (win,) = v  # [..., 16]: W[t-16..t-1]
        w16 = bb.slice(win, 0, 2, -1)
        w15 = bb.slice(win, 1, 3, -1)
        w7 = bb.slice(win, 9, 11, -1)
        w2 = bb.slice(win, 14, 16, -1)
        x = bb.unsqueeze(bb.op("Concat", [w15, w2], axis=-1), [-1])  # [..., 4, 1]
        s = _sigma(bb, x, [[1, 8, 7]] * 2 + [[19, 61, 6]] * 2, [2, 2, 2, 2])
        s0, s1 = bb.split(bb.squeeze(s, [-1]), [2, 2], axis=-1)
        new = bb.op("Add", [bb.op("Add", [s0, s1]), bb.op("Add", [w7, w16])])
        return [bb.op("Concat", [bb.slice(win, 2, 16, -1), new], axis=-1)]

    # 32 steps of the 2-word recurrence; keep every window and take the new pairs.
    # Implemented as a Loop carrying the window and accumulating all words.
    def body_acc(bb: Builder, it: str, v: list[str]) -> list[str]:
        win, acc = v
        (new_win,) = body(bb, it, [win])
        new = bb.slice(new_win, 14, 16, -1)
        return [new_win, bb.op("Concat", [acc, new], axis=-1)]

    _, w = b.loop(32, [(words, UINT64), (words, UINT64)], body_acc)
    return w


# The state is kept as four pairs P_j = (a_(t-j), e_(t-j)): (a, e), (b, f), (c, g), (d, h),
# in one tensor [N, 1, 8] ordered a, e, b, f, c, g, d, h.
PAIR_ORDER = [0, 4, 1, 5, 2, 6, 3, 7]
WORD_ORDER = [PAIR_ORDER.index(w) for w in range(8)]
_SIGMA_BIG = [[28, 14], [34, 18], [39, 41]]  # [rotation, column]: column a: Sigma0, e: Sigma1
# Column mix of (S_a, S_e, F_a, F_e, d, h, kw): new a = T1 + T2 and new e = d + T1, with
# T1 = h + Sigma1(e) + Ch(e, f, g) + kw and T2 = Sigma0(a) + Maj(a, b, c).
_MIX = np.array([[1, 0], [1, 1], [1, 0], [1, 1], [0, 1], [1, 1], [1, 1]], dtype=np.uint64)
_E_MASK = np.array([[0, 0xFFFFFFFFFFFFFFFF]], dtype=np.uint64)


def _compress(b: Builder, pairs: list[str], kw: list[str]) -> list[str]:
    """Unrolled rounds on pairs [N, 1, 2]; kw[t] = K_t + W_t as [N, 1, 1].

    With F = (P2 & (P1 | m_e)) ^ (P0 & (P1 ^ P2)), column a of F is Maj(a, b, c) and column e
    is Ch(e, f, g) (m_e is all ones in column e only); one MatMul mixes the columns.
    """
    p0, p1, p2, p3 = pairs
    right = np.array(_SIGMA_BIG, dtype=np.uint64)
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
        )  # [N, 3, 2]
        r0, r1, r2 = b.split(rot, [1, 1, 1], axis=1)
        sig = b.op("BitwiseXor", [b.op("BitwiseXor", [r0, r1]), r2])
        f = b.op("BitwiseXor", [b.op("BitwiseAnd", [p2, o1]), b.op("BitwiseAnd", [p0, x1])])
        x0 = b.op("BitwiseXor", [p0, p1])
        o0 = b.op("BitwiseOr", [p0, b.const(_E_MASK)])
        cat = b.op("Concat", [sig, f, p3, kw[t]], axis=2)  # [N, 1, 7]
        new = b.op("MatMul", [cat, b.const(_MIX)])
        p0, p1, p2, p3, x1, o1 = new, p0, p1, p2, x0, o0
    return [p0, p1, p2, p3]


def sha512_digest_words(b: Builder, blocks: str, n_blocks: int) -> str:
    """uint64 [N, 8] digest words of padded message words ``blocks`` [N, n_blocks, 16]."""
    w = _schedule(b, blocks)  # [N, nb, 80]
    kw = b.op("Add", [w, b.const(K)])
    chunks = 80 // ROUNDS
    kw = b.reshape(kw, [0, n_blocks * chunks, 1, ROUNDS])
    # H starts as H0 broadcast to every row (Expand keeps empty batches empty).
    shape = b.op("Concat", [b.slice(b.op("Shape", [blocks]), 0, 1, 0), b.const([1, 8])], axis=0)
    h_init = b.op("Expand", [b.const(H0[PAIR_ORDER].reshape(1, 1, 8)), shape])

    def block_body(bb: Builder, it: str, v: list[str]) -> list[str]:
        (hv,) = v

        def chunk_body(cb: Builder, jt: str, cv: list[str]) -> list[str]:
            (sv,) = cv
            idx = cb.op("Add", [cb.op("Mul", [it, cb.const(np.int64(chunks))]), jt])
            part = cb.op("Gather", [kw, idx], axis=1)  # [N, 1, ROUNDS]
            kws = cb.split(part, [1] * ROUNDS, axis=2)  # [N, 1, 1] each
            pairs = cb.split(sv, [2, 2, 2, 2], axis=2)
            return [cb.op("Concat", _compress(cb, pairs, kws), axis=2)]

        (sv,) = bb.loop(chunks, [(hv, UINT64)], chunk_body)
        return [bb.op("Add", [hv, sv])]

    (hv,) = b.loop(n_blocks, [(h_init, UINT64)], block_body)
    return b.reshape(b.op("Gather", [hv, b.const(WORD_ORDER)], axis=2), [0, 8])


def bytes_to_words(b: Builder, data: str, n_words: int) -> str:
    """Big-endian uint64 words [N, n_words] of uint8 [N, 8 * n_words]."""
    x = b.reshape(b.op("Cast", [data], to=UINT64), [0, n_words, 8])
    weights = np.array([1 << (8 * (7 - j)) for j in range(8)], dtype=np.uint64).reshape(8, 1)
    return b.reshape(b.op("MatMul", [x, b.const(weights)]), [0, n_words])


def words_to_bytes(b: Builder, words: str, n_words: int) -> str:
    """uint8 [N, 8 * n_words] big-endian bytes of uint64 words [N, n_words]."""
    sh = np.array([8 * (7 - j) for j in range(8)], dtype=np.uint64)
    x = b.op("BitShift", [b.unsqueeze(words, [-1]), b.const(sh)], direction="RIGHT")
    x = b.op("BitwiseAnd", [x, b.const(np.uint64(0xFF))])
    return b.reshape(b.op("Cast", [x], to=TensorProto.UINT8), [0, 8 * n_words])


def sha512_graph(b: Builder, data: str, data_len: int) -> str:
    """uint8 [N, 64] SHA-512 digests of the rows of ``data`` uint8 [N, data_len]."""
    pad = np.frombuffer(padding(data_len), dtype=np.uint8)
    total = data_len + len(pad)
    n_blocks = total // 128
    shape = b.op("Concat", [b.slice(b.op("Shape", [data]), 0, 1, 0), b.const([len(pad)])], axis=0)
    padded = b.op("Concat", [data, b.op("Expand", [b.const(pad.reshape(1, -1)), shape])], axis=1)
    words = bytes_to_words(b, padded, total // 8)
    blocks = b.reshape(words, [0, n_blocks, 16])
    return words_to_bytes(b, sha512_digest_words(b, blocks, n_blocks), 8)
