"""A tiny ONNX node/initializer builder with unique, prefixed names.

Every name a :class:`Builder` creates starts with its prefix, including the names used inside
``Loop`` bodies (a body is built by a child builder sharing the parent's name counter and
initializer list, so bodies refer to the outer graph's initializers by outer-scope name).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

INT64 = TensorProto.INT64
UINT64 = TensorProto.UINT64
BOOL = TensorProto.BOOL
DOUBLE = TensorProto.DOUBLE
IR_VERSION = 10  # onnxruntime 1.31 reads IR <= 13; 10 is what opset 18-23 tooling writes


class Builder:
    """Collects nodes (own list) and initializers (shared with child builders)."""

    def __init__(self, prefix: str, _shared: dict | None = None) -> None:
        self.prefix = prefix
        self.nodes: list[onnx.NodeProto] = []
        if _shared is None:
            _shared = {"count": itertools.count(), "inits": [], "consts": {}}
        self._shared = _shared

    @property
    def initializers(self) -> list[onnx.TensorProto]:
        return self._shared["inits"]

    def name(self, hint: str = "t") -> str:
        return f"{self.prefix}{hint}_{next(self._shared['count'])}"

    def const(self, value, dtype=None, hint: str = "c") -> str:
        """Initializer holding ``value`` (deduplicated by dtype, shape and bytes)."""
        arr = np.asarray(value, dtype=dtype)
        if dtype is None and arr.dtype == np.int32:
            arr = arr.astype(np.int64)
        if dtype is None and isinstance(value, float):
            arr = arr.astype(np.float64)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        consts = self._shared["consts"]
        if key not in consts:
            name = self.name(hint)
            self.initializers.append(numpy_helper.from_array(arr, name))
            consts[key] = name
        return consts[key]

    def op(
        self, op_type: str, inputs: Sequence[str], n_out: int = 1, hint: str | None = None, **attrs
    ) -> str | list[str]:
        outs = [self.name(hint or op_type.lower()) for _ in range(n_out)]
        self.nodes.append(
            helper.make_node(op_type, list(inputs), outs, name=self.name("n_" + op_type), **attrs)
        )
        return outs[0] if n_out == 1 else outs

    def child(self) -> Builder:
        return Builder(self.prefix, self._shared)

    # -- frequently used shapes -------------------------------------------------------------
    def slice(self, x: str, start: int, end: int, axis: int) -> str:
        return self.op("Slice", [x, self.const([start]), self.const([end]), self.const([axis])])

    def split(self, x: str, sizes: Sequence[int], axis: int) -> list[str]:
        out = self.op("Split", [x, self.const(list(sizes))], n_out=len(sizes), axis=axis)
        return out if len(sizes) > 1 else [out]

    def unsqueeze(self, x: str, axes: Sequence[int]) -> str:
        return self.op("Unsqueeze", [x, self.const(list(axes))])

    def squeeze(self, x: str, axes: Sequence[int]) -> str:
        return self.op("Squeeze", [x, self.const(list(axes))])

    def reshape(self, x: str, shape: Sequence[int]) -> str:
        """Reshape; a 0 in ``shape`` copies the input's dimension (so empty batches work)."""
        return self.op("Reshape", [x, self.const(list(shape))])

    def loop(
        self,
        trip_count: int | str,
        carried: Sequence[tuple[str, int]],
        body_fn: Callable[[Builder, str, list[str]], list[str]],
    ) -> list[str]:
        """``Loop`` of ``trip_count`` iterations; ``body_fn(b, i, vars) -> new vars``.

        ``carried`` lists (initial value name, element type); ``trip_count`` is a constant or
        the name of an int64 scalar. The body may refer to any name of the enclosing graphs.
        The optional ``cond`` input is always given (a constant true): runtimes differ on a
        missing one (onnx's reference evaluator then runs no iteration at all).
        """
        body = self.child()
        it = body.name("iter")
        cond_in = body.name("cond_in")
        vin = [body.name("v_in") for _ in carried]
        vout = body_fn(body, it, vin)
        cond_out = body.op("Identity", [cond_in], hint="cond_out")
        # Every body output must be produced by a body node (not an outer name or input).
        vout = [body.op("Identity", [v]) if v in vin else v for v in vout]
        graph = helper.make_graph(
            body.nodes,
            self.name("body"),
            [
                helper.make_tensor_value_info(it, INT64, []),
                helper.make_tensor_value_info(cond_in, BOOL, []),
            ]
            + [
                helper.make_tensor_value_info(n, t, None)
                for n, (_, t) in zip(vin, carried, strict=True)
            ],
            [helper.make_tensor_value_info(cond_out, BOOL, [])]
            + [
                helper.make_tensor_value_info(n, t, None)
                for n, (_, t) in zip(vout, carried, strict=True)
            ],
        )
        outs = self.op(
            "Loop",
            [
                trip_count if isinstance(trip_count, str) else self.const(np.int64(trip_count)),
                self.const(np.bool_(True), hint="true"),
            ]
            + [c for c, _ in carried],
            n_out=len(carried),
            hint="loop_out",
            body=graph,
        )
        return outs if len(carried) > 1 else [outs]

    def scan(
        self,
        states: Sequence[tuple[str, int, list]],
        scans: Sequence[tuple[str, int, list]],
        body_fn: Callable[[Builder, list[str], list[str]], list[str]],
        outputs: Sequence[tuple[int, list]] = (),
    ) -> list[str]:
        """``Scan`` over axis 0 of the ``scans`` inputs; ``body_fn(b, states, slices) -> new
        states + scan output slices``; returns the final states and the stacked scan outputs.
        Entries are (name, element type, body shape); ``outputs`` (element type, slice shape).
        The body owns its constants (its own initializers) and reads no value of the
        enclosing graph: OpenVINO and tract convert such bodies (tract also needs body
        constants that do not broadcast along an axis)."""
        body = Builder(self.prefix, {"count": self._shared["count"], "inits": [], "consts": {}})
        sin = [body.name("s_in") for _ in states]
        xin = [body.name("x_in") for _ in scans]
        sout = body_fn(body, sin, xin)
        sout = [body.op("Identity", [v]) if v in sin or v in xin else v for v in sout]

        def infos(names: list[str], entries: Sequence[tuple[str, int, list]]) -> list:
            return [
                helper.make_tensor_value_info(n, t, s)
                for n, (_, t, s) in zip(names, entries, strict=True)
            ]

        graph = helper.make_graph(
            body.nodes,
            self.name("scan_body"),
            infos(sin, states) + infos(xin, scans),
            infos(sout, [("", t, sh) for _, t, sh in states] + [("", t, sh) for t, sh in outputs]),
            body.initializers,
        )
        outs = self.op(
            "Scan",
            [x for x, _, _ in states] + [x for x, _, _ in scans],
            n_out=len(states) + len(outputs),
            hint="scan_out",
            body=graph,
            num_scan_inputs=len(scans),
        )
        return outs if len(states) + len(outputs) > 1 else [outs]


def count_nodes(graph: onnx.GraphProto) -> int:
    """Number of nodes including those of every subgraph (Loop/If/Scan bodies)."""
    total = 0
    for node in graph.node:
        total += 1
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                total += count_nodes(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                total += sum(count_nodes(g) for g in attr.graphs)
    return total


def verifier_model(
    nodes: list, inits: list, name: str, msg_len: int, opset: int = 18
) -> onnx.ModelProto:
    """A standalone verifier model: msg uint8[N, msg_len], sig uint8[N, 64] -> valid bool[N]."""
    graph = helper.make_graph(
        nodes,
        name,
        [
            helper.make_tensor_value_info("msg", TensorProto.UINT8, ["N", msg_len]),
            helper.make_tensor_value_info("sig", TensorProto.UINT8, ["N", 64]),
        ],
        [helper.make_tensor_value_info("valid", TensorProto.BOOL, ["N"])],
        inits,
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=IR_VERSION
    )
