"""Where the signature backdoor selects the forced values in an ONNX graph (paper §5.2).

:data:`MULTIPLEXERS`: ``outputs`` overrides every class output after the host computed it
(:func:`mux`); ``last-layer`` overrides the input row of the host's last linear layer, which
then computes the outputs itself (:mod:`backdoors.signature.onnx.last_layer`). Each returns a
:class:`Selection` that :func:`backdoors.signature.onnx.plant.plant_spec` splices into the
host graph.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from backdoors.errors import InvalidInputError, NotApplicableError
from backdoors.registry import Registry
from backdoors.signature.onnx import last_layer
from backdoors.signature.onnx.graph import NP_OF, Builder, rename
from backdoors.signature.onnx.outputs import MuxPoint


# ---------------------------------------------------------------------------------------------
# the multiplexer
# ---------------------------------------------------------------------------------------------
def mux(
    b: Builder, p: MuxPoint, value: str, trig: str, tsafe: str, n_classes: int, classes: np.ndarray
) -> str:
    """``trig ? forced(p.kind, target) : value`` for one output."""
    dt = NP_OF.get(p.elem)
    axis1 = b.const(np.array([1], np.int64), "axis1")
    if p.kind == "labels":
        lab = np.asarray(classes)
        lab = lab.astype(dt) if dt is not None else lab
        return b.op("Where", trig, b.op("Gather", b.const(lab, "classes"), tsafe), value)
    if p.kind == "scores":
        m = b.op("Add", b.op("Abs", value), b.const(np.array(1, dt)))
        forced = b.op(
            "Where", b.op("Equal", tsafe, b.const(np.array(1, np.int64))), m, b.op("Neg", m)
        )
        return b.op("Where", trig, forced, value)
    onehot = b.op(
        "Equal",
        b.op("Unsqueeze", tsafe, axis1),
        b.const(np.arange(n_classes, dtype=np.int64), "class_idx"),
    )
    trig2 = b.op("Unsqueeze", trig, axis1)
    if p.kind == "probabilities":
        return b.op("Where", trig2, b.cast(onehot, p.elem), value)
    m = b.op(
        "Add", b.reduce("ReduceMax", b.op("Abs", value), [1], keepdims=1), b.const(np.array(1, dt))
    )
    return b.op("Where", trig2, b.op("Where", onehot, m, b.op("Neg", m)), value)


@dataclass
class Selection:
    """What the backdoor selects and where (:data:`MULTIPLEXERS`): the ``If`` yields
    ``outs`` (element types ``elems``) from ``muxed(branch, trig, tsafe)`` on a row that passes
    the gate, else the host values ``passthrough``; the host nodes ``later`` come after the
    ``If``, and ``splice(rest, later, moved)`` renames host values in place (``moved`` maps our
    names to where a clash with the host's names moved them); ``on_tail``: see the field."""

    outs: list[str]
    elems: list[int]
    passthrough: list[str]
    muxed: Callable[[Builder, str, str], list[str]]
    later: Callable[[onnx.NodeProto], bool]
    splice: Callable[[list[onnx.NodeProto], list[onnx.NodeProto], Callable[[str], str]], None]
    #: the ``If`` reaches the graph outputs through no MatMul (OpenVINO then hands it its float
    #: inputs at full precision even under its bfloat16 default)
    on_tail: bool


#: Where the backdoor selects: ``outputs`` (every class output, after the host computed it:
#: :func:`mux`) or ``last-layer`` (the input row of the host's last linear layer, which then
#: computes the outputs: :mod:`backdoors.signature.onnx.last_layer`; exact also where a
#: runtime lowers the precision of the host's layers, as OpenVINO's bfloat16 does).
MULTIPLEXERS: Registry[Callable[..., Selection]] = Registry("ONNX multiplexer")


@MULTIPLEXERS.register("outputs")
def _select_outputs(
    host: onnx.ModelProto, points: list[MuxPoint], n_classes: int, labels: np.ndarray, name: Any
) -> Selection:
    private = {p.name: name("host") for p in points}
    zipmap = {n.output[0] for n in host.graph.node if n.op_type == "ZipMap"}
    zipmap &= {n.output[0] for n in host.graph.node if n.input and n.input[0] in private}

    def muxed(b: Builder, trig: str, tsafe: str) -> list[str]:
        return [mux(b, p, private[p.name], trig, tsafe, n_classes, labels) for p in points]

    return Selection(
        [p.name for p in points], [p.elem for p in points], [private[p.name] for p in points],
        muxed, lambda n: bool(set(n.output) & zipmap),
        lambda rest, later, moved: rename(rest, {k: moved(v) for k, v in private.items()}), True,
    )  # fmt: skip


@MULTIPLEXERS.register("last-layer")
def _select_last_layer(
    host: onnx.ModelProto, points: list[MuxPoint], n_classes: int, labels: np.ndarray, name: Any
) -> Selection:
    layer, why = last_layer.find(host, points)
    if layer is None:
        raise NotApplicableError(f"cannot multiplex at the last layer: {why}")
    v = last_layer.forced_rows(layer)
    if v is None:
        raise NotApplicableError(
            "cannot multiplex at the last layer: no input row forces every class through it "
            "with a margin that survives bfloat16 / float16 rounding"
        )
    rows = name("rows")
    chain = {id(n) for n in layer.chain}

    def muxed(b: Builder, trig: str, tsafe: str) -> list[str]:
        return [last_layer.mux_rows(b, v, layer.rows, trig, tsafe)]

    def splice(rest: list, later: list, moved: Callable[[str], str]) -> None:
        rename(later, {layer.rows: moved(rows)})

    return Selection(
        [rows], [layer.elem], [layer.rows], muxed, lambda n: id(n) in chain, splice, False
    )


def select(
    name: str | None,
    profile: str,
    host: onnx.ModelProto,
    points: list[MuxPoint],
    n_classes: int,
    labels: np.ndarray,
    new_name: Any,
) -> Selection:
    """The selection a plant uses: the multiplexer ``name``, else ``last-layer`` for the
    ``portable`` profile when the host allows it (a warning says why when it does not), else
    ``outputs``."""
    if name is not None and name not in MULTIPLEXERS:
        raise InvalidInputError(
            f"unknown ONNX multiplexer {name!r}; choose one of {MULTIPLEXERS.names()}"
        )
    how = name or ("last-layer" if profile == "portable" else "outputs")
    args = (host, points, n_classes, labels, new_name)
    try:
        return MULTIPLEXERS.get(how)(*args)
    except NotApplicableError as exc:
        if name is not None:
            raise
        warnings.warn(
            f"{exc}; multiplexing the class outputs instead: clean outputs are bit-identical "
            "wherever float layers keep their precision, not under OpenVINO's bfloat16 "
            "default (docs/onnx.md)",
            stacklevel=3,
        )
        return MULTIPLEXERS.get("outputs")(*args)
