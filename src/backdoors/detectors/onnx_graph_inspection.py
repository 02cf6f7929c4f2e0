"""White-box inspection of an ONNX graph: what a careful auditor of a model file looks for.

A classifier graph is float arithmetic from input to output. The signature backdoor in ONNX
(paper §5.2 realised by :mod:`backdoors.signature.onnx`) needs what an ordinary classifier does
not: integer and bitwise arithmetic on the input (carrier bits, SHA-512, field arithmetic),
control flow (``If``/``Loop``), large integer constant tables (the verify key's window table),
data-dependent row selection (``Compress``/``ScatterND``), and outputs that a switch whose
condition depends on the input can route around the classifier. Findings, counted over every
node reachable from the input (subgraph bodies included; names are ignored, only structure):

* ``bitwise``: BitwiseAnd/Or/Xor/Not, BitShift;
* ``integer_arithmetic``: Add/Sub/Mul/Div/Mod/... whose output is an integer tensor;
* ``control_flow``: If, Loop, Scan;
* ``row_selection``: Compress, NonZero, ScatterND, ScatterElements, Where;
* ``integer_tables``: integer constants with >= 256 elements;
* ``bypass_outputs``: outputs produced by a Where/If whose condition depends on the input, or
  computed from one by the last linear layer (a switch on that layer's input row forces its
  output just as well).

Score ``= sum_k log(1 + count_k)`` (0 for a plain network). The verifier is white-box
visible by construction: this detector is expected to separate honest and planted graphs
(AUROC ~1); the paper's undetectability claim for this construction is black-box only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backdoors.detectors import Control, Detector, Evidence, Report, register
from backdoors.errors import NotApplicableError

BITWISE = frozenset({"BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitwiseNot", "BitShift"})
ARITH = frozenset({"Add", "Sub", "Mul", "Div", "Mod", "Neg", "Abs", "Sum", "MatMul", "Pow"})
CONTROL = frozenset({"If", "Loop", "Scan"})
SELECT = frozenset({"Compress", "NonZero", "ScatterND", "ScatterElements", "Where"})
_INT_TYPES = frozenset({2, 3, 4, 5, 6, 7, 12, 13})  # uint8 int8 uint16 int16 int32 int64 u32 u64
FINDINGS = (
    "bitwise",
    "integer_arithmetic",
    "control_flow",
    "row_selection",
    "integer_tables",
    "bypass_outputs",
)


def onnx_graph_of(model: Any) -> Any:
    """The ``onnx.ModelProto`` of ``model`` (itself, or its ``onnx_model`` attribute)."""
    if type(model).__name__ == "ModelProto":
        return model
    m = getattr(model, "onnx_model", None)
    if type(m).__name__ == "ModelProto":
        return m
    raise NotApplicableError(f"{type(model).__name__} is not an ONNX model")


def _subgraphs(node: Any) -> list[Any]:
    out = []
    for a in node.attribute:
        if a.type == a.GRAPH:
            out.append(a.g)
        out.extend(a.graphs)
    return out


def _uses(node: Any) -> set[str]:
    """Values a node reads, including outer-scope values read inside its subgraphs."""
    used = {x for x in node.input if x}
    for g in _subgraphs(node):
        for n in g.node:
            used |= _uses(n)
    return used


def _all_nodes(nodes: Any) -> list[Any]:
    out = []
    for n in nodes:
        out.append(n)
        for g in _subgraphs(n):
            out.extend(_all_nodes(g.node))
    return out


#: Nodes an output may pass through back to a switch (with at most one last linear layer).
_THROUGH = frozenset({"Identity", "Softmax", "LogSoftmax", "Add"})


def _is_layer(n: Any, inits: set[str]) -> bool:
    """A Gemm / MatMul with constant weights (the classifier's last layer)."""
    return n.op_type in ("Gemm", "MatMul") and len(n.input) > 1 and n.input[1] in inits


def inspect_graph(model: Any) -> dict[str, Any]:
    """Counts of the findings above, with a few examples each."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    elem: dict[str, int] = {}

    def types_of(g: Any) -> None:
        for v in (*g.input, *g.output, *g.value_info):
            if v.type.HasField("tensor_type"):
                elem[v.name] = v.type.tensor_type.elem_type
        for t in g.initializer:
            elem[t.name] = t.data_type
        for n in g.node:
            for sg in _subgraphs(n):
                types_of(sg)

    types_of(inferred.graph)
    g = model.graph
    inits = {t.name for t in g.initializer}
    reached = {i.name for i in g.input if i.name not in inits}
    reach_nodes = []
    for n in g.node:  # topological order: one forward pass
        if _uses(n) & reached:
            reached.update(n.output)
            reach_nodes.append(n)
    inner = _all_nodes(reach_nodes)
    counts = dict.fromkeys(FINDINGS, 0)
    examples: dict[str, list[str]] = {k: [] for k in FINDINGS}

    def note(kind: str, what: str) -> None:
        counts[kind] += 1
        if len(examples[kind]) < 3:
            examples[kind].append(what)

    for n in inner:
        op = n.op_type
        if op in BITWISE:
            note("bitwise", op)
        elif op in ARITH and any(elem.get(o) in _INT_TYPES for o in n.output):
            note("integer_arithmetic", op)
        if op in CONTROL:
            note("control_flow", op)
        if op in SELECT:
            note("row_selection", op)
    tables = list(g.initializer)
    for n in _all_nodes(g.node):
        for a in n.attribute:
            if n.op_type == "Constant" and a.type == a.TENSOR:
                tables.append(a.t)
        for sg in _subgraphs(n):
            tables.extend(sg.initializer)
    for t in tables:
        size = int(np.prod(t.dims)) if len(t.dims) else 1
        if t.data_type in _INT_TYPES and size >= 256:
            note("integer_tables", f"{t.data_type}:{list(t.dims)}")
    prod = {o: n for n in g.node for o in n.output}
    for out in g.output:
        path, n, layers = [], prod.get(out.name), 0
        while n is not None and layers <= 1 and (n.op_type in _THROUGH or _is_layer(n, inits)):
            layers += _is_layer(n, inits)
            path.append(n.op_type)
            n = prod.get(next((i for i in n.input if i not in inits), ""))
        if n is not None and layers <= 1 and n.op_type in ("Where", "If") and n.input[0] in reached:
            note("bypass_outputs", " <- ".join([out.name, *path, n.op_type]))
    return {"counts": counts, "examples": examples, "reachable_nodes": len(inner)}


@register
class OnnxGraphInspection(Detector):
    name = "onnx_graph_inspection"
    needs = frozenset({"weights"})

    def check_model(self, model: Any) -> None:
        onnx_graph_of(model)

    def score(self, model: Any, evidence: Evidence) -> Report:
        found = inspect_graph(onnx_graph_of(model))
        return Report(float(sum(np.log1p(v) for v in found["counts"].values())), found)

    @classmethod
    def positive_control(cls) -> Control | None:
        from backdoors.detectors import _controls as controls

        return controls.onnx_pair()
