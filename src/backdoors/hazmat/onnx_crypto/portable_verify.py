"""Ed25519.Verify as portable ONNX: int32 only, no Loop, no bitwise operator.

The same verification as :func:`backdoors.hazmat.onnx_crypto.ed25519_verify_nodes`
(libsodium's accept/reject: ``S < L``, small-order ``R`` rejected, cofactorless equation
``encode([S]B - [k]A) == R``) built from :mod:`.portable_sha512` and :mod:`.portable_field`, for
runtimes without ONNX ``Loop`` (tract) or with 32-bit integers and bfloat16 float MatMuls
(OpenVINO's CPU plugin). Rows are verified all at once (no chunking; the verifier only runs
on rows that passed the backdoor's tag gate), one ``Scan`` per SHA-512 block and per long run
of squarings. Table points and group law as in :mod:`.ed25519` (window tables of
``[v 256^i]P`` as bytes, a balanced tree of complete additions, one inversion per row).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from . import portable_field as pf
from .builder import IR_VERSION, Builder, verifier_model
from .ed25519 import BASE, D2, window_table
from .portable_sha512 import I32, c32, sha512_bytes
from .ref import L, P, neg, small_order_ys, validate_public_key

NL = pf.NL
_BYTE = np.full(NL, 255, dtype=np.int64)


def _split(b: Builder, x: pf.Fe, n: int, axis: int) -> list[pf.Fe]:
    return [pf.Fe(s, x.ub) for s in b.split(x.name, [1] * n, axis=axis)]


def _cat(b: Builder, xs: list[pf.Fe], axis: int) -> pf.Fe:
    ub = np.max(np.stack([x.ub for x in xs]), axis=0)
    return pf.Fe(b.op("Concat", [x.name for x in xs], axis=axis), ub)


def _linear(b: Builder, q: pf.Fe, coef: list[list[int]], const: list[int] | None = None) -> pf.Fe:
    """Coordinate mix of points [M, k, c, 32]: row i of the result is
    ``sum_j coef[i][j] q_j + const[i]`` mod p, as one ``MatMul`` with the [r, c] matrix
    (no Split/Concat: tract's optimizer slows down badly on many of them) plus a constant
    that holds, per row, a multiple of p dominating the subtracted limbs."""
    cm = np.array(coef, dtype=np.int64)
    const = const or [0] * len(cm)
    neg, pos = np.clip(-cm, 0, None), np.clip(cm, 0, None)
    offs, ubs = [], []
    for i in range(len(cm)):
        off = pf.limbs(const[i] % P)
        if neg[i].any():
            off = off + pf._p_multiple(neg[i].sum() * q.ub)
        offs.append(off)
        ubs.append(pos[i].sum() * q.ub + off)
    out = b.op("Add", [b.op("MatMul", [c32(b, cm), q.name]), c32(b, np.stack(offs))])
    return pf.Fe(out, np.max(np.stack(ubs), axis=0))


# Rows over (X, Y, Z, T): Y - X, Y + X, T, Z; over (A, B, C, D): E = B - A, G = D + C,
# F = D - C, H = B + A; the product (E, G, F, E) * (F, H, G, H) is (X3, Y3, Z3, T3).
_PRE = [[-1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]]
_EGFE = [[-1, 1, 0, 0], [0, 0, 1, 1], [0, 0, -1, 1], [-1, 1, 0, 0]]
_FHGH = [[0, 0, -1, 1], [1, 1, 0, 0], [0, 0, 1, 1], [1, 1, 0, 0]]


def _add_table_points(b: Builder, p1: pf.Fe, p2: pf.Fe) -> pf.Fe:
    """Sum of table-form points [M, k, 4, 32] ((y-x, y+x, t, 2dt), Z = 1): extended.
    A, B, C = (y1-x1)(y2-x2), (y1+x1)(y2+x2), 2d t1 t2; D = 2."""
    left = pf.Fe(b.op("Gather", [p1.name, b.const([0, 1, 3])], axis=2), p1.ub)
    right = pf.Fe(b.slice(p2.name, 0, 3, 2), p2.ub)
    q = pf.mul(b, left, right)  # (A, B, C)
    egfe = _linear(b, q, [r[:3] for r in _EGFE], [0, 2, 2, 0])
    fhgh = _linear(b, q, [r[:3] for r in _FHGH], [2, 0, 2, 0])
    return pf.mul(b, egfe, fhgh)


def _add_points(b: Builder, p1: pf.Fe, p2: pf.Fe) -> pf.Fe:
    """Sum of extended points [M, k, 4, 32] (X, Y, Z, T), add-2008-hwcd-3 (complete)."""
    q = pf.mul(b, _linear(b, p1, _PRE), _linear(b, p2, _PRE))  # (A, B, T1 T2, Z1 Z2)
    scale = np.stack([pf.limbs(1), pf.limbs(1), pf.limbs(D2), pf.limbs(2)])
    q = pf.mul(b, q, pf.Fe(c32(b, scale), scale.max(axis=0)))  # (A, B, C, D)
    return pf.mul(b, _linear(b, q, _EGFE), _linear(b, q, _FHGH))


def _tree_sum(b: Builder, pts: pf.Fe, k: int) -> pf.Fe:
    """Sum over axis 1 of k table-form points (a power of two >= 2): extended [M, 1, 4, 32]."""
    first = True
    while k > 1:
        half = k // 2
        p1 = pf.Fe(b.slice(pts.name, 0, half, 1), pts.ub)
        p2 = pf.Fe(b.slice(pts.name, half, k, 1), pts.ub)
        pts = _add_table_points(b, p1, p2) if first else _add_points(b, p1, p2)
        k, first = half, False
    return pts


def _lookup(b: Builder, table: np.ndarray, digits: str) -> str:
    """int32 [M, 32, 4, 32] table points for int32 byte digits [M, 32]."""
    idx = b.op("Add", [digits, c32(b, np.arange(32) * 256)])
    raw = table.view(np.uint8).reshape(32 * 256, 4 * NL)  # 16-bit LE limbs = 8-bit limbs
    rows = b.op("Gather", [b.const(raw, dtype=np.uint8, hint="window_table"), idx], axis=0)
    return b.reshape(b.op("Cast", [rows], to=I32), [0, 32, 4, NL])


def _ones_matmul(b: Builder, x: str, n: int) -> str:
    return b.op("MatMul", [x, c32(b, np.ones((n, 1)))])


def _verify_rows(
    b: Builder, msg: str, sig: str, vk: bytes, a_point, msg_len: int, rows: int | None = None
) -> str:
    """bool [M] for M >= 1 rows of uint8 msg [M, msg_len] and sig [M, 64] (``rows``: M if
    fixed at build time)."""
    m32, s32 = b.op("Cast", [msg], to=I32), b.op("Cast", [sig], to=I32)
    r, s = b.slice(s32, 0, 32, 1), b.slice(s32, 32, 64, 1)
    a_rows = b.op(
        "Add",
        [b.op("Mul", [r, c32(b, [0] * 32)]), c32(b, np.frombuffer(vk, np.uint8).reshape(1, 32))],
    )
    digest = sha512_bytes(b, b.op("Concat", [r, a_rows, m32], axis=1), 64 + msg_len, rows)
    k = pf.reduce_mod_l(b, digest)
    pts = b.op(
        "Concat",
        [_lookup(b, window_table(BASE, 32), s), _lookup(b, window_table(neg(a_point), 32), k)],
        axis=1,
    )
    total = _tree_sum(b, pf.Fe(pts, _BYTE), 64)  # [M, 1, 4, 32]
    pt = pf.Fe(b.reshape(total.name, [0, 4, NL]), total.ub)
    x, y, z, _ = _split(b, pt, 4, 1)
    zi = pf.invert(b, z, [rows, 1, NL])
    xy = pf.freeze(b, pf.mul(b, _cat(b, [x, y], 1), zi))  # [M, 2, 32] canonical bytes
    xb, yb = (b.squeeze(v, [1]) for v in b.split(xy, [1, 1], axis=1))

    r_y = b.op("Mod", [r, c32(b, [256] * 31 + [128])])  # R without the sign bit
    r_sign = b.op("Div", [b.slice(r, 31, 32, 1), c32(b, 128)])
    parity = b.op("Mod", [b.slice(xb, 0, 1, 1), c32(b, 2)])
    diff = b.op("Concat", [b.op("Sub", [yb, r_y]), b.op("Sub", [parity, r_sign])], axis=1)
    diff = b.op("Abs", [diff])
    match = b.squeeze(b.op("Equal", [_ones_matmul(b, diff, NL + 1), c32(b, 0)]), [1])
    s_ok = pf.less_than(b, pf.pairs16(b, s), L)
    black = np.stack([pf.limbs(v) for v in small_order_ys()])  # [K, 32]
    dist = b.op("Abs", [b.op("Sub", [b.unsqueeze(r_y, [1]), c32(b, black)])])  # [M, K, 32]
    hits = b.op("Equal", [_ones_matmul(b, dist, NL), c32(b, 0)])  # [M, K, 1]
    small = b.op(
        "Greater",
        [b.op("ReduceMax", [b.op("Cast", [hits], to=I32), b.const([1, 2])], keepdims=0), c32(b, 0)],
    )
    return b.op("And", [b.op("And", [match, s_ok]), b.op("Not", [small])])


def ed25519_verify_nodes_portable(
    verify_key: bytes,
    msg_len: int,
    msg: str,
    sig: str,
    out: str,
    prefix: str = "ed25519p/",
    mask: str | None = None,
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Nodes + initializers computing out: bool[N] = Ed25519.Verify(verify_key, msg[i], sig[i])
    for msg: uint8[N, msg_len], sig: uint8[N, 64] (the interface of
    :func:`backdoors.hazmat.onnx_crypto.ed25519_verify_nodes`; the key is checked here), and
    with ``mask`` (bool [N]) only on the rows where it holds (false elsewhere).

    A ``Scan`` over the rows verifies one row per step (behind an ``If`` on the mask), so
    that every shape inside is static: tract cannot type a ``Scan`` whose input has a
    dimension that comes from ``NonZero``, so the backdoor hands the verifier the whole batch
    and the gate's mask rather than the gathered rows.
    """
    from .verify import _check_len

    _check_len(msg_len)
    a_point = validate_public_key(verify_key)
    b = Builder(prefix)

    def verify_one(bb: Builder, m_row: str, s_row: str) -> str:
        m, s = bb.unsqueeze(m_row, [0]), bb.unsqueeze(s_row, [0])
        ok = _verify_rows(bb, m, s, bytes(verify_key), a_point, msg_len, rows=1)
        return bb.squeeze(ok, [0])

    if mask is None:  # every row (OpenVINO converts no Scan nested directly in a Scan)
        first = b.op("Cast", [b.squeeze(b.slice(sig, 0, 1, 1), [1])], to=I32)
        mask = b.op("GreaterOrEqual", [first, c32(b, 0)])

    def one_row(bb: Builder, _v: list[str], x: list[str]) -> list[str]:
        then = Builder(bb.prefix, {"count": bb._shared["count"], "inits": [], "consts": {}})
        ok = verify_one(then, x[0], x[1])
        no = bb.name("no")
        false = helper.make_node(
            "Constant", [], [no], value=helper.make_tensor(no + "_v", TensorProto.BOOL, [], [0])
        )
        res = bb.name("row_valid")
        bb.nodes.append(
            helper.make_node(
                "If",
                [x[2]],
                [res],
                name=bb.name("n_If"),
                then_branch=helper.make_graph(
                    then.nodes,
                    bb.name("verify_row"),
                    [],
                    [helper.make_tensor_value_info(ok, TensorProto.BOOL, [])],
                    then.initializers,
                ),
                else_branch=helper.make_graph(
                    [false],
                    bb.name("skip_row"),
                    [],
                    [helper.make_tensor_value_info(no, TensorProto.BOOL, [])],
                ),
            )
        )
        return [res]

    scans = [
        (msg, TensorProto.UINT8, [msg_len]),
        (sig, TensorProto.UINT8, [64]),
        (mask, TensorProto.BOOL, []),
    ]
    (valid,) = b.scan([], scans, one_row, outputs=[(TensorProto.BOOL, [])])
    b.nodes.append(helper.make_node("Identity", [valid], [out], name=b.name("n_out")))
    return b.nodes, b.initializers


#: The backdoor's verifier branch passes the whole batch and the gate's row mask (``mask=``)
#: to verifiers that declare this (see :func:`ed25519_verify_nodes_portable`).
ed25519_verify_nodes_portable.takes_row_mask = True  # type: ignore[attr-defined]


def ed25519_verify_model_portable(verify_key: bytes, msg_len: int) -> onnx.ModelProto:
    """Standalone portable model: msg uint8[N, msg_len], sig uint8[N, 64] -> valid bool[N]
    (N >= 1)."""
    nodes, inits = ed25519_verify_nodes_portable(verify_key, msg_len, "msg", "sig", "valid")
    return verifier_model(nodes, inits, "ed25519_verify_portable", msg_len, 18)


def sha512_model_portable(msg_len: int) -> onnx.ModelProto:
    """Standalone portable model: msg uint8[N, msg_len] (N, msg_len >= 1) -> digest uint8[N, 64]."""
    b = Builder("sha512p/")
    digest = sha512_bytes(b, b.op("Cast", ["msg"], to=I32), msg_len)
    b.nodes.append(helper.make_node("Cast", [digest], ["digest"], to=TensorProto.UINT8))
    graph = helper.make_graph(
        b.nodes,
        "sha512_portable",
        [helper.make_tensor_value_info("msg", TensorProto.UINT8, ["N", msg_len])],
        [helper.make_tensor_value_info("digest", TensorProto.UINT8, ["N", 64])],
        b.initializers,
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=IR_VERSION
    )
