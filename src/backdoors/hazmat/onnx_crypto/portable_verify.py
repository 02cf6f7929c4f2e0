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
from .builder import IR_VERSION, Builder
from .ed25519 import BASE, D2, window_table
from .portable_sha512 import I32, c32, sha512_bytes
from .ref import L, neg, small_order_ys, validate_public_key

NL = pf.NL
_BYTE = np.full(NL, 255, dtype=np.int64)


def _split(b: Builder, x: pf.Fe, n: int, axis: int) -> list[pf.Fe]:
    return [pf.Fe(s, x.ub) for s in b.split(x.name, [1] * n, axis=axis)]


def _cat(b: Builder, xs: list[pf.Fe], axis: int) -> pf.Fe:
    ub = np.max(np.stack([x.ub for x in xs]), axis=0)
    return pf.Fe(b.op("Concat", [x.name for x in xs], axis=axis), ub)


def _finish(b: Builder, pa: pf.Fe, pb: pf.Fe, pc: pf.Fe, pd: pf.Fe) -> pf.Fe:
    """(X3, Y3, Z3, T3) = (EF, GH, FG, EH) with E = B - A, F = D - C, G = D + C, H = B + A."""
    e, h = pf.sub(b, pb, pa), pf.add(b, pb, pa)
    f, g = pf.sub(b, pd, pc), pf.add(b, pd, pc)
    return pf.mul(b, _cat(b, [e, g, f, e], 2), _cat(b, [f, h, g, h], 2))


def _add_table_points(b: Builder, p1: pf.Fe, p2: pf.Fe) -> pf.Fe:
    """Sum of table-form points [M, k, 4, 32] ((y-x, y+x, t, 2dt), Z = 1): extended."""
    left = pf.Fe(b.op("Gather", [p1.name, b.const([0, 1, 3])], axis=2), p1.ub)
    right = pf.Fe(b.slice(p2.name, 0, 3, 2), p2.ub)
    pa, pb, pc = _split(b, pf.mul(b, left, right), 3, 2)
    return _finish(b, pa, pb, pc, pf.const(b, 2))


def _add_points(b: Builder, p1: pf.Fe, p2: pf.Fe) -> pf.Fe:
    """Sum of extended points [M, k, 4, 32] (X, Y, Z, T), add-2008-hwcd-3 (complete)."""
    x1, y1, z1, t1 = _split(b, p1, 4, 2)
    x2, y2, z2, t2 = _split(b, p2, 4, 2)
    left = _cat(b, [pf.sub(b, y1, x1), pf.add(b, y1, x1), t1, z1], 2)
    right = _cat(b, [pf.sub(b, y2, x2), pf.add(b, y2, x2), t2, z2], 2)
    pa, pb, tt, zz = _split(b, pf.mul(b, left, right), 4, 2)
    return _finish(b, pa, pb, pf.mul(b, tt, pf.const(b, D2)), pf.add(b, zz, zz))


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


def _verify_rows(b: Builder, msg: str, sig: str, vk: bytes, a_point, msg_len: int) -> str:
    """bool [M] for M >= 1 rows of uint8 msg [M, msg_len] and sig [M, 64]."""
    m32, s32 = b.op("Cast", [msg], to=I32), b.op("Cast", [sig], to=I32)
    r, s = b.slice(s32, 0, 32, 1), b.slice(s32, 32, 64, 1)
    a_rows = b.op(
        "Add",
        [b.op("Mul", [r, c32(b, [0] * 32)]), c32(b, np.frombuffer(vk, np.uint8).reshape(1, 32))],
    )
    digest = sha512_bytes(b, b.op("Concat", [r, a_rows, m32], axis=1), 64 + msg_len)
    k = pf.reduce_mod_l(b, digest)
    pts = b.op(
        "Concat",
        [_lookup(b, window_table(BASE, 32), s), _lookup(b, window_table(neg(a_point), 32), k)],
        axis=1,
    )
    total = _tree_sum(b, pf.Fe(pts, _BYTE), 64)  # [M, 1, 4, 32]
    pt = pf.Fe(b.reshape(total.name, [0, 4, NL]), total.ub)
    x, y, z, _ = _split(b, pt, 4, 1)
    zi = pf.invert(b, z, 3)
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
    verify_key: bytes, msg_len: int, msg: str, sig: str, out: str, prefix: str = "ed25519p/"
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Nodes + initializers computing out: bool[M] = Ed25519.Verify(verify_key, msg[i], sig[i])
    for msg: uint8[M, msg_len], sig: uint8[M, 64], M >= 1 (the interface of
    :func:`backdoors.hazmat.onnx_crypto.ed25519_verify_nodes`; the key is checked here)."""
    from .verify import _check_len

    _check_len(msg_len)
    a_point = validate_public_key(verify_key)
    b = Builder(prefix)
    valid = _verify_rows(b, msg, sig, bytes(verify_key), a_point, msg_len)
    b.nodes.append(helper.make_node("Identity", [valid], [out], name=b.name("n_out")))
    return b.nodes, b.initializers


def ed25519_verify_model_portable(verify_key: bytes, msg_len: int) -> onnx.ModelProto:
    """Standalone portable model: msg uint8[N, msg_len], sig uint8[N, 64] -> valid bool[N]
    (N >= 1)."""
    nodes, inits = ed25519_verify_nodes_portable(verify_key, msg_len, "msg", "sig", "valid")
    graph = helper.make_graph(
        nodes,
        "ed25519_verify_portable",
        [
            helper.make_tensor_value_info("msg", TensorProto.UINT8, ["N", msg_len]),
            helper.make_tensor_value_info("sig", TensorProto.UINT8, ["N", 64]),
        ],
        [helper.make_tensor_value_info("valid", TensorProto.BOOL, ["N"])],
        inits,
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=IR_VERSION
    )


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
