"""The portable in-graph crypto (int32 below 2^24, Scan, no Loop or bitwise op) against
hashlib, Python integers and libsodium, in onnxruntime, OpenVINO and tract (each skipped when
it cannot be imported)."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from backdoors.hazmat.onnx_crypto import (
    ed25519_verify_model_portable,
    sha512_model_portable,
)
from backdoors.hazmat.onnx_crypto import portable_field as pf
from backdoors.hazmat.onnx_crypto.builder import IR_VERSION, Builder
from backdoors.hazmat.onnx_crypto.ref import L, P
from test_onnx_crypto import _edge_cases, _libsodium, _Signer

RUNTIMES = ["onnxruntime", "openvino", "tract"]
#: the default suite checks the arithmetic in onnxruntime; OpenVINO and tract (~5 s) run in
#: ``-m slow`` and in benchmarks/onnx_runtime_matrix.py
RUNTIMES_DEFAULT = [
    "onnxruntime",
    *(pytest.param(r, marks=pytest.mark.slow) for r in ("openvino", "tract")),
]


def _runner(runtime: str, model: onnx.ModelProto):
    """``run(*inputs) -> list of outputs`` in ``runtime`` (default configuration)."""
    onnx.checker.check_model(model, full_check=True)
    data = model.SerializeToString()
    names = [i.name for i in model.graph.input]
    if runtime == "onnxruntime":
        ort = pytest.importorskip("onnxruntime")
        s = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        return lambda *xs: s.run(None, dict(zip(names, xs, strict=True)))
    if runtime == "openvino":
        ov = pytest.importorskip("openvino")
        core = ov.Core()
        c = core.compile_model(core.read_model(model=data), "CPU")
        return lambda *xs: [np.asarray(v) for v in c(list(xs)).to_tuple()]
    tract = pytest.importorskip("tract")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.onnx"
        path.write_bytes(data)
        r = tract.onnx().load(str(path)).into_model().into_runnable()
    return lambda *xs: [t.to_numpy() for t in r.run(list(xs))]


@pytest.mark.parametrize("runtime", RUNTIMES_DEFAULT)
def test_portable_sha512_matches_hashlib(runtime):
    """Lengths around the padding boundaries (111/112 bytes: one or two blocks)."""
    rng = np.random.default_rng(0)
    for length in (1, 111, 112, 200):
        X = rng.integers(0, 256, (4, length), dtype=np.uint8)
        X[0] = 255
        (out,) = _runner(runtime, sha512_model_portable(length))(X)
        exp = np.stack([np.frombuffer(hashlib.sha512(r.tobytes()).digest(), np.uint8) for r in X])
        np.testing.assert_array_equal(out, exp)


def _field_model() -> onnx.ModelProto:
    b = Builder("f/")
    x = pf.Fe(b.op("Cast", ["x"], to=TensorProto.INT32), np.full(32, 255))
    y = pf.Fe(b.op("Cast", ["y"], to=TensorProto.INT32), np.full(32, 255))
    h = b.op("Cast", ["h"], to=TensorProto.INT32)
    outs = [
        pf.freeze(b, pf.mul(b, x, y)),
        pf.freeze(b, pf.sub(b, x, y)),
        pf.freeze(b, pf.invert(b, x, [None, 32])),
        pf.reduce_mod_l(b, h),
    ]
    names = ["mul", "sub", "inv", "modl"]
    for o, n in zip(outs, names, strict=True):
        b.nodes.append(helper.make_node("Identity", [o], [n]))
    graph = helper.make_graph(
        b.nodes,
        "field",
        [
            helper.make_tensor_value_info(n, TensorProto.UINT8, ["N", w])
            for n, w in (("x", 32), ("y", 32), ("h", 64))
        ],
        [helper.make_tensor_value_info(n, TensorProto.INT32, ["N", 32]) for n in names],
        b.initializers,
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=IR_VERSION
    )


@pytest.mark.parametrize("runtime", RUNTIMES_DEFAULT)
def test_portable_field_matches_python_integers(runtime):
    """x*y, x-y, 1/x mod p (canonical bytes) and a hash scalar reduced mod L, on random and
    extreme inputs (all bytes 255, p - 1, p, p + 5, 0)."""
    rng = np.random.default_rng(2)
    X = rng.integers(0, 256, (7, 32), dtype=np.uint8)
    Y = rng.integers(0, 256, (7, 32), dtype=np.uint8)
    H = rng.integers(0, 256, (7, 64), dtype=np.uint8)
    X[0], Y[0], H[0] = 255, 255, 255
    for i, v in enumerate((P - 1, P, P + 5, 0), start=1):
        X[i] = np.frombuffer(v.to_bytes(32, "little"), np.uint8)

    def iv(r) -> int:
        return int.from_bytes(bytes(np.asarray(r, np.uint8)), "little")

    mul, sub, inv, modl = _runner(runtime, _field_model())(X, Y, H)
    for i in range(len(X)):
        x, y = iv(X[i]), iv(Y[i])
        assert iv(mul[i]) == x * y % P and mul[i].max() < 256
        assert iv(sub[i]) == (x - y) % P and sub[i].min() >= 0
        assert iv(inv[i]) == pow(x, P - 2, P)
        k = iv(modl[i])
        assert k % L == iv(H[i]) % L and k < 2**254 and modl[i].max() < 256


@pytest.fixture(scope="module")
def signers():
    return _Signer(bytes(range(32))), _Signer(bytes(range(1, 33)))


@pytest.mark.slow
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_portable_verify_agrees_with_libsodium(runtime, signers):
    """Valid, tampered, S + L, S >= L, small-order and non-canonical R, torsion components,
    wrong key, random signatures: exactly libsodium's verdicts (both outcomes exercised)."""
    signer, other = signers
    msg_len = 40
    cases = _edge_cases(signer, other, np.random.default_rng(1), msg_len, n_random=2)
    msgs = np.frombuffer(b"".join(m for m, _ in cases), np.uint8).reshape(len(cases), msg_len)
    sigs = np.frombuffer(b"".join(s for _, s in cases), np.uint8).reshape(len(cases), 64)
    (valid,) = _runner(runtime, ed25519_verify_model_portable(signer.vk, msg_len))(msgs, sigs)
    expected = np.array([_libsodium(signer.vk, m, s) for m, s in cases])
    assert expected.sum() >= 4 and (~expected).sum() >= 50
    np.testing.assert_array_equal(np.asarray(valid, bool), expected)


def test_portable_graph_has_no_loop_and_no_bitwise_op(signers):
    model = ed25519_verify_model_portable(signers[0].vk, 40)
    ops = set()

    def walk(g):
        for n in g.node:
            ops.add(n.op_type)
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g)

    walk(model.graph)
    assert "Scan" in ops and not ops & {"Loop", "BitShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor"}

    def dtypes(g):
        for t in g.initializer:
            yield t.data_type
        for n in g.node:
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    yield from dtypes(a.g)

    assert set(dtypes(model.graph)) <= {TensorProto.INT32, TensorProto.INT64, TensorProto.UINT8}
