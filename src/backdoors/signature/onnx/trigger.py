"""The trigger check of the signature backdoor as ONNX nodes (paper §5.2; LSB carrier).

For a batch ``X`` (any shape ``[N, ...]`` whose trailing dims flatten to the carrier's
``n_features``):

1. *pixels*: uint8 inputs are the pixels; float inputs must lie exactly on the pixel grid
   ``x = float(k * scale)``, ``k in 0..255`` (rows off the grid are never triggered);
2. *gate* (:class:`Gate`): the tag bits (LSBs of the tag positions) equal the public tag, a
   few of them screened on every row in the main graph (only if some row passes does an
   ``If`` run anything else), the rest checked on the screened rows inside that branch;
3. *verifier branch* (rows that match the whole gate, gathered by ``Compress``, under a second
   ``If``): payload bits -> target and
   signature bytes; message ``m = context || target (2 bytes, big endian) || cleared pixels``,
   the layout of :meth:`backdoors.signature.TriggerSpec.messages` (checked by probing the spec
   at build time); ``Verify(vk, m, sigma)`` and the padding / target-range checks; the
   per-row result is scattered back to ``[N]`` (``-1`` = not triggered).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from onnx import TensorProto, helper

from backdoors.errors import NotApplicableError
from backdoors.hazmat.carriers import LSBCarrier
from backdoors.signature.keys import TriggerSpec
from backdoors.signature.onnx.graph import NP_OF, Builder

#: ``(verify_key, msg_len, msg, sig, out, prefix) -> (nodes, initializers)`` (onnx_crypto API)
VerifierFn = Callable[..., tuple[list, list]]

INPUT_TYPES = (TensorProto.UINT8, TensorProto.FLOAT, TensorProto.DOUBLE)
#: Tag positions spanning at most this many times their number are read by one ``Slice`` of
#: their window (contiguous memory, the layout of keys since the tag is a run of pixels)
#: rather than gathered column by column.
WINDOW_SLACK = 2


@dataclass(frozen=True)
class Layout:
    """Where the payload sits and how the message is formed, read from a TriggerSpec."""

    tag_positions: np.ndarray
    tag_bits: np.ndarray
    payload_positions: np.ndarray  # every carrier position, in carrier bit order
    t_start: int
    t_bits: int
    s_start: int
    sig_bytes: int
    payload_bits: int
    prefix: bytes  # constant message prefix (the spec's context)
    n_features: int
    n_classes: int

    @property
    def msg_len(self) -> int:
        return len(self.prefix) + 2 + self.n_features


def layout_of(spec: TriggerSpec) -> Layout:
    """The layout of ``spec``; refuses carriers and message formats the graph does not build."""
    if not isinstance(spec.carrier, LSBCarrier):
        raise NotApplicableError(
            f"the ONNX backdoor supports the LSB carrier (uint8 pixels) only, not "
            f"{spec.carrier.kind!r}: the float carrier's message holds IEEE-754 bytes, and "
            "ONNX has no bit-cast from floats to bytes"
        )
    if spec.scheme != "ed25519":
        raise NotApplicableError(f"the ONNX verifier implements ed25519, not {spec.scheme!r}")
    tag = np.asarray(spec.tag_bits(), dtype=np.uint8)
    pos = np.asarray(spec.carrier.positions, dtype=np.int64)
    t_start = len(tag)
    lay = Layout(
        tag_positions=pos[:t_start],
        tag_bits=tag,
        payload_positions=pos,
        t_start=t_start,
        t_bits=spec.t_bits,
        s_start=t_start + spec.t_bits,
        sig_bytes=spec.sig_bits // 8,
        payload_bits=spec.payload_bits,
        prefix=spec.context(),
        n_features=spec.carrier.n_features,
        n_classes=spec.n_classes,
    )
    _check_messages(spec, lay)
    return lay


def _check_messages(spec: TriggerSpec, lay: Layout) -> None:
    """Probe ``spec.messages`` so that a change of the Python message format fails loudly."""
    rng = np.random.default_rng(0)
    cleared = spec.carrier.clear(rng.integers(0, 256, (3, lay.n_features), dtype=np.uint8))
    targets = np.array([0, 1, lay.n_classes - 1])
    for m, c, t in zip(spec.messages(cleared, targets), cleared, targets, strict=True):
        if m != lay.prefix + int(t).to_bytes(2, "big") + c.tobytes():
            raise NotApplicableError(
                "TriggerSpec.messages() no longer has the layout context || target (2 bytes) "
                "|| cleared pixels that the ONNX graph builds; update onnx_backdoor.trigger"
            )


def _pixel_divisor(scale: float) -> int | None:
    """``c`` if ``scale`` is ``1 / c`` for an integer ``c`` (up to float rounding), else None."""
    c = round(1.0 / scale)
    return c if c >= 1 and abs(1.0 / scale - c) <= 1e-9 * c else None


def grid_values(scale: float, dt: type) -> np.ndarray:
    """The float inputs that are pixels, correctly rounded: ``k / c`` when ``scale = 1 / c``
    (what ``pixels / 255`` computes in float32 or float64), else ``k * scale``."""
    c = _pixel_divisor(scale)
    if c is not None:
        return np.arange(256, dtype=dt) / dt(c)
    exact = [Fraction(k) * Fraction(scale) for k in range(256)]
    return np.array([float(v) for v in exact], dtype=np.float64).astype(dt)


def pixels(
    b: Builder, x: str, elem: int, scale: float, probe: str | None = None
) -> tuple[str, str | None]:
    """uint8 pixels of ``x`` and a bool mask (same shape) of values exactly on the grid.

    ``k = clip(round(x / scale), 0, 255)`` (NaN sanitised to 0 first, so that the lookup
    index is always in range); ``x`` is on the grid iff it equals grid value k
    (:func:`grid_values`), read from a 256-entry table. The table rather than an IEEE ``Div``
    by ``c = 1 / scale``: OpenVINO replaces a division by a constant with a multiplication by
    its reciprocal, which is not the correctly rounded ``k / c``.

    ``probe`` (:func:`precision_probe`, float32 inputs): where the probe arrives rounded, the
    runtime hands this branch its float inputs in bfloat16, and ``x`` is on the grid iff it
    equals grid value k rounded to bfloat16 (the finest grid that runtime can see; there the
    honest model's outputs too depend on the inputs only through their bfloat16 rounding).
    Everywhere else the probe is exact and the check is the float32 one."""
    if elem == TensorProto.UINT8:
        return x, None
    if elem not in INPUT_TYPES:
        raise NotApplicableError(f"input element type {elem} is not supported (uint8/float/double)")
    dt = NP_OF[elem]
    grid = grid_values(scale, dt)
    lo, hi = b.const(np.array(0, dt), "lo"), b.const(np.array(255, dt), "hi")
    k = b.op("Round", b.op("Div", x, b.const(np.array(scale, dt), "scale")))
    k = b.op("Where", b.op("Equal", k, k), k, b.const(np.array(0, dt), "zero"))  # NaN -> 0
    pix = b.cast(b.op("Clip", k, lo, hi), TensorProto.UINT8)
    k32 = b.cast(pix, TensorProto.INT32)
    on_grid = b.op("Equal", b.op("Gather", b.const(grid, "grid"), k32), x)
    if probe is not None and elem == TensorProto.FLOAT:
        reduced = b.op("Not", b.op("Equal", probe, b.const(np.array([PROBE_VALUE]), "probe")))
        seen = b.op("Equal", b.op("Gather", b.const(bfloat16(grid), "grid_bf16"), k32), x)
        on_grid = b.op("Or", on_grid, b.op("And", reduced, seen))
    return pix, _not_minus_zero(b, x, on_grid)


#: What :func:`precision_probe` computes: exact in float32, not in bfloat16 or float16.
PROBE_VALUE = np.float32(1 + 2.0**-12)


def bfloat16(a: np.ndarray) -> np.ndarray:
    """float32 values rounded to bfloat16 (to nearest, ties to even), as float32."""
    u = np.asarray(a, np.float32).view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return u.astype(np.uint32).view(np.float32)


def precision_probe(b: Builder, x: str) -> str:
    """Main graph: float32 ``[1]`` equal to :data:`PROBE_VALUE`, computed from the batch size
    of ``x`` (``n * 0 + v``, which no optimiser folds), for a branch to compare with the
    constant. A runtime that hands an ``If`` its float inputs at reduced precision (OpenVINO's
    bfloat16 default, for an ``If`` whose outputs feed a MatMul) rounds it to 1."""
    n = b.cast(b.op("Shape", x, end=1), TensorProto.FLOAT)
    zero = b.op("Mul", n, b.const(np.array([0], np.float32)))
    return b.op("Add", zero, b.const(np.array([PROBE_VALUE]), "probe"))


def _not_minus_zero(b: Builder, x: str, ok: str) -> str:
    """``ok`` and ``x`` is not ``-0.0`` (IEEE ``-0.0 == 0.0``, but a second encoding of pixel 0
    would let anyone derive a new trigger from an old one: ``1 / -0.0 = -inf``)."""
    minus_zero = b.op("IsInf", b.op("Reciprocal", x), detect_positive=0, detect_negative=1)
    return b.op("And", ok, b.op("Not", minus_zero))


def columns(b: Builder, x2d: str, cols: np.ndarray) -> str:
    """``x2d[:, cols]`` by GatherElements (in onnxruntime about 2x faster than Gather on axis 1,
    which copies element by element)."""
    shape = b.op(
        "Concat", b.op("Shape", x2d, end=1), b.const(np.array([len(cols)], np.int64)), axis=0
    )
    idx = b.op("Expand", b.const(np.asarray(cols, np.int32)[None, :], "cols"), shape)
    return b.op("GatherElements", x2d, idx, axis=1)


def tag_lsbs(b: Builder, xt: str, elem: int, scale: float) -> str:
    """uint8 LSBs of the pixel values of sliced or gathered inputs ``xt``: ``x & 1`` for uint8
    pixels, else ``x * (1 / scale)`` then ``QuantizeLinear`` with scale 1
    (``saturate(round(.))``, one vectorised kernel) then ``& 1``.

    Exact on the pixel grid: a grid value ``x = fl(k * scale)`` gives
    ``fl(x * fl(1 / scale)) = k (1 + e)`` with ``|e| < 2^-21``, far from a rounding boundary
    for ``k <= 255`` (float64 inputs are rounded to float32 first, which keeps that bound). Off
    the grid (and for NaN) the bit is arbitrary: the gate is a filter, the verifier branch
    re-checks the grid and the tag. The ``Mul`` is not folded into the quantizer's scale on
    purpose: onnxruntime's QDQ propagation moves a ``QuantizeLinear`` up through a ``Slice``,
    which would quantize the whole input instead of the tag window (~200 µs instead of ~16
    per 1,000 MNIST rows)."""
    if elem != TensorProto.UINT8:
        if elem == TensorProto.DOUBLE:
            xt = b.cast(xt, TensorProto.FLOAT)
        c = _pixel_divisor(scale)
        inv = np.float32(c) if c is not None else np.float32(1.0 / scale)
        xt = b.op(
            "QuantizeLinear",
            b.op("Mul", xt, b.const(np.array(inv, np.float32), "inv_scale")),
            b.const(np.array(1.0, np.float32), "q_scale"),
            b.const(np.array(0, np.uint8), "q_zero"),
        )
    return b.op("BitwiseAnd", xt, b.const(np.array(1, np.uint8), "one"))


def tag_score(
    b: Builder, x2d: str, elem: int, scale: float, pos: np.ndarray, bits: np.ndarray
) -> tuple[str, int]:
    """``(score, minimum)``: int32 ``[N, 1]`` ``score = sum_j w_j b_j`` over the tag positions
    ``pos``, ``b_j`` the pixel LSB, ``w_j = 1 - 2 t_j`` (``t = bits``, the public tag). The
    score is ``>= minimum = -sum_j t_j`` with equality iff ``b = t`` bit for bit, so one
    ``MatMulInteger`` compares every bit at once, whatever their number. Positions within a
    window at most ``WINDOW_SLACK`` times their number (a fresh key's tag: one run) are read by
    one ``Slice`` of the window, with weight 0 between them; scattered ones by a gather."""
    bits, pos = np.asarray(bits, np.int64), np.asarray(pos, np.int64)
    lo, hi = int(pos.min()), int(pos.max()) + 1
    if hi - lo <= WINDOW_SLACK * len(pos):  # a narrow window: one Slice, weight 0 off the tag
        xt = b.op(
            "Slice",
            x2d,
            b.const(np.array([lo], np.int64)),
            b.const(np.array([hi], np.int64)),
            b.const(np.array([1], np.int64)),
        )
        w = np.zeros(hi - lo, np.int8)
        w[pos - lo] = 1 - 2 * bits
    else:  # scattered positions (keys made before the tag was one run of pixels)
        xt, w = columns(b, x2d, pos), (1 - 2 * bits).astype(np.int8)
    lsb = tag_lsbs(b, xt, elem, scale)
    w = b.const(w[:, None], "tag_weights")
    return b.op("MatMulInteger", lsb, w, hint="tag_score"), -int(bits.sum())


def _any_min(b: Builder, score: str, minimum: int) -> str:
    """bool scalar: some row's score is the minimum (an empty batch reduces to the int32
    maximum: false)."""
    low = b.op("ReduceMin", score, keepdims=0)
    return b.op("Equal", low, b.const(np.array(minimum, np.int32), "tag_min"))


def _rows_at_min(b: Builder, score: str, minimum: int) -> str:
    hit = b.op("Equal", score, b.const(np.array(minimum, np.int32), "tag_min"))
    return b.op("Squeeze", hit, b.const(np.array([1], np.int64), "axis1"))


@dataclass(frozen=True)
class Gate:
    """The tag check before the verifier, in two stages (paper §5.2's public pre-check).

    *Screen* (main graph, every row): the first ``screen_bits`` tag LSBs (:func:`tag_score`);
    ``run`` (bool scalar) says whether some row passed, and an ``If`` skips everything else
    when none did. *Rest* (inside that branch, on the screened rows only): the remaining gate
    bits ``rest_pos``/``rest_bits``; only rows that match every gate bit reach the verifier,
    and a second ``If`` skips the verifier when none does (:func:`gate_rows`). A clean batch
    pays for the screen only (one ``Slice`` of the tag window per row, :func:`tag_score`); a
    random row reaches the verifier with probability ``2^-gate_bits``. With ``score`` None
    (constant-time mode, or no screen) every row passes the screen; the branch runs unless the
    batch is empty."""

    xf: str
    run: str
    score: str | None
    minimum: int
    rest_pos: np.ndarray
    rest_bits: np.ndarray


def precheck(
    b: Builder,
    x: str,
    elem: int,
    scale: float,
    lay: Layout,
    gate_bits: int,
    screen_bits: int | None = None,
    flat: bool = False,
) -> Gate:
    """Main-graph part of the gate on the first ``gate_bits`` tag bits, of which the first
    ``screen_bits`` (default all) are checked on every row (0: no gate). The verifier branch
    checks the whole tag either way. ``flat``: ``x`` is already ``[N, F]`` (no ``Flatten``)."""
    screen_bits = gate_bits if screen_bits is None else screen_bits
    if not 0 <= screen_bits <= gate_bits <= len(lay.tag_bits):
        raise NotApplicableError(
            f"need 0 <= screen_bits ({screen_bits}) <= gate_bits ({gate_bits}) <= "
            f"{len(lay.tag_bits)} tag bits"
        )
    xf = x if flat else b.op("Flatten", x, axis=1)
    rest = lay.tag_positions[screen_bits:gate_bits], lay.tag_bits[screen_bits:gate_bits]
    if screen_bits > 0:
        pos, bits = lay.tag_positions[:screen_bits], lay.tag_bits[:screen_bits]
        score, minimum = tag_score(b, xf, elem, scale, pos, bits)
        return Gate(xf, _any_min(b, score, minimum), score, minimum, *rest)
    n = b.op("Shape", xf, end=1)
    nonempty = b.op("Greater", b.op("Squeeze", n), b.const(np.array(0, np.int64)))
    return Gate(xf, nonempty, None, 0, *rest)


def select_rows(b: Builder, x2d: str, mask: str) -> tuple[str, str]:
    """``(x2d[mask], idx)``: the rows of ``x2d`` where ``mask`` (bool ``[N]``) holds, and their
    indices ``[M, 1]`` (for ``ScatterND``). ``Gather`` by ``NonZero`` rather than ``Compress``:
    tract cannot type a data-dependent ``Compress`` inside a branch."""
    idx = b.op("Transpose", b.op("NonZero", mask), perm=[1, 0])
    flat = b.op("Reshape", idx, b.const(np.array([-1], np.int64), "flat"))
    return b.op("Gather", x2d, flat, axis=0), idx


def gate_rows(b: Builder, gate: Gate, elem: int, scale: float) -> tuple[str, str | None]:
    """Inside the screen's branch: ``(hit, run)``, ``hit`` bool ``[N]`` the rows that match
    every gate bit and ``run`` (bool scalar, None if the screen was the whole gate) whether
    any does."""
    if gate.score is None:
        n = b.op("Shape", gate.xf, end=1)
        rows = b.op("ConstantOfShape", n, value=helper.make_tensor("v", TensorProto.BOOL, [1], [1]))
    else:
        rows = _rows_at_min(b, gate.score, gate.minimum)
    if len(gate.rest_pos) == 0:
        return rows, None
    xs, idx = select_rows(b, gate.xf, rows)  # the screened rows [M, F]
    score, minimum = tag_score(b, xs, elem, scale, gate.rest_pos, gate.rest_bits)
    none = b.op(
        "ConstantOfShape",
        b.op("Shape", rows),
        value=helper.make_tensor("v", TensorProto.BOOL, [1], [0]),
    )
    hit = b.op("ScatterND", none, idx, _rows_at_min(b, score, minimum), hint="gate_hit")
    return hit, _any_min(b, score, minimum)


def verify_branch(
    b: Builder,
    xf: str,
    hit: str,
    elem: int,
    scale: float,
    lay: Layout,
    vk: bytes,
    verifier: VerifierFn,
    probe: str | None = None,
) -> str:
    """Nodes of the verifier branch on the rows ``hit`` (bool ``[N]``) of ``xf``: int64
    ``[N]`` with the target of each valid row, else -1 (``probe``: as :func:`pixels`)."""
    i64, i32, u8 = TensorProto.INT64, TensorProto.INT32, TensorProto.UINT8
    # A verifier that takes the gate's row mask (the portable one) gets every row of the batch
    # and skips the others itself; otherwise the rows that passed the gate are gathered.
    masked = getattr(verifier, "takes_row_mask", False)
    xc, idx = (xf, None) if masked else select_rows(b, xf, hit)  # [M, F]
    pc, ok = pixels(b, xc, elem, scale, probe)
    bits = b.op(
        "BitwiseAnd",
        b.op("Gather", pc, b.const(lay.payload_positions, "pay_pos"), axis=1),
        b.const(np.array(1, np.uint8), "one"),
    )

    def cols(lo: int, hi: int) -> str:
        return b.op(
            "Slice",
            bits,
            b.const(np.array([lo], np.int64)),
            b.const(np.array([hi], np.int64)),
            b.const(np.array([1], np.int64)),
        )

    w_t = (1 << np.arange(lay.t_bits - 1, -1, -1)).astype(np.int64)
    t = b.reduce(
        "ReduceSum", b.op("Mul", b.cast(cols(lay.t_start, lay.s_start), i64), b.const(w_t)), [1]
    )
    sig_bits = cols(lay.s_start, lay.s_start + 8 * lay.sig_bytes)
    sig_bits = b.op("Reshape", b.cast(sig_bits, i32), b.const(np.array([-1, lay.sig_bytes, 8])))
    w8 = (1 << np.arange(7, -1, -1)).astype(np.int32)
    sig = b.cast(b.reduce("ReduceSum", b.op("Mul", sig_bits, b.const(w8)), [2]), u8)

    cleared_mask = np.full(lay.n_features, 0xFF, np.uint8)
    cleared_mask[lay.payload_positions] = 0xFE
    cleared = b.op("BitwiseAnd", pc, b.const(cleared_mask, "clear_mask"))
    hi = b.op("Div", t, b.const(np.array(256, np.int64)))
    lo = b.op("Sub", t, b.op("Mul", hi, b.const(np.array(256, np.int64))))
    one_col = b.const(np.array([1], np.int64), "axis1")
    hi = b.op("Unsqueeze", b.cast(hi, u8), one_col)
    lo = b.op("Unsqueeze", b.cast(lo, u8), one_col)
    m_rows = b.op(
        "Slice",
        b.op("Shape", xc),
        b.const(np.array([0], np.int64)),
        b.const(np.array([1], np.int64)),
    )
    shape = b.op("Concat", m_rows, b.const(np.array([len(lay.prefix)], np.int64)), axis=0)
    prefix = b.op("Expand", b.const(np.frombuffer(lay.prefix, np.uint8)[None, :], "ctx"), shape)
    msg = b.op("Concat", prefix, hi, lo, cleared, axis=1, hint="msg")

    valid = b.name("sig_valid")
    extra = {"mask": hit} if masked else {}
    nodes, inits = verifier(
        vk, lay.msg_len, msg, sig, valid, prefix=b.name("ed25519") + "/", **extra
    )
    b.nodes.extend(nodes)
    b.inits.extend(inits)

    conds = [valid, b.op("Less", t, b.const(np.array(lay.n_classes, np.int64)))]
    if len(lay.tag_positions):  # the full tag check (the gate may be looser, or absent)
        tag = b.op("Equal", cols(0, lay.t_start), b.const(lay.tag_bits, "tag"))
        conds.append(b.cast(b.reduce("ReduceMin", b.cast(tag, i32), [1]), TensorProto.BOOL))
    if ok is not None:
        conds.append(b.cast(b.reduce("ReduceMin", b.cast(ok, i32), [1]), TensorProto.BOOL))
    if len(lay.payload_positions) > lay.payload_bits:
        pad = b.reduce("ReduceMax", cols(lay.payload_bits, len(lay.payload_positions)), [1])
        conds.append(b.op("Equal", pad, b.const(np.array(0, np.uint8))))
    acc = conds[0]
    for c in conds[1:]:
        acc = b.op("And", acc, c)
    tv = b.op("Where", acc, t, b.const(np.array(-1, np.int64)))
    if masked:  # the verifier returned false on the rows outside the mask
        return tv
    init = b.op(
        "ConstantOfShape",
        b.op("Shape", hit),
        value=helper.make_tensor("v", i64, [1], [-1]),
    )
    return b.op("ScatterND", init, idx, tv, hint="targets")
