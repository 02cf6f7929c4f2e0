"""Reading an ONNX classifier graph: its input, class labels and which outputs hold what.

:func:`mux_points` decides which outputs the signature backdoor overrides (paper §5.2: a
triggered input gets the target class in every output that states a class) and which pass
through unchanged (features, embeddings).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import GraphProto, TensorProto, numpy_helper

from backdoors.errors import InvalidInputError, NotApplicableError

OUTPUT_KINDS = ("logits", "probabilities", "labels", "scores")


_LABEL_TYPES = (TensorProto.INT64, TensorProto.INT32, TensorProto.STRING)
_FLOAT_TYPES = (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16)


@dataclass(frozen=True)
class MuxPoint:
    """A host value the backdoor overrides: its name, kind and element type."""

    name: str
    kind: str
    elem: int


# ---------------------------------------------------------------------------------------------
# reading the host graph
# ---------------------------------------------------------------------------------------------
def graph_input(model: onnx.ModelProto) -> onnx.ValueInfoProto:
    inits = {t.name for t in model.graph.initializer}
    ins = [i for i in model.graph.input if i.name not in inits]
    if len(ins) != 1:
        raise NotApplicableError(f"the host graph needs exactly one input, it has {len(ins)}")
    return ins[0]


def input_features(vi: onnx.ValueInfoProto) -> int:
    """Product of the non-batch dims (they must be static)."""
    dims = vi.type.tensor_type.shape.dim
    if len(dims) < 2 or any(not d.HasField("dim_value") for d in dims[1:]):
        raise NotApplicableError(
            f"input {vi.name!r} needs shape [N, d1, ...] with static d1, ...; got "
            f"{[d.dim_value or d.dim_param or '?' for d in dims]}"
        )
    return int(np.prod([d.dim_value for d in dims[1:]]))


def _producers(graph: GraphProto) -> dict[str, onnx.NodeProto]:
    return {o: n for n in graph.node for o in n.output}


def class_labels(model: onnx.ModelProto) -> np.ndarray | None:
    """Class labels a classifier graph maps indices to (sklearn converters), if visible."""
    for n in model.graph.node:
        for a in n.attribute:
            if a.name in ("classlabels_int64s", "classlabels_ints") and len(a.ints):
                return np.asarray(a.ints, np.int64)
            if a.name == "classlabels_strings" and len(a.strings):
                return np.asarray([s.decode() for s in a.strings], dtype=object)
    inits = {t.name: t for t in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "ArrayFeatureExtractor" and n.input[0] in inits:
            return numpy_helper.to_array(inits[n.input[0]]).ravel()
    return None


def _width(t: onnx.TypeProto | None) -> int | None:
    """Static size of the last axis of a rank-2 tensor type, else None."""
    if t is None or not t.HasField("tensor_type") or len(t.tensor_type.shape.dim) != 2:
        return None
    d = t.tensor_type.shape.dim[1]
    return int(d.dim_value) if d.HasField("dim_value") else None


def mux_points(
    model: onnx.ModelProto,
    kinds: Mapping[str, str] | None = None,
    n_classes: int | None = None,
    class_output: str | None = None,
) -> list[MuxPoint]:
    """Which values to override and how (``kinds`` overrides the inference by output name;
    kind ``passthrough`` leaves an output as the host computes it).

    Float outputs ``[N, W]`` are class scores only when ``W`` is the number of classes
    (``n_classes``, else the class labels the graph shows, else the width of a Softmax output,
    else of the first such output: the logits come first in a torch model returning
    ``(logits, features)``); other widths (features, embeddings) pass through.
    ``class_output`` names the one output holding the class scores (the other float
    outputs pass through)."""
    kinds = dict(kinds or {})
    g = model.graph
    prod = _producers(g)
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type for v in (*inferred.graph.value_info, *inferred.graph.output)}
    tensor_outs = [o for o in g.output if o.type.HasField("tensor_type")]
    names = [o.name for o in g.output]
    if class_output is not None and class_output not in names:
        raise InvalidInputError(f"no output named {class_output!r} (outputs: {names})")
    has_labels = any(o.type.tensor_type.elem_type in _LABEL_TYPES for o in tensor_outs)
    wide = [
        o
        for o in tensor_outs
        if o.type.tensor_type.elem_type in _FLOAT_TYPES and _width(types.get(o.name)) is not None
    ]
    if n_classes is None:
        labels = class_labels(model)
        soft = [o for o in wide if o.name in prod and prod[o.name].op_type == "Softmax"]
        pick = soft or wide
        if class_output is not None:
            pick = [o for o in wide if o.name == class_output] or pick
        n_classes = (
            len(labels)
            if labels is not None
            else (_width(types.get(pick[0].name)) if pick else None)
        )
    points = []
    for o in g.output:
        node = prod.get(o.name)
        if not o.type.HasField("tensor_type"):
            if node is not None and node.op_type == "ZipMap":
                points.append(MuxPoint(node.input[0], "probabilities", TensorProto.FLOAT))
                continue
            raise NotApplicableError(f"output {o.name!r} is not a tensor (nor a ZipMap)")
        elem = o.type.tensor_type.elem_type
        rank = len(o.type.tensor_type.shape.dim) if o.type.tensor_type.HasField("shape") else None
        if rank is None and o.name in types:
            rank = len(types[o.name].tensor_type.shape.dim)
        kind = kinds.pop(o.name, None)
        if kind is None:
            width = _width(types.get(o.name))
            if elem in _LABEL_TYPES:
                kind = "labels"
            elif class_output is not None and elem in _FLOAT_TYPES and o.name != class_output:
                kind = "passthrough"
            elif elem in _FLOAT_TYPES and rank == 1:
                kind = "scores"
            elif elem in _FLOAT_TYPES and (rank != 2 or (width is not None and width != n_classes)):
                kind = "passthrough"  # not [N, classes]: features, embeddings, ...
            elif elem in _FLOAT_TYPES:
                softmax = node is not None and node.op_type in ("Softmax", "LogSoftmax")
                probs = has_labels or (softmax and node.op_type == "Softmax")
                kind = "probabilities" if probs else "logits"
            else:
                raise NotApplicableError(
                    f"output {o.name!r} has an unsupported type {type_name(elem)}"
                )
        if kind not in (*OUTPUT_KINDS, "passthrough"):
            raise InvalidInputError(f"unknown output kind {kind!r} (known: {OUTPUT_KINDS})")
        if kind != "passthrough":
            points.append(MuxPoint(o.name, kind, elem))
    if kinds:
        raise InvalidInputError(f"no such outputs: {sorted(kinds)}")
    if not points:
        raise NotApplicableError(f"no output of the graph holds class scores or labels: {names}")
    return points


def type_name(elem: int) -> str:
    """``float16`` for ``TensorProto.FLOAT16`` etc. (the name ONNX gives an element type)."""
    try:
        return (
            onnx.helper.tensor_dtype_to_np_dtype(elem).name
            if elem != TensorProto.STRING
            else "string"
        )
    except Exception:
        return f"element type {elem}"


def n_classes_of(model: onnx.ModelProto, points: list[MuxPoint]) -> int | None:
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type for v in (*inferred.graph.value_info, *inferred.graph.output)}
    for p in points:
        if p.kind in ("logits", "probabilities") and p.name in types:
            dims = types[p.name].tensor_type.shape.dim
            if len(dims) == 2 and dims[1].HasField("dim_value"):
                return int(dims[1].dim_value)
    labels = class_labels(model)
    return None if labels is None else len(labels)
