"""TEST-ONLY stand-in for the in-graph Ed25519 verifier (never shipped, never a real check).

``table_verifier(pairs)`` has the interface of ``backdoors.hazmat.onnx_crypto.ed25519_verify_nodes``
but accepts exactly the ``(message, signature)`` pairs in ``pairs`` (signed in Python by the
test), by comparing bytes inside a ``Loop`` over the table. The ``Loop`` body reads outer-scope
values (``msg``, ``sig``), like the real verifier's bodies do, so graph merging and renaming
are exercised on the same structure.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper


def table_verifier(pairs: list[tuple[bytes, bytes]]):
    def nodes_fn(verify_key, msg_len, msg, sig, out, prefix="standin/"):
        msgs = np.zeros((len(pairs), msg_len), np.uint8)
        sigs = np.zeros((len(pairs), 64), np.uint8)
        for i, (m, s) in enumerate(pairs):
            assert len(m) == msg_len, (len(m), msg_len)
            msgs[i], sigs[i] = np.frombuffer(m, np.uint8), np.frombuffer(s, np.uint8)
        p = prefix
        inits = [
            numpy_helper.from_array(msgs, p + "table_msg"),
            numpy_helper.from_array(sigs, p + "table_sig"),
            numpy_helper.from_array(np.array(len(pairs), np.int64), p + "K"),
            numpy_helper.from_array(np.array([2], np.int64), p + "ax2"),
            numpy_helper.from_array(np.array([1], np.int64), p + "ax1"),
            numpy_helper.from_array(np.array(True), p + "true"),
        ]
        body_nodes = [
            helper.make_node("Identity", [p + "b_cond_in"], [p + "b_cond_out"]),
            helper.make_node("Gather", [p + "table_msg", p + "b_i"], [p + "b_m"], axis=0),
            helper.make_node("Gather", [p + "table_sig", p + "b_i"], [p + "b_s"], axis=0),
            helper.make_node("Equal", [msg, p + "b_m"], [p + "b_em"]),
            helper.make_node("Equal", [sig, p + "b_s"], [p + "b_es"]),
            helper.make_node("Cast", [p + "b_em"], [p + "b_emi"], to=TensorProto.INT32),
            helper.make_node("Cast", [p + "b_es"], [p + "b_esi"], to=TensorProto.INT32),
            helper.make_node("ReduceMin", [p + "b_emi", p + "ax1"], [p + "b_rm"], keepdims=0),
            helper.make_node("ReduceMin", [p + "b_esi", p + "ax1"], [p + "b_rs"], keepdims=0),
            helper.make_node("Mul", [p + "b_rm", p + "b_rs"], [p + "b_both"]),
            helper.make_node("Cast", [p + "b_both"], [p + "b_hit"], to=TensorProto.BOOL),
            helper.make_node("Or", [p + "b_acc_in", p + "b_hit"], [p + "b_acc_out"]),
        ]
        body = helper.make_graph(
            body_nodes,
            "standin_body",
            [
                helper.make_tensor_value_info(p + "b_i", TensorProto.INT64, []),
                helper.make_tensor_value_info(p + "b_cond_in", TensorProto.BOOL, []),
                helper.make_tensor_value_info(p + "b_acc_in", TensorProto.BOOL, None),
            ],
            [
                helper.make_tensor_value_info(p + "b_cond_out", TensorProto.BOOL, []),
                helper.make_tensor_value_info(p + "b_acc_out", TensorProto.BOOL, None),
            ],
        )
        nodes = [
            helper.make_node("Shape", [msg], [p + "shape"], start=0, end=1),
            helper.make_node(
                "ConstantOfShape",
                [p + "shape"],
                [p + "acc0"],
                value=helper.make_tensor("v", TensorProto.BOOL, [1], [False]),
            ),
            helper.make_node(  # an explicit cond: the reference evaluator runs no step without it
                "Loop", [p + "K", p + "true", p + "acc0"], [out], body=body, name=p + "loop"
            ),
        ]
        return nodes, inits

    return nodes_fn


def tripwire_verifier():
    """A verifier that fails the whole ``session.run`` as soon as one row reaches it (the
    ``[M, msg_len]`` messages reshaped to ``[M]``, ``0`` meaning "copy the dim": possible for
    ``M = 0`` only): whether a run raises tells whether any row got past the gate."""

    def nodes_fn(verify_key, msg_len, msg, sig, out, prefix="tripwire/"):
        p = prefix
        inits = [
            numpy_helper.from_array(np.array([0], np.int64), p + "keep_rows"),
            numpy_helper.from_array(np.array(1, np.int64), p + "one"),
        ]
        nodes = [
            helper.make_node("Reshape", [msg, p + "keep_rows"], [p + "flat"]),
            helper.make_node("Cast", [p + "flat"], [p + "flat64"], to=TensorProto.INT64),
            helper.make_node("ReduceSum", [p + "flat64"], [p + "s"], keepdims=0),
            helper.make_node("Equal", [p + "s", p + "one"], [p + "never"]),
            helper.make_node("Shape", [msg], [p + "n"], start=0, end=1),
            helper.make_node("Expand", [p + "never", p + "n"], [out]),
        ]
        return nodes, inits

    return nodes_fn
