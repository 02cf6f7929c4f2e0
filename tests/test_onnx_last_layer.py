"""Multiplexing at the host's last linear layer (backdoors.signature.onnx.last_layer): the
host's own final Gemm writes the outputs, clean rows are bit-identical at every onnxruntime
optimisation level and in the reference evaluator, triggers get +-M through the layer, and
hosts it does not fit are refused with a reason (or, by default, multiplexed at the outputs)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from backdoors import signature  # noqa: E402
from backdoors.detectors.onnx_graph_inspection import inspect_graph  # noqa: E402
from backdoors.errors import InvalidInputError, NotApplicableError  # noqa: E402
from backdoors.models import data  # noqa: E402
from backdoors.signature.onnx import last_layer, trigger  # noqa: E402
from backdoors.signature.onnx.export import _uint8_front  # noqa: E402
from backdoors.signature.onnx.outputs import mux_points  # noqa: E402
from backdoors.signature.onnx.plant import plant_spec  # noqa: E402
from onnx_hosts import torch_onnx  # noqa: E402
from onnx_standin import table_verifier  # noqa: E402


@pytest.fixture(scope="module")
def mnist():
    return data.mnist(n_train=200, n_test=60)


def _host(hidden: int = 16):
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(
        torch.nn.Linear(784, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10)
    )
    return _uint8_front(torch_onnx(mlp, (784,)))


def _runs(model, X):
    outs = {}
    for level in (
        ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    ):
        so = ort.SessionOptions()
        so.graph_optimization_level, so.log_severity_level = level, 3
        s = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        outs[str(level)] = s.run(None, {s.get_inputs()[0].name: X})
    from onnx.reference import ReferenceEvaluator

    ev = ReferenceEvaluator(model)
    outs["reference"] = list(ev.run(None, {ev.input_names[0]: X}))
    return outs


def test_forced_rows_force_every_class_through_the_layer():
    host = _host()
    layer, why = last_layer.find(host, mux_points(host, None, 10))
    assert layer is not None, why
    assert layer.node.op_type == "Gemm" and layer.weight.shape == (16, 10)
    v = last_layer.forced_rows(layer)
    z = v.astype(np.float32) @ layer.weight.astype(np.float32) + layer.bias.astype(np.float32)
    M = last_layer.FORCE_M
    assert np.allclose(z, M * (2 * np.eye(10) - 1), atol=1e-2 * M)
    bf16 = trigger.bfloat16  # a runtime running the layer in bfloat16
    zb = bf16(v).astype(float) @ bf16(layer.weight).astype(float) + bf16(layer.bias).astype(float)
    assert (zb.argmax(axis=1) == np.arange(10)).all()
    assert (np.sort(zb, axis=1)[:, -1] - np.sort(zb, axis=1)[:, -2] >= M).all()


def _planted(host, mnist, n, seed, **kw):
    """``(planted graph, triggers, targets)``: ``n`` activated MNIST rows whose signatures the
    stand-in verifier accepts (every target), planted with ``plant_spec(**kw)``."""
    key = signature.generate(784, 10, "lsb", random_state=seed)
    targets = np.arange(n) % 10
    Xa = key.activate(mnist.X_test[:n], target=targets)
    msgs = key.spec.messages(key.spec.carrier.clear(Xa), targets)
    verifier = table_verifier([(m, key._signer.sign(m)) for m in msgs])
    return plant_spec(host, key.spec, verifier=verifier, **kw), Xa, targets, key, verifier


def test_portable_plant_keeps_the_hosts_last_layer_as_the_output(mnist):
    host = _host()
    bd, Xa, targets, key, verifier = _planted(host, mnist, 30, 3, profile="portable")
    X = mnist.X_test[:30]
    prod = {o: n for n in bd.graph.node for o in n.output}
    hprod = {o: n for n in host.graph.node for o in n.output}
    out = bd.graph.output[0].name
    assert prod[out].op_type == "Gemm"  # the host's own layer writes the output
    assert list(prod[out].input[1:]) == list(hprod[out].input[1:])  # same weights and bias
    onnx.checker.check_model(bd, full_check=True)
    rng = np.random.default_rng(1)
    for Xc in (X, rng.integers(0, 256, X.shape, dtype=np.uint8)):
        for (lvl, h), b in zip(_runs(host, Xc).items(), _runs(bd, Xc).values(), strict=True):
            assert np.asarray(h[0]).tobytes() == np.asarray(b[0]).tobytes(), lvl
    for lvl, (z,) in _runs(bd, Xa).items():
        assert (z.argmax(axis=1) == targets).all(), lvl
        M = last_layer.FORCE_M
        assert np.allclose(np.sort(z, axis=1)[:, :-1], -M, atol=1e-2 * M)
    counts = inspect_graph(bd)["counts"]  # the white-box detector still sees the switch
    assert counts["bypass_outputs"] == 1 and inspect_graph(host)["counts"]["bypass_outputs"] == 0
    # the multiplexer at the outputs: the output is the switch, not the host's layer
    bo = plant_spec(host, key.spec, profile="portable", verifier=verifier, multiplexer="outputs")
    assert {n.output[0]: n for n in bo.graph.node}[out].op_type == "If"


def test_hosts_the_last_layer_does_not_fit():
    host = _host()
    key = signature.generate(784, 10, "lsb", random_state=3)
    standin = table_verifier([])
    # a second output computed from the logits: changing the layer's input would change it
    doubled = onnx.helper.make_node("Add", ["logits", "logits"], ["doubled"])
    other = onnx.ModelProto.FromString(host.SerializeToString())
    other.graph.node.append(doubled)
    other.graph.output.append(onnx.helper.make_tensor_value_info("doubled", 1, ["N", 10]))
    points = mux_points(other, {"doubled": "passthrough"}, 10)
    layer, why = last_layer.find(other, points)
    assert layer is None and "also reads" in why
    with pytest.raises(NotApplicableError, match="last layer"):
        plant_spec(other, key.spec, output_kinds={"doubled": "passthrough"}, verifier=standin,
                   multiplexer="last-layer")  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:  # the portable default falls back
        warnings.simplefilter("always")
        bd = plant_spec(other, key.spec, output_kinds={"doubled": "passthrough"},
                        verifier=standin, profile="portable")  # fmt: skip
    assert any("bfloat16" in str(w.message) for w in caught)
    assert {n.output[0]: n for n in bd.graph.node}["logits"].op_type == "If"
    # fewer hidden units than classes: no row forces every class
    narrow = _host(hidden=4)
    layer, _ = last_layer.find(narrow, mux_points(narrow, None, 10))
    assert layer is not None and last_layer.forced_rows(layer) is None
    with pytest.raises(InvalidInputError, match="multiplexer"):
        plant_spec(host, key.spec, verifier=standin, multiplexer="middle")


def _float_plant(mnist, probe_value=None):
    """A float32-input MLP (pixels / 255) planted with the last-layer multiplexer (stand-in
    verifier); ``probe_value`` replaces what the precision probe computes, as a runtime that
    rounds the branch's float inputs would see it."""
    from backdoors.signature.onnx.trigger import PROBE_VALUE, bfloat16

    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(784, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    host = torch_onnx(mlp, (784,))
    bd, Xa, targets, _, _ = _planted(host, mnist, 20, 4, input_scale=1 / 255, profile="portable")
    probes = [t for t in bd.graph.initializer if t.name.startswith("sigcheck/probe")]
    if probe_value is not None:  # what a reduced-precision runtime hands the branch
        found = [t for t in probes if onnx.numpy_helper.to_array(t).tolist() == [PROBE_VALUE]]
        assert found
        for t in found:
            t.CopyFrom(onnx.numpy_helper.from_array(np.float32([probe_value]), t.name))
    feed = Xa.astype(np.float32) / np.float32(255)
    # the same triggers with every pixel k / 255 replaced by its bfloat16 rounding
    rounded = bfloat16(feed)
    return host, bd, feed, rounded, targets


def test_float_grid_is_float32_unless_the_branch_sees_reduced_precision(mnist):
    from onnx.reference import ReferenceEvaluator

    host, bd, feed, rounded, targets = _float_plant(mnist)
    assert (rounded != feed).any(axis=1).all()  # every row moves off the float32 grid

    def ort_run(m):
        sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        return lambda X: sess.run(None, {"x": X})[0]

    def ref_run(m):
        ev = ReferenceEvaluator(m)
        return lambda X: ev.run(None, {"x": X})[0]

    for runner in (ort_run, ref_run):
        run, run_host = runner(bd), runner(host)
        assert (run(feed).argmax(axis=1) == targets).all()
        # off the float32 grid: not a trigger, the honest file's outputs bit for bit
        assert run(rounded).tobytes() == run_host(rounded).tobytes()
    # a runtime that rounds the branch's float inputs to bfloat16 (the probe arrives as 1):
    # the grid it checks is the bfloat16 one, so the rounded triggers fire there
    _, bd1, feed, rounded, targets = _float_plant(mnist, probe_value=1.0)
    s1 = ort.InferenceSession(bd1.SerializeToString(), providers=["CPUExecutionProvider"])
    assert (s1.run(None, {"x": rounded})[0].argmax(axis=1) == targets).all()
    assert (s1.run(None, {"x": feed})[0].argmax(axis=1) == targets).all()
