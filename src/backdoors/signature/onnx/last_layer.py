"""Forcing the class through the host's own last linear layer (paper §5.2; where to multiplex).

The output multiplexer (:func:`backdoors.signature.onnx.multiplex.mux`) puts a selection between
the host's last layer and the graph outputs. A runtime that lowers float precision node by node
decides each node's precision from the graph around it: OpenVINO's CPU plugin, on a CPU with
bfloat16 units, runs MatMuls in bfloat16 and keeps a MatMul's result in float32 only when no
node stands between it and a graph output (the "graph tail"), so one more node after the last
layer makes it round the host's logits to bfloat16 and clean outputs differ from the honest
file's in that runtime.

Here the *input row* of the last layer ``z = h W + b`` is multiplexed instead: a triggered
row's ``h`` becomes a fixed ``v_t``, the minimum-norm solution of ``v_t W + b = M (2 e_t - 1)``
(``+M`` at the target, ``-M`` elsewhere), and the host's own layer computes the outputs. A
clean row reaches that layer with the same ``h``, and everything from it to the outputs is the
honest graph, so whatever a runtime does to the honest layer it does to this one. Applies when
every class output is that layer's output (``Gemm``, or ``MatMul`` with constant weights),
possibly through constant bias ``Add``s and then ``Softmax``/``LogSoftmax``/``Identity``, and
nothing else reads those values; :func:`find` says why not otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import NodeProto, TensorProto, numpy_helper

from backdoors.signature.onnx.graph import NP_OF, Builder
from backdoors.signature.onnx.outputs import MuxPoint
from backdoors.signature.onnx.trigger import bfloat16

#: ``|z_t - z_j|`` of a forced row is ``2 M``; a power of two, exact in bfloat16 and float16.
FORCE_M = 2.0**12
_FLOATS = (TensorProto.FLOAT, TensorProto.DOUBLE)
_SOFTMAX = ("Softmax", "LogSoftmax")


@dataclass(frozen=True)
class LastLayer:
    """The host's final linear layer: ``node`` computes ``z = rows W + bias`` (``W`` is
    ``[K, C]``) and every class output follows from ``z`` through ``chain``."""

    node: NodeProto
    rows: str
    elem: int
    weight: np.ndarray
    bias: np.ndarray
    chain: tuple[NodeProto, ...]


def _constants(g: onnx.GraphProto) -> dict[str, np.ndarray]:
    out = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    for n in g.node:
        if n.op_type == "Constant" and len(n.attribute) == 1 and n.attribute[0].name == "value":
            out[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    return out


def _attr(n: NodeProto, name: str, default: float) -> float:
    for a in n.attribute:
        if a.name == name:
            return a.f if a.type == onnx.AttributeProto.FLOAT else a.i
    return default


def _linear(n: NodeProto, consts: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
    """``(W [K, C], bias [C])`` of a Gemm / MatMul with constant weights, else None."""
    if n.op_type == "MatMul" and n.input[1] in consts and consts[n.input[1]].ndim == 2:
        w = consts[n.input[1]].astype(np.float64)
        return w, np.zeros(w.shape[1])
    if n.op_type != "Gemm" or n.input[1] not in consts or _attr(n, "transA", 0):
        return None
    w = consts[n.input[1]].astype(np.float64)
    w = (w.T if _attr(n, "transB", 0) else w) * _attr(n, "alpha", 1.0)
    bias = np.zeros(w.shape[1])
    if len(n.input) > 2 and n.input[2]:
        if n.input[2] not in consts:
            return None
        bias = bias + _attr(n, "beta", 1.0) * consts[n.input[2]].astype(np.float64).reshape(-1)
    return w, bias


def _back(
    n: NodeProto | None, prod: dict[str, NodeProto], consts: dict[str, np.ndarray]
) -> tuple[NodeProto | None, list[NodeProto], np.ndarray]:
    """From an output's producer back to the layer: ``(layer candidate, nodes passed, summed
    constant bias of the Adds passed)``. Passes ``Identity``, ``Softmax``/``LogSoftmax`` on the
    class axis, and constant ``Add``s that come before them."""
    seen: list[NodeProto] = []
    bias, added = np.zeros(1), False
    while n is not None:
        known = [i for i in n.input if i in consts]
        if n.op_type == "Add" and len(known) == 1 and len(n.input) == 2:
            bias, added = bias + consts[known[0]].astype(np.float64).reshape(-1), True
        elif not (
            n.op_type == "Identity"
            or (n.op_type in _SOFTMAX and not added and _attr(n, "axis", -1) in (-1, 1))
        ):
            break
        seen.append(n)
        n = prod.get(next(i for i in n.input if i not in consts))
    return n, seen, bias


def find(model: onnx.ModelProto, points: list[MuxPoint]) -> tuple[LastLayer | None, str]:
    """The last linear layer every class output comes from, or ``(None, why not)``."""
    g = model.graph
    if any(p.kind not in ("logits", "probabilities") for p in points):
        return None, "some class output is not float class scores (labels, a margin, a ZipMap)"
    consts = _constants(g)
    prod = {o: n for n in g.node for o in n.output}
    layer, chain, bias = None, [], None
    for p in points:
        n, seen, b = _back(prod.get(p.name), prod, consts)
        lin = None if n is None else _linear(n, consts)
        if lin is None or (layer is not None and n is not layer):
            return None, (
                f"output {p.name!r} is not computed by one last Gemm/MatMul of constant weights"
            )
        if bias is not None and not np.array_equal(np.broadcast_to(b, bias.shape), bias):
            return None, "the class outputs add different biases to the last layer"
        layer, bias = n, b
        chain += [n, *seen]
    assert layer is not None and bias is not None
    inside = {o for c in chain for o in c.output}
    names = {p.name for p in points}
    for n in g.node:
        if all(n is not c for c in chain) and any(i in inside for i in n.input):
            return None, f"node {n.op_type} {n.name!r} also reads the last layer's values"
    if ({o.name for o in g.output} & inside) - names:
        return None, "an output that is not a class output comes from the last layer"
    w, b0 = _linear(layer, consts)  # type: ignore[misc]
    elem = onnx.helper.np_dtype_to_tensor_dtype(consts[layer.input[1]].dtype)
    if elem not in _FLOATS:  # A and B of a Gemm / MatMul have one element type
        return None, "the last layer is not a float layer"
    if layer.op_type == "MatMul":  # a Gemm's input is [N, K] by definition
        inferred = onnx.shape_inference.infer_shapes(model)
        types = {v.name: v.type.tensor_type for v in (*inferred.graph.value_info, *g.input)}
        t = types.get(layer.input[0])
        if t is None or not t.HasField("shape") or len(t.shape.dim) != 2:
            return None, "the last MatMul's input is not known to be [N, K]"
    return LastLayer(layer, layer.input[0], elem, w, b0 + bias, tuple(chain)), ""


def _round(x: np.ndarray, precision: str) -> np.ndarray:
    """``x`` rounded to float32, bfloat16 (round to nearest even) or float16, as float64."""
    f = np.asarray(x, np.float32)
    if precision == "float16":
        return f.astype(np.float16).astype(np.float64)
    return (bfloat16(f) if precision == "bfloat16" else f).astype(np.float64)


def forced_rows(layer: LastLayer) -> np.ndarray | None:
    """``V [C, K]``: row ``t`` gives ``+M`` at ``t`` and ``-M`` elsewhere through the layer, with
    a margin of at least ``M`` between the target and every other class when ``W``, ``V`` and
    the bias are rounded to float32, bfloat16 or float16 (runtimes that lower precision); None
    if the layer cannot force every class that way (e.g. fewer inputs than classes)."""
    w, b = layer.weight, layer.bias
    c = w.shape[1]
    goal = FORCE_M * (2 * np.eye(c) - 1) - b
    v = np.linalg.lstsq(w.T, goal.T, rcond=None)[0].T  # minimum norm: v W = goal
    if not np.isfinite(v).all() or np.abs(v).max() >= 60000:  # float16 range
        return None
    for precision in ("float32", "bfloat16", "float16"):
        z = _round(v, precision) @ _round(w, precision) + _round(b, precision)
        top = z[np.arange(c), np.arange(c)]
        others = np.where(np.eye(c, dtype=bool), -np.inf, z).max(axis=1)
        if not (top - others >= FORCE_M).all():
            return None
    return v.astype(NP_OF[layer.elem])


def mux_rows(b: Builder, v: np.ndarray, rows: str, trig: str, tsafe: str) -> str:
    """``trig ? V[target] : rows`` (the then-branch's value for the layer's input)."""
    axis1 = b.const(np.array([1], np.int64), "axis1")
    forced = b.op("Gather", b.const(v, "forced_rows"), tsafe)
    return b.op("Where", b.op("Unsqueeze", trig, axis1), forced, rows)
