"""Small tools for building and merging ONNX graphs.

* :class:`Builder` appends default-domain nodes and constant initializers under one name prefix.
* :func:`value_names` collects every value name of a graph *including its subgraphs* (Loop /
  If / Scan bodies), and :func:`rename` applies a name mapping through subgraphs too, including
  the outer-scope names a Loop body reads. ``onnx.compose.add_prefix`` renames only what a
  subgraph defines, not the outer-scope names it uses, so merging graphs whose bodies refer to
  outer values silently breaks the references; this walker does not.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import onnx
from onnx import AttributeProto, GraphProto, NodeProto, TensorProto, helper, numpy_helper


def subgraphs(node: NodeProto) -> Iterator[GraphProto]:
    """The graphs held by a node's attributes (If branches, Loop/Scan bodies)."""
    for a in node.attribute:
        if a.type == AttributeProto.GRAPH:
            yield a.g
        elif a.type == AttributeProto.GRAPHS:
            yield from a.graphs


def iter_nodes(nodes: Iterable[NodeProto]) -> Iterator[NodeProto]:
    """Every node, recursing into subgraphs (depth first)."""
    for n in nodes:
        yield n
        for g in subgraphs(n):
            yield from iter_nodes(g.node)


def value_names(graph: GraphProto) -> set[str]:
    """Every value name used or defined anywhere in ``graph`` and its subgraphs."""
    names: set[str] = set()

    def walk(g: GraphProto) -> None:
        names.update(v.name for v in (*g.input, *g.output, *g.value_info))
        names.update(t.name for t in g.initializer)
        for n in g.node:
            names.update(x for x in (*n.input, *n.output) if x)
            for sg in subgraphs(n):
                walk(sg)

    walk(graph)
    return names


def node_names(graph: GraphProto) -> set[str]:
    return {n.name for n in iter_nodes(graph.node) if n.name}


def _rename_graph(g: GraphProto, m: Mapping[str, str]) -> None:
    for v in (*g.input, *g.output, *g.value_info):
        v.name = m.get(v.name, v.name)
    for t in g.initializer:
        t.name = m.get(t.name, t.name)
    rename(g.node, m)


def rename(nodes: Iterable[NodeProto], mapping: Mapping[str, str]) -> None:
    """Rename values in place by ``mapping``, through every subgraph (outer-scope reads too)."""
    for n in nodes:
        n.input[:] = [mapping.get(x, x) if x else x for x in n.input]
        n.output[:] = [mapping.get(x, x) if x else x for x in n.output]
        for sg in subgraphs(n):
            _rename_graph(sg, mapping)


def reprefix(
    nodes: list[NodeProto], inits: list[TensorProto], old: str, new: str, keep: Iterable[str] = ()
) -> None:
    """Move every name starting with ``old`` (values, initializers, node names, subgraphs
    included) to the prefix ``new``; names in ``keep`` stay."""
    keep = set(keep)
    found: set[str] = set()
    for n in iter_nodes(nodes):
        found.update(x for x in (*n.input, *n.output) if x.startswith(old))
        if n.name.startswith(old):
            n.name = new + n.name[len(old) :]
        for sg in subgraphs(n):
            found.update(v.name for v in (*sg.input, *sg.output, *sg.value_info))
            found.update(t.name for t in sg.initializer)
    found.update(t.name for t in inits)
    mapping = {x: new + x[len(old) :] for x in found if x.startswith(old) and x not in keep}
    rename(nodes, mapping)
    for t in inits:
        t.name = mapping.get(t.name, t.name)


def holds_bytes(graph: GraphProto, data: bytes) -> bool:
    """Whether some uint8 initializer of ``graph`` or of a subgraph holds exactly ``data``."""
    for t in graph.initializer:
        if t.data_type == TensorProto.UINT8 and numpy_helper.to_array(t).tobytes() == data:
            return True
    return any(holds_bytes(sg, data) for n in graph.node for sg in subgraphs(n))


def opset_of(model: onnx.ModelProto, domain: str = "") -> int:
    for o in model.opset_import:
        if o.domain in (domain, "ai.onnx" if domain == "" else domain):
            return int(o.version)
    return 0


class Builder:
    """Appends nodes and initializers; every created name starts with ``prefix``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.nodes: list[NodeProto] = []
        self.inits: list[TensorProto] = []
        self._n = 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{self.prefix}{hint}_{self._n}"

    def const(self, value: Any, hint: str = "c", dtype: Any = None) -> str:
        arr = np.asarray(value, dtype=dtype)
        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def op(self, op_type: str, *inputs: str, hint: str | None = None, **attrs: Any) -> str:
        """One node with one output; returns the output name."""
        return self.op_n(op_type, list(inputs), 1, hint=hint, **attrs)[0]

    def op_n(
        self, op_type: str, inputs: list[str], n_out: int, hint: str | None = None, **attrs: Any
    ) -> list[str]:
        outs = [self.name(hint or op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=self.name(op_type), **attrs))
        return outs

    def cast(self, x: str, to: int) -> str:
        return self.op("Cast", x, to=to)

    def reduce(self, op_type: str, x: str, axes: list[int] | None, keepdims: int = 0) -> str:
        """Opset >= 18 reductions (axes as an input; ``None`` reduces everything)."""
        if axes is None:
            return self.op(op_type, x, keepdims=keepdims)
        return self.op(op_type, x, self.const(np.array(axes, np.int64), "axes"), keepdims=keepdims)


def tensor_type(name: str, elem: int, shape: list[Any] | None = None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


NP_OF = {
    TensorProto.UINT8: np.uint8,
    TensorProto.INT8: np.int8,
    TensorProto.INT32: np.int32,
    TensorProto.INT64: np.int64,
    TensorProto.FLOAT: np.float32,
    TensorProto.DOUBLE: np.float64,
    TensorProto.FLOAT16: np.float16,
}
