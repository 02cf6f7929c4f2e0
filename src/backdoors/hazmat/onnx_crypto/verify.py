"""Public entry points: SHA-512 and Ed25519.Verify node lists and a standalone model."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from backdoors.errors import InvalidInputError

from . import ed25519 as ed
from .builder import IR_VERSION, Builder, verifier_model
from .ref import L, small_order_ys, validate_public_key
from .scalar import reduce_mod_l
from .sha512 import sha512_graph, sha512_rows

MIN_OPSET = 18  # BitwiseAnd/Or/Xor/Not and ReduceMin with axes as an input


def _check_len(msg_len: int) -> None:
    if not isinstance(msg_len, int) or isinstance(msg_len, bool) or msg_len < 0:
        raise InvalidInputError(f"msg_len must be a non-negative integer, got {msg_len!r}")


def _check_opset(opset: int) -> None:
    if not isinstance(opset, int) or opset < MIN_OPSET:
        raise InvalidInputError(f"opset must be an integer >= {MIN_OPSET}, got {opset!r}")


def sha512_nodes(msg_len: int, msg: str, out: str, prefix: str = "sha512/") -> tuple[list, list]:
    """out: uint8[N, 64] = SHA-512 of each row of msg: uint8[N, msg_len] (fixed length)."""
    _check_len(msg_len)
    b = Builder(prefix)
    digest = sha512_rows(b, msg, msg_len)
    b.nodes.append(helper.make_node("Identity", [digest], [out], name=b.name("n_out")))
    return b.nodes, b.initializers


def sha512_model(msg_len: int, opset: int = 18) -> onnx.ModelProto:
    """Standalone model: input msg uint8[N, msg_len]; output digest uint8[N, 64]."""
    _check_opset(opset)
    nodes, inits = sha512_nodes(msg_len, "msg", "digest")
    graph = helper.make_graph(
        nodes,
        "sha512",
        [helper.make_tensor_value_info("msg", TensorProto.UINT8, ["N", msg_len])],
        [helper.make_tensor_value_info("digest", TensorProto.UINT8, ["N", 64])],
        inits,
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=IR_VERSION
    )


def _bytes_to_limbs(b: Builder, data: str) -> str:
    """int64 [N, 16] little-endian 16-bit limbs of uint8 [N, 32]."""
    x = b.reshape(b.op("Cast", [data], to=TensorProto.INT64), [0, 16, 2])
    return b.reshape(b.op("MatMul", [x, b.const(np.array([[1], [256]], dtype=np.int64))]), [0, 16])


def _lex_less(b: Builder, x: str, bound: int) -> str:
    """bool [N]: x < bound for canonical limbs x [N, 16] (most significant limb decides)."""
    bl = np.array([(bound >> (16 * k)) & 0xFFFF for k in range(16)], dtype=np.int64)
    sign = b.op("Sign", [b.op("Sub", [x, b.const(bl)])])
    w = b.op("MatMul", [sign, b.const(np.array([[1 << k] for k in range(16)], dtype=np.int64))])
    return b.squeeze(b.op("Less", [w, b.const(np.int64(0))]), [1])


CHUNK = 128  # rows verified together; bounds memory (the largest temporary is ~34 MB)


def ed25519_verify_nodes(
    verify_key: bytes, msg_len: int, msg: str, sig: str, out: str, prefix: str = "ed25519/"
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Nodes + initializers computing out: bool[N] = Ed25519.Verify(verify_key, msg[i], sig[i])
    for msg: uint8[N, msg_len] and sig: uint8[N, 64] (N may be 0). Every created name starts
    with prefix.

    libsodium's rule (crypto_sign_verify_detached): reject unless S < L, the 255-bit y of R is
    not one of the small-order encodings, and encode([S]B - [k]A) == R byte for byte, with
    k = SHA-512(R || A || M) mod L. The key itself is checked here, at build time. Rows are
    verified in a Loop over chunks of CHUNK rows (no iteration at all for N = 0, which also
    keeps empty tensors away from onnxruntime's reductions, which mishandle them).
    """
    _check_len(msg_len)
    a_point = validate_public_key(verify_key)
    b = Builder(prefix)
    n = b.op("Shape", [sig], start=0, end=1)
    trips = b.squeeze(b.op("Div", [b.op("Add", [n, b.const([CHUNK - 1])]), b.const([CHUNK])]), [0])

    def body(bb: Builder, it: str, v: list[str]) -> list[str]:
        start = bb.op("Mul", [bb.unsqueeze(it, [0]), bb.const([CHUNK])])
        stop = bb.op("Add", [start, bb.const([CHUNK])])
        rows = [bb.op("Slice", [x, start, stop, bb.const([0])]) for x in (msg, sig)]
        valid = _verify_rows(bb, rows[0], rows[1], bytes(verify_key), a_point, msg_len)
        return [bb.op("Concat", [v[0], valid], axis=0)]

    (valid,) = b.loop(trips, [(b.const(np.zeros(0, dtype=bool)), TensorProto.BOOL)], body)
    b.nodes.append(helper.make_node("Identity", [valid], [out], name=b.name("n_out")))
    return b.nodes, b.initializers


def _verify_rows(b: Builder, msg: str, sig: str, vk: bytes, a_point, msg_len: int) -> str:
    """bool [n] for n >= 1 rows."""
    r_bytes = b.slice(sig, 0, 32, 1)
    s_bytes = b.slice(sig, 32, 64, 1)
    shape = b.op("Concat", [b.op("Shape", [sig], start=0, end=1), b.const([32])], axis=0)
    a_rows = b.op("Expand", [b.const(np.frombuffer(vk, np.uint8).reshape(1, 32)), shape])
    digest = sha512_graph(b, b.op("Concat", [r_bytes, a_rows, msg], axis=1), 64 + msg_len)
    k_digits = reduce_mod_l(b, digest)
    s_digits = b.op("Cast", [s_bytes], to=TensorProto.INT64)
    pts = b.op(
        "Concat",
        [
            ed.lookup(b, ed.window_table(ed.BASE, 32), s_digits, 32),
            ed.lookup(b, ed.window_table(ed.neg(a_point), 32), k_digits, 32),
        ],
        axis=1,
    )
    x, y = ed.encode_parts(b, b.reshape(ed.tree_sum(b, pts, 64), [0, 4, 16]), CHUNK)

    r_limbs = _bytes_to_limbs(b, r_bytes)
    mask = np.full(16, 0xFFFF, dtype=np.int64)
    mask[15] = 0x7FFF
    r_y = b.op("BitwiseAnd", [r_limbs, b.const(mask)])
    r_sign = b.op("Div", [b.slice(r_limbs, 15, 16, 1), b.const(np.int64(1 << 15))])
    parity = b.op("BitwiseAnd", [b.slice(x, 0, 1, 1), b.const(np.int64(1))])
    diff = b.op("Concat", [b.op("Sub", [y, r_y]), b.op("Sub", [parity, r_sign])], axis=1)
    zero = b.const(np.int64(0))
    match = b.op(
        "Equal", [b.op("ReduceSum", [b.op("Abs", [diff]), b.const([1])], keepdims=0), zero]
    )
    s_ok = _lex_less(b, _bytes_to_limbs(b, s_bytes), L)
    black = np.stack(
        [
            np.array([(v >> (16 * k)) & 0xFFFF for k in range(16)], dtype=np.int64)
            for v in small_order_ys()
        ]
    )
    dist = b.op(
        "ReduceSum",
        [b.op("Abs", [b.op("Sub", [b.unsqueeze(r_y, [1]), b.const(black)])]), b.const([2])],
        keepdims=0,
    )
    small = b.op("Equal", [b.op("ReduceMin", [dist, b.const([1])], keepdims=0), zero])
    return b.op("And", [b.op("And", [match, s_ok]), b.op("Not", [small])])


def ed25519_verify_model(verify_key: bytes, msg_len: int, opset: int = 18) -> onnx.ModelProto:
    """Standalone model: inputs msg uint8[N, msg_len], sig uint8[N, 64]; output valid bool[N]."""
    _check_opset(opset)
    nodes, inits = ed25519_verify_nodes(verify_key, msg_len, "msg", "sig", "valid")
    return verifier_model(nodes, inits, "ed25519_verify", msg_len, opset)
