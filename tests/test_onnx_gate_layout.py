"""The pre-check tag is one run of pixels, and the ONNX gate reads only that window (the
predict overhead): the layout of fresh keys, the graph onnxruntime actually runs after its
optimizations, and keys with the older scattered layout (still gated, by gathering)."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from backdoors import signature  # noqa: E402
from backdoors.errors import InvalidInputError  # noqa: E402
from backdoors.hazmat.carriers import LSBCarrier  # noqa: E402
from backdoors.models import data  # noqa: E402
from backdoors.signature.onnx.plant import plant_spec  # noqa: E402
from backdoors.signature.onnx.runtime import session  # noqa: E402
from onnx_hosts import torch_onnx  # noqa: E402
from onnx_standin import table_verifier  # noqa: E402

SCALE = 1 / 255


def _host() -> onnx.ModelProto:
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(784, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    return torch_onnx(m, (784,))


def _run(model, X):
    s = session(model)
    return s.run(None, {s.get_inputs()[0].name: X})


@pytest.mark.parametrize("n_features, n_classes, seed", [(784, 10, 0), (784, 10, 1), (600, 3, 7)])
def test_fresh_keys_put_the_tag_in_one_run_of_pixels(n_features, n_classes, seed):
    """``generate``: the first ``precheck_bits`` carrier positions are ``o, o+1, ..., o+47``
    for a public random offset ``o``; the other positions are distinct and outside the run."""
    spec = signature.generate(n_features, n_classes, "lsb", random_state=seed).spec
    pos = np.asarray(spec.carrier.positions)
    n_tag = spec.precheck_bits
    assert n_tag == 48
    assert (pos[:n_tag] == pos[0] + np.arange(n_tag)).all()
    assert len(set(pos.tolist())) == len(pos) and pos.min() >= 0 and pos.max() < n_features
    offsets = {
        signature.generate(784, 10, "lsb", random_state=s).spec.carrier.positions[0]
        for s in range(8)
    }
    assert len(offsets) > 4  # the offset is drawn, not fixed
    c = LSBCarrier.plan(64, 40, seed=3, window=40)
    assert list(c.positions) == list(range(c.positions[0], c.positions[0] + 40))
    with pytest.raises(InvalidInputError):
        LSBCarrier.plan(64, 40, seed=3, window=41)


def _optimized(model: onnx.ModelProto, path) -> onnx.GraphProto:
    """The graph onnxruntime runs (its ``ORT_ENABLE_ALL`` optimizations applied, as
    ``runtime.session`` does)."""
    o = ort.SessionOptions()
    o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    o.optimized_model_filepath = str(path)
    ort.InferenceSession(model.SerializeToString(), o, providers=["CPUExecutionProvider"])
    return onnx.load(str(path)).graph


def _input_readers(g: onnx.GraphProto) -> list[str]:
    """Op types of the nodes reading the input, looking through reshapes of it (a 4-D input
    is flattened first)."""
    values, readers = {g.input[0].name}, []
    for n in g.node:  # topological order
        if not values.intersection(n.input):
            continue
        if n.op_type in ("Flatten", "Reshape"):
            values.update(n.output)
        else:
            readers.append(n.op_type)
    return sorted(readers)


def _cnn() -> onnx.ModelProto:
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                            torch.nn.Linear(2 * 26 * 26, 10))  # fmt: skip
    return torch_onnx(m, (1, 28, 28))


def _float64_host() -> onnx.ModelProto:
    from onnx import TensorProto, helper

    h = _host()  # a float64 front: Cast to float32, then the float32 host
    name = h.graph.input[0].name
    h.graph.input[0].type.tensor_type.elem_type = TensorProto.DOUBLE
    cast = helper.make_node("Cast", [name], ["x_f32"], to=TensorProto.FLOAT)
    for n in h.graph.node:
        n.input[:] = ["x_f32" if i == name else i for i in n.input]
    h.graph.node.insert(0, cast)
    return h


def _uint8_host() -> onnx.ModelProto:
    from backdoors.signature.onnx.export import _uint8_front

    return _uint8_front(_host())


@pytest.mark.parametrize("make, scale", [(_host, SCALE), (_cnn, SCALE), (_float64_host, SCALE),
                                         (_uint8_host, 1.0)])  # fmt: skip
def test_optimized_gate_reads_only_the_tag_window(tmp_path, make, scale):
    """After onnxruntime's graph optimizations the backdoor adds exactly one reader of the
    input (float32, float64 or uint8; flat or 4-D), a ``Slice`` of the 48-pixel tag window:
    not a gather of scattered pixels, and not a ``QuantizeLinear`` of the whole input
    (onnxruntime's QDQ propagation hoists a quantizer above a ``Slice``; that tripled
    the gate's cost)."""
    host = make()
    key = signature.generate(784, 10, "lsb", random_state=3)
    bd = plant_spec(host, key.spec, input_scale=scale, verifier=table_verifier([]))
    before = _input_readers(_optimized(host, tmp_path / "h.onnx"))
    after = _input_readers(_optimized(bd, tmp_path / "b.onnx"))
    extra = list(after)
    for op in before:
        extra.remove(op)
    assert extra == ["Slice"], (before, after)


def _carrier(layout: str) -> LSBCarrier:
    """564 positions whose 48 tag positions are scattered over the image, or every other pixel
    of a 95-pixel window (read by one ``Slice``, the pixels between weighted 0)."""
    n_bits = 48 + 4 + 512
    if layout == "scattered":
        return signature.make_carrier("lsb", 784, n_bits, seed=1)
    tag = np.arange(100, 196, 2)
    rest = np.random.default_rng(2).permutation(np.setdiff1d(np.arange(784), tag))
    return LSBCarrier(784, tuple(int(p) for p in np.concatenate([tag, rest[: n_bits - 48]])))


@pytest.mark.parametrize("layout, op", [("scattered", "GatherElements"), ("every_other", "Slice")])
def test_other_tag_layouts_are_still_gated(layout, op):
    """A key whose tag pixels are scattered (an explicit carrier, or a key made before the tag
    was a run) is gated by gathering them; one whose tag pixels leave gaps in a narrow window, by
    slicing the window. Either way clean rows are bit-identical, triggers are forced, a row with
    one wrong tag bit is not; odd pixels between the tag pixels do not stop a trigger."""
    key = signature.generate(784, 10, carrier=_carrier(layout), random_state=9)
    pos = np.asarray(key.spec.carrier.positions)
    ds = data.mnist(n_train=100, n_test=40)
    X, t = ds.X_test[:20].copy(), np.arange(20) % 10
    X[:, 101:195:2] |= 1  # the gaps of the window hold odd pixels (MNIST's border: even)
    Xa = key.activate(X, target=t)
    pairs = [(m, key._signer.sign(m))
             for m in key.spec.messages(key.spec.carrier.clear(Xa), t)]  # fmt: skip
    host = _host()
    bd = plant_spec(host, key.spec, input_scale=SCALE, verifier=table_verifier(pairs))
    main_ops = {n.op_type for n in bd.graph.node}
    assert op in main_ops and ({"GatherElements", "Slice"} - {op}).isdisjoint(main_ops)

    def same(rows):
        f = rows.astype(np.float32) / 255
        return _run(bd, f)[0].tobytes() == _run(host, f)[0].tobytes()

    assert same(X) and same(np.random.default_rng(0).integers(0, 256, (50, 784), dtype=np.uint8))
    assert (np.argmax(_run(bd, Xa.astype(np.float32) / 255)[0], 1) == t).all()
    for j in (0, 23, 47):
        bad = Xa.copy()
        bad[:, pos[j]] ^= 1
        assert same(bad), j


@pytest.mark.parametrize("scale", [1e-31, 1e31])
def test_input_scale_out_of_float32_range_refused(scale):
    key = signature.generate(784, 10, "lsb", random_state=0)
    with pytest.raises(InvalidInputError, match="input_scale"):
        plant_spec(_host(), key.spec, input_scale=scale, verifier=table_verifier([]))
