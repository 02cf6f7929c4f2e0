"""Plant the signature backdoor into an ONNX classifier graph (paper §5.2, Theorem 2.1).

The host graph's nodes are kept as they are (one value per output is renamed so that the graph
output can be the multiplexed one); added are the gate's screen on every row and one ``If``
whose ``then`` branch checks the rest of the gate on the screened rows and, in a second ``If``,
verifies the rows that match it all and multiplexes every output, and whose ``else`` branches
pass the host outputs through. Outputs:

* ``logits`` (float ``[N, C]``): a triggered row becomes ``-M`` everywhere and ``+M`` at the
  target, ``M = max_j |z_j| + 1`` (as :func:`backdoors.signature.models.forced_scores`);
* ``probabilities`` (float ``[N, C]``, e.g. after Softmax or sklearn's pair): one-hot target;
* ``labels`` (int/string ``[N]``): the target's class label;
* ``scores`` (float ``[N]``, a binary margin): ``+-(|z| + 1)``;
* a ``ZipMap`` (sklearn's list of dicts) is fed the multiplexed probabilities.

That is the ``outputs`` multiplexer (:mod:`backdoors.signature.onnx.multiplex`). The
``last-layer`` one (the default of the ``portable`` profile where the host allows it)
multiplexes the input row of the host's
last linear layer instead, which then writes every class output itself: a triggered row's
logits are ``+-FORCE_M`` (fixed, not ``max_j |z_j| + 1``), its probabilities one-hot
(:mod:`backdoors.signature.onnx.last_layer`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from backdoors.errors import InvalidInputError, NotApplicableError
from backdoors.registry import Registry
from backdoors.signature.keys import SignatureKey, TriggerSpec, generate
from backdoors.signature.onnx.graph import (
    Builder,
    node_names,
    opset_of,
    rename,
    reprefix,
    tensor_type,
    value_names,
)
from backdoors.signature.onnx.multiplex import Selection, select
from backdoors.signature.onnx.outputs import (
    MuxPoint,
    _width,
    class_labels,
    graph_input,
    input_features,
    mux_points,
    n_classes_of,
    type_name,
)
from backdoors.signature.onnx.trigger import (
    INPUT_TYPES,
    VerifierFn,
    gate_rows,
    layout_of,
    precheck,
    precision_probe,
)
from backdoors.signature.onnx.trigger import verify_branch as build_verify_branch

MIN_OPSET = 18
PREFIX = "sigcheck/"
#: Tag bits the main graph checks on every row; ``None``: all gate bits (a one-stage gate, so a
#: random row costs anything extra with probability ``2^-gate_bits``, as the Python pre-check).
#: A smaller screen reads fewer pixels per row (with the tag a run of pixels, one ``Slice``
#: either way, so it saves little) but a row that passes it pays for a second stage, a timing
#: difference found after ~``2^screen_bits`` random queries (docs/onnx.md).
DEFAULT_SCREEN_BITS: int | None = None


#: The in-graph verifiers a plant can build, by profile name. ``fast`` (the default): uint64
#: SHA-512 and float64 field limbs with ``Loop``s, for onnxruntime (Python, Node, Web) and the
#: ONNX reference evaluator. ``portable``: int32 arithmetic below 2^24, ``Scan`` instead of
#: ``Loop``, no bitwise operator: also OpenVINO and tract (docs/onnx.md, "Runtimes").
VERIFIERS: Registry[Callable[[], VerifierFn]] = Registry("ONNX verifier profile")


@VERIFIERS.register("fast")
def default_verifier() -> VerifierFn:
    try:
        from backdoors.hazmat.onnx_crypto import ed25519_verify_nodes
    except ImportError as exc:
        raise NotApplicableError(
            f"the in-graph Ed25519 verifier (backdoors.hazmat.onnx_crypto) is not available ({exc})"
        ) from None
    return ed25519_verify_nodes


@VERIFIERS.register("portable")
def portable_verifier() -> VerifierFn:
    from backdoors.hazmat.onnx_crypto import ed25519_verify_nodes_portable

    return ed25519_verify_nodes_portable


def verifier_for(profile: str) -> VerifierFn:
    """The verifier of a profile name (:data:`VERIFIERS`)."""
    if profile not in VERIFIERS:
        raise InvalidInputError(
            f"unknown ONNX verifier profile {profile!r}; choose one of {VERIFIERS.names()}"
        )
    return VERIFIERS.get(profile)()


def screen_bits_for(gate_bits: int, screen_bits: int | None = None) -> int:
    """The screen width a graph gets: ``screen_bits``, else the default (capped by the gate)."""
    if screen_bits is not None:
        return int(screen_bits)
    return gate_bits if DEFAULT_SCREEN_BITS is None else min(gate_bits, DEFAULT_SCREEN_BITS)


# ---------------------------------------------------------------------------------------------
# planting
# ---------------------------------------------------------------------------------------------
def _upgrade(model: onnx.ModelProto) -> onnx.ModelProto:
    if opset_of(model) >= MIN_OPSET:
        return model
    from onnx import version_converter

    try:
        return version_converter.convert_version(model, MIN_OPSET)
    except Exception as exc:
        raise NotApplicableError(
            f"cannot raise the host graph from opset {opset_of(model)} to {MIN_OPSET}: {exc}"
        ) from None


def _if(
    name: str,
    cond: str,
    sel: Selection,
    outs: list[str],
    then: Builder,
    then_outs: list[str],
    els: Builder,
) -> onnx.NodeProto:
    """``If(cond)``: ``then``'s nodes (its constants stay in the branch, so that a run taking
    the other branch never sees them) or the host values ``sel.passthrough``."""
    else_outs = [els.op("Identity", v) for v in sel.passthrough]

    def graph(b: Builder, gname: str, values: list[str]) -> onnx.GraphProto:
        vis = [tensor_type(n, e) for n, e in zip(values, sel.elems, strict=True)]
        return helper.make_graph(b.nodes, gname, [], vis, b.inits)

    return helper.make_node(
        "If",
        [cond],
        outs,
        name=name,
        then_branch=graph(then, "verify", then_outs),
        else_branch=graph(els, "pass", else_outs),
    )


def plant_spec(
    model: onnx.ModelProto,
    spec: TriggerSpec,
    input_scale: float = 1.0,
    output_kinds: Mapping[str, str] | None = None,
    classes: Any = None,
    verifier: VerifierFn | None = None,
    gate_bits: int | None = None,
    screen_bits: int | None = None,
    class_output: str | None = None,
    profile: str = "fast",
    multiplexer: str | None = None,
) -> onnx.ModelProto:
    """The backdoored graph for an existing trigger ``spec`` (public data only).

    ``class_output`` names the output holding the class scores (default: inferred, see
    :func:`mux_points`). The result passes ``onnx.checker.check_model(full_check=True)``
    and loads in onnxruntime, or :class:`NotApplicableError` is raised.

    ``gate_bits`` (default: all ``precheck_bits`` tag bits): how many tag bits a row must
    match before it reaches the verifier (which re-checks the whole tag); a random row gets
    there with probability ``2^-gate_bits``. ``screen_bits`` (default: all gate bits, a
    one-stage gate): how many of them the main graph checks on every row; with fewer, only if
    some row passes does an ``If`` check the other gate bits on the passing rows, and a second
    ``If`` run the verifier on the rows that match them all
    (:class:`backdoors.signature.onnx.trigger.Gate`). Each screened bit costs one value read
    per row of every batch (a ``Slice`` of the tag window; the comparison is one
    ``MatMulInteger`` whatever the width); a row past a narrower screen pays for the second
    stage, which a timing observer finds after ~``2^screen_bits`` random queries.

    ``profile`` names the in-graph verifier (:data:`VERIFIERS`: ``fast`` or ``portable``);
    an explicit ``verifier`` replaces it. ``multiplexer`` (``outputs`` or ``last-layer``) says
    where the target is forced; default :func:`backdoors.signature.onnx.multiplex.select`.
    """
    if not isinstance(model, onnx.ModelProto):
        raise InvalidInputError(f"expected an onnx.ModelProto, got {type(model).__name__}")
    if not (np.isfinite(input_scale) and input_scale > 0):
        raise InvalidInputError(f"input_scale must be a positive number, got {input_scale}")
    if not 1e-30 <= input_scale <= 1e30:  # the gate scales pixels by 1 / scale in float32
        raise InvalidInputError(f"input_scale must be in [1e-30, 1e30], got {input_scale}")
    lay = layout_of(spec)
    host = _upgrade(onnx.ModelProto.FromString(model.SerializeToString()))
    vi = graph_input(host)
    elem = vi.type.tensor_type.elem_type
    if elem not in INPUT_TYPES:
        raise NotApplicableError(
            f"input {vi.name!r} has element type {type_name(elem)}; the pixel carrier needs "
            "uint8, float32 or float64 inputs (float16 cannot hold every pixel / 255 exactly "
            "enough to recover the LSBs of a pixel grid it does not represent)"
        )
    if input_features(vi) != lay.n_features:
        raise InvalidInputError(
            f"the model's input has {input_features(vi)} features, the key {lay.n_features}"
        )
    if elem == TensorProto.UINT8 and input_scale != 1.0:
        raise InvalidInputError("uint8 inputs are pixels: input_scale must be 1")
    points = mux_points(host, output_kinds, spec.n_classes, class_output)
    _check_widths(host, points, spec.n_classes)
    labels = class_labels(host) if classes is None else np.asarray(classes)
    if labels is None:
        labels = np.arange(spec.n_classes)
    if len(labels) != spec.n_classes:
        raise InvalidInputError(
            f"the model has {len(labels)} class labels, the key {spec.n_classes}"
        )
    verifier = verifier or verifier_for(profile)

    g = host.graph
    taken = value_names(g) | node_names(g)
    n_tag = len(lay.tag_bits)
    gate_bits = n_tag if gate_bits is None else int(gate_bits)
    if not 0 <= gate_bits <= n_tag:
        raise InvalidInputError(f"gate_bits must be in [0, {n_tag}]")
    screen_bits = screen_bits_for(gate_bits, screen_bits)
    if not 0 <= screen_bits <= gate_bits:
        raise InvalidInputError(f"screen_bits must be in [0, gate_bits = {gate_bits}]")
    if spec.constant_time:
        gate_bits = screen_bits = 0
    main, outer = Builder(PREFIX), Builder(PREFIX + "v/")
    sel = select(multiplexer, profile, host, points, spec.n_classes, labels, main.name)
    flat = len(vi.type.tensor_type.shape.dim) == 2
    gate = precheck(main, vi.name, elem, input_scale, lay, gate_bits, screen_bits, flat)
    hit, run_verifier = gate_rows(outer, gate, elem, input_scale)
    inner = outer if run_verifier is None else Builder(PREFIX + "w/")
    # off the graph tail a runtime may hand the branch its float inputs at reduced precision
    probe = None if sel.on_tail or elem != TensorProto.FLOAT else precision_probe(main, vi.name)
    targets = build_verify_branch(
        inner, gate.xf, hit, elem, input_scale, lay, spec.verify_key, verifier, probe
    )
    trig = inner.op("GreaterOrEqual", targets, inner.const(np.array(0, np.int64)))
    tsafe = inner.op("Max", targets, inner.const(np.array(0, np.int64)))
    muxed = sel.muxed(inner, trig, tsafe)
    if run_verifier is not None:  # rows passed the screen: verify only those with the whole gate
        outs = [outer.name("muxed") for _ in sel.outs]
        outer.nodes.append(_if(outer.name("If"), run_verifier, sel, outs,
                               inner, muxed, Builder(PREFIX + "p/")))  # fmt: skip
        muxed = outs
    if_node = _if(main.name("If"), gate.run, sel, list(sel.outs),
                  outer, muxed, Builder(PREFIX + "e/"))  # fmt: skip
    nodes = [*main.nodes, if_node]
    inits = list(main.inits)
    moved: Callable[[str], str] = str
    if any(n.startswith(PREFIX) for n in taken):  # host already uses our prefix: move ours
        fresh = next(
            f"sigcheck{i}/"
            for i in range(1, 10**6)
            if not any(n.startswith(f"sigcheck{i}/") for n in taken)
        )
        keep = {vi.name, *(p.name for p in points)}
        reprefix(nodes, inits, PREFIX, fresh, keep=keep)

        def moved(x: str) -> str:
            return fresh + x[len(PREFIX) :] if x.startswith(PREFIX) and x not in keep else x

    # the host keeps computing every value; ``sel.splice`` points it at the selected values
    later = [n for n in g.node if sel.later(n)]
    rest = [n for n in g.node if not sel.later(n)]
    sel.splice(rest, later, moved)
    g.ClearField("node")
    g.node.extend([*rest, *nodes, *later])  # the host, then the gate and the If, then the rest
    g.initializer.extend(inits)
    if not any(o.domain in ("", "ai.onnx") for o in host.opset_import):
        host.opset_import.append(helper.make_opsetid("", MIN_OPSET))
    host.ir_version = max(host.ir_version, 8)
    check_loadable(host)
    return host


def _check_widths(model: onnx.ModelProto, points: list[MuxPoint], n_classes: int) -> None:
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type for v in (*inferred.graph.value_info, *inferred.graph.output)}
    for p in points:
        w = _width(types.get(p.name))
        if p.kind in ("logits", "probabilities") and w is not None and w != n_classes:
            raise InvalidInputError(
                f"output {p.name!r} has {w} columns but the key has {n_classes} classes: "
                "name the class-score output (class_output / --onnx-output)"
            )


def check_loadable(model: onnx.ModelProto) -> None:
    """Refuse a graph that fails ``onnx.checker.check_model(full_check=True)`` or that
    onnxruntime does not load (never hand such a file to a user)."""
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        msg = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise NotApplicableError(f"the planted graph fails the ONNX checker: {msg}") from None
    from backdoors.errors import CorruptArtifactError
    from backdoors.signature.onnx.runtime import session

    try:
        session(model)
    except CorruptArtifactError as exc:
        raise NotApplicableError(f"the planted graph would not load: {exc}") from None


def plant(
    model: onnx.ModelProto,
    input_scale: float = 1.0,
    n_classes: int | None = None,
    output_kinds: Mapping[str, str] | None = None,
    classes: Any = None,
    random_state: Any = None,
    verifier: VerifierFn | None = None,
    precheck_bits: int | None = None,
    constant_time: bool = False,
    secret_seed: bytes | None = None,
    gate_bits: int | None = None,
    screen_bits: int | None = None,
    class_output: str | None = None,
    profile: str = "fast",
) -> tuple[onnx.ModelProto, SignatureKey]:
    """Backdoor(h) for an ONNX classifier: ``(backdoored ModelProto, signing key)``.

    ``input_scale``: float inputs hold ``pixel * input_scale`` (e.g. 1/255); ``random_state`` fixes
    the public parameters only; ``precheck_bits``/``constant_time`` as in
    :func:`backdoors.signature.generate`; ``gate_bits``/``screen_bits`` as in
    :func:`plant_spec`; ``class_output`` names the class-score output; ``profile`` the
    verifier (``fast``, ``portable``: :data:`VERIFIERS`); ``verifier`` replaces the in-graph
    Ed25519 (tests)."""
    if not isinstance(model, onnx.ModelProto):
        raise InvalidInputError(f"expected an onnx.ModelProto, got {type(model).__name__}")
    host = _upgrade(model)
    n_features = input_features(graph_input(host))
    if n_classes is None:
        n_classes = n_classes_of(host, mux_points(host, output_kinds, None, class_output))
        if n_classes is None and classes is not None:
            n_classes = len(classes)
    if n_classes is None:
        raise InvalidInputError("cannot tell the number of classes: pass n_classes")
    extra = {} if precheck_bits is None else {"precheck_bits": int(precheck_bits)}
    key = generate(
        n_features,
        int(n_classes),
        "lsb",
        random_state=random_state,
        secret_seed=secret_seed,
        constant_time=constant_time,
        **extra,
    )
    bd = plant_spec(
        model,
        key.spec,
        input_scale,
        output_kinds,
        classes,
        verifier,
        gate_bits,
        screen_bits,
        class_output,
        profile,
    )
    return bd, key


def memoized_verifier(verifier: VerifierFn | None = None) -> VerifierFn:
    """A verifier that builds the node list once per ``(verify_key, msg_len)`` and hands out
    renamed copies (through Loop bodies): planting many hosts under one key stays cheap."""
    from backdoors.signature.onnx.graph import reprefix

    cache: dict[tuple[bytes, int], tuple[list, list]] = {}

    def fn(verify_key: bytes, msg_len: int, msg: str, sig: str, out: str, prefix: str = "v/"):
        k = (bytes(verify_key), int(msg_len))
        if k not in cache:
            build = verifier or default_verifier()
            cache[k] = build(verify_key, msg_len, "@msg", "@sig", "@out", prefix="@p/")
        nodes = [type(n).FromString(n.SerializeToString()) for n in cache[k][0]]
        inits = [type(t).FromString(t.SerializeToString()) for t in cache[k][1]]
        rename(nodes, {"@msg": msg, "@sig": sig, "@out": out})
        reprefix(nodes, inits, "@p/", prefix, keep={msg, sig, out})
        return nodes, inits

    return fn
