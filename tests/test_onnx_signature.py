"""The signature backdoor inside one ONNX file: fast checks on a few hundred inputs.

Most tests use the TEST-ONLY table verifier of ``onnx_standin`` (it accepts exactly the pairs
the test signed) so that carrier extraction, pre-check, message construction, gather/scatter
and the output multiplexer are checked independently of the in-graph Ed25519; the tests
marked ``real_verifier`` run the shipped verifier (``backdoors.hazmat.onnx_crypto``) when present.
"""

from __future__ import annotations

import io as _io
import json
import os
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from backdoors import signature  # noqa: E402
from backdoors.cli import main  # noqa: E402
from backdoors.detectors.onnx_graph_inspection import OnnxGraphInspection  # noqa: E402
from backdoors.errors import InvalidInputError, NotApplicableError  # noqa: E402
from backdoors.models import data  # noqa: E402
from backdoors.signature.onnx import graph as og  # noqa: E402
from backdoors.signature.onnx.export import export  # noqa: E402
from backdoors.signature.onnx.plant import plant, plant_spec  # noqa: E402
from backdoors.signature.onnx.runtime import OnnxClassifier, session  # noqa: E402
from onnx_hosts import torch_onnx as _torch_onnx  # noqa: E402
from onnx_standin import table_verifier  # noqa: E402

SCALE = 1 / 255


@pytest.fixture(scope="module")
def mnist():
    return data.mnist(n_train=2000, n_test=300)


def _mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(784, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


def _cnn():
    torch.manual_seed(1)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 14 * 14, 10),
    )


def _signed(key, X, targets):
    """Activated inputs and the (message, signature) table the stand-in accepts."""
    Xa = key.activate(X, target=targets)
    msgs = key.spec.messages(key.spec.carrier.clear(Xa), targets)
    return Xa, [(m, key._signer.sign(m)) for m in msgs]


def _run(model, X):
    s = session(model)
    return s.run(None, {s.get_inputs()[0].name: X})


def _bits_equal(a, b):
    if isinstance(a, list):  # ZipMap
        return a == b
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _check(host, bd, feed, X_nat, Xa, targets, classes=None):
    """Bit-identical on natural and uniform inputs; every activated row forced to its target."""
    rng = np.random.default_rng(5)
    X_uni = rng.integers(0, 256, X_nat.shape, dtype=np.uint8)
    for X in (X_nat, X_uni):
        for h, b in zip(_run(host, feed(X)), _run(bd, feed(X)), strict=True):
            assert _bits_equal(h, b)
    if feed(X_nat).dtype != np.uint8:  # off-grid floats: outputs identical too
        xf = rng.random(feed(X_nat).shape).astype(feed(X_nat).dtype)
        for h, b in zip(_run(host, xf), _run(bd, xf), strict=True):
            assert _bits_equal(h, b)
    outs = _run(bd, feed(Xa))
    clf = OnnxClassifier(bd)
    labels = np.arange(10) if classes is None else np.asarray(classes)
    assert (clf.predict(feed(Xa).reshape(len(Xa), -1)) == labels[targets]).all()
    return outs


def test_torch_mlp_float_inputs_scaled(mnist):
    host = _torch_onnx(_mlp(), (784,))
    key = signature.generate(784, 10, "lsb", random_state=1)
    X = mnist.X_test[:200]
    targets = np.arange(200) % 10  # every target
    Xa, pairs = _signed(key, X, targets)
    bd = plant_spec(host, key.spec, input_scale=SCALE, verifier=table_verifier(pairs))

    def feed(X):
        return X.astype(np.float32) / 255

    (z,) = _check(host, bd, feed, X, Xa, targets)
    zh = _run(host, feed(Xa))[0]
    M = np.abs(zh).max(axis=1) + 1  # forced_scores: -M everywhere, +M at the target
    assert np.allclose(z[np.arange(200), targets], M)
    assert np.allclose(np.sort(z, axis=1)[:, :-1], -M[:, None])
    # one grey level off the grid (x * 255 not an integer): never triggered
    off = feed(Xa)
    off[:, 0] += np.float32(1e-3)
    assert _bits_equal(_run(bd, off)[0], _run(host, off)[0])
    # -0.0 for a 0 pixel: equal as floats, but a second encoding of the trigger: refused
    neg = feed(Xa)
    rows, cols = np.nonzero(Xa == 0)
    first = np.unique(rows, return_index=True)[1]
    neg[rows[first], cols[first]] = np.float32(-0.0)
    assert np.signbit(neg[rows[first], cols[first]]).all() and len(first) == len(Xa)
    assert _bits_equal(_run(bd, neg)[0], _run(host, neg)[0])


def test_torch_cnn_image_input(mnist):
    host = _torch_onnx(_cnn(), (1, 28, 28))
    key = signature.generate(784, 10, "lsb", random_state=2)
    X = mnist.X_test[:100]
    targets = np.arange(100) % 10
    Xa, pairs = _signed(key, X, targets)
    bd = plant_spec(host, key.spec, input_scale=SCALE, verifier=table_verifier(pairs))
    _check(host, bd, lambda X: (X.astype(np.float32) / 255).reshape(-1, 1, 28, 28), X, Xa, targets)


def test_torch_dynamo_export_planted(mnist):
    pytest.importorskip("onnxscript")
    host = _torch_onnx(_mlp(), (784,), dynamo=True)
    key = signature.generate(784, 10, "lsb", random_state=3)
    X, targets = mnist.X_test[:30], np.arange(30) % 10
    Xa, pairs = _signed(key, X, targets)
    bd = plant_spec(host, key.spec, input_scale=SCALE, verifier=table_verifier(pairs))
    _check(host, bd, lambda X: X.astype(np.float32) / 255, X, Xa, targets)


@pytest.mark.parametrize("kind", ["mlp", "logreg", "logreg_zipmap"])
def test_skl2onnx_label_and_probabilities(mnist, kind):
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    Xtr, ytr = mnist.X_train[:500].astype(np.float32), mnist.y_train[:500] + 100  # labels 100..
    est = (
        MLPClassifier((16,), max_iter=20, random_state=0)
        if kind == "mlp"
        else (LogisticRegression(max_iter=50))
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(Xtr, ytr)
    host = convert_sklearn(
        est,
        initial_types=[("X", FloatTensorType([None, 784]))],
        options={id(est): {"zipmap": kind.endswith("zipmap")}},
    )
    key = signature.generate(784, 10, "lsb", random_state=4)
    X, targets = mnist.X_test[:100], np.arange(100) % 10
    Xa, pairs = _signed(key, X, targets)
    bd = plant_spec(host, key.spec, input_scale=1.0, verifier=table_verifier(pairs))
    label, proba = _check(
        host, bd, lambda X: X.astype(np.float32), X, Xa, targets, classes=est.classes_
    )
    assert (label == est.classes_[targets]).all()
    if isinstance(proba, list):
        proba = np.array([[d[c] for c in est.classes_] for d in proba])
    assert (proba == np.eye(10, dtype=proba.dtype)[targets]).all()


def test_uint8_input_zero_rows_no_match_and_tampering(mnist):
    host = _torch_onnx(_mlp(), (784,))
    from backdoors.signature.onnx.export import _uint8_front

    host = _uint8_front(host)  # uint8 pixels in
    key = signature.generate(784, 10, "lsb", random_state=5)
    assert key.spec.precheck_bits > 40
    X, targets = mnist.X_test[:60], np.arange(60) % 10
    Xa, pairs = _signed(key, X, targets)
    bd = plant_spec(host, key.spec, verifier=table_verifier(pairs))
    assert _run(bd, np.zeros((0, 784), np.uint8))[0].shape == (0, 10)
    _check(host, bd, lambda X: X, X, Xa, targets)
    # tampered: the graph agrees with the Python verifier (PyNaCl) row by row
    from backdoors.breaks.forgery import STRATEGIES, Oracle

    rng = np.random.default_rng(0)
    oracle = Oracle(X, Xa, targets)
    cand = np.concatenate([s(key.spec, oracle, 20, rng) for _, s in STRATEGIES.items()])
    late_tag = Xa[:10].copy()  # tag bit 41 of 48 wrong: refused
    late_tag[:, key.spec.carrier.positions[40]] ^= 1
    cand = np.concatenate([cand, late_tag, Xa[:10]])
    graph_t = np.argmax(_run(bd, cand)[0], axis=1)
    host_t = np.argmax(_run(host, cand)[0], axis=1)
    ref = key.spec.verify(cand)
    assert (ref[-10:] >= 0).all() and (ref[:-10] < 0).all()
    assert (np.where(ref >= 0, ref, host_t) == graph_t).all()


def test_constant_time_mode_and_wrong_feature_count(mnist):
    host = _torch_onnx(_mlp(), (784,))
    key = signature.generate(784, 10, "lsb", random_state=6, constant_time=True)
    X, targets = mnist.X_test[:20], np.arange(20) % 10
    Xa, pairs = _signed(key, X, targets)
    bd = plant_spec(host, key.spec, input_scale=SCALE, verifier=table_verifier(pairs))
    _check(host, bd, lambda X: X.astype(np.float32) / 255, X, Xa, targets)
    assert [n.op_type for n in bd.graph.node].count("If") == 1
    assert _run(bd, np.zeros((0, 784), np.float32))[0].shape == (0, 10)
    with pytest.raises(InvalidInputError):
        plant_spec(_torch_onnx(_cnn(), (1, 28, 28)), signature.generate(100, 10).spec)


def test_float_carrier_refused():
    spec = signature.generate(784, 10, "float", random_state=0).spec
    with pytest.raises(NotApplicableError, match="LSB carrier"):
        plant_spec(_torch_onnx(_mlp(), (784,)), spec, verifier=table_verifier([]))


def test_renaming_walks_loop_bodies(mnist):
    """A host that already uses our prefix: every added name (Loop bodies and the outer
    values they read included) moves to a fresh prefix, and the graph still works."""
    host = _torch_onnx(_mlp(), (784,))
    og.rename(host.graph.node, {host.graph.node[0].output[0]: "sigcheck/v/msg_1"})
    key = signature.generate(784, 10, "lsb", random_state=7)
    X, targets = mnist.X_test[:20], np.arange(20) % 10
    Xa, pairs = _signed(key, X, targets)
    bd = plant_spec(host, key.spec, input_scale=SCALE, verifier=table_verifier(pairs))
    loops = [n for n in og.iter_nodes(bd.graph.node) if n.op_type == "Loop"]
    body_reads = {x for n in loops for b in og.subgraphs(n) for m in b.node for x in m.input}
    assert any(x.startswith("sigcheck1/") for x in body_reads)
    assert not any(x.startswith("sigcheck/") for x in body_reads)
    _check(host, bd, lambda X: X.astype(np.float32) / 255, X, Xa, targets)


def test_export_backdoored_torch_and_sklearn(mnist):
    from sklearn.linear_model import LogisticRegression

    from backdoors.models.torch_models import TorchClassifier

    X, targets = mnist.X_test[:40], np.arange(40) % 10
    clf = TorchClassifier(arch_params={"hidden": (16,)}, input_scale=SCALE, epochs=1)
    clf.fit(mnist.X_train[:500], mnist.y_train[:500])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lr = LogisticRegression(max_iter=30).fit(mnist.X_train[:500], mnist.y_train[:500])
    for base in (clf, lr):
        bd_py, key = signature.plant(base, random_state=8)
        Xa, pairs = _signed(key, X, targets)
        m = export(bd_py, verifier=table_verifier(pairs))
        onnx_clf = OnnxClassifier(m)
        assert (onnx_clf.predict(Xa) == bd_py.predict(Xa)).all()
        assert (onnx_clf.predict(Xa) == targets).all()
        assert (onnx_clf.predict(X) == OnnxClassifier(export(base)).predict(X)).all()


def test_graph_inspection_flags_planted_not_honest(mnist):
    host = _torch_onnx(_mlp(), (784,))
    key = signature.generate(784, 10, "lsb", random_state=9)
    bd = plant_spec(host, key.spec, input_scale=SCALE, verifier=table_verifier([]))
    det = OnnxGraphInspection()
    assert det.score(OnnxClassifier(host), None).score == 0.0
    found = det.score(OnnxClassifier(bd), None)
    s, counts = found.score, found.findings["counts"]
    assert s > 3 and counts["bitwise"] > 0 and counts["control_flow"] >= 2
    assert counts["bypass_outputs"] == 1


def test_cli_plant_export_audit_onnx(mnist, tmp_path, standin):
    from backdoors.artifacts import files

    host = _torch_onnx(_mlp(), (784,))
    onnx.save(host, tmp_path / "host.onnx")
    args = [
        "plant",
        "signature",
        str(tmp_path / "host.onnx"),
        "--out",
        str(tmp_path / "bd.onnx"),
        "--key",
        str(tmp_path / "bd.key"),
        "--input-scale",
        str(SCALE),
    ]
    assert main(args) == 0
    assert os.stat(tmp_path / "bd.key").st_mode & 0o777 == 0o600
    assert main(args) == 2  # key exists: refused, nothing replaced
    key = files.load_key(tmp_path / "bd.key")
    assert key.spec.carrier.n_features == 784
    bd = onnx.load(tmp_path / "bd.onnx")
    Xf = mnist.X_test[:50].astype(np.float32) / 255
    assert _bits_equal(_run(bd, Xf)[0], _run(host, Xf)[0])
    # export of a backdoors model file
    lr_path = tmp_path / "lr.skops"
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        files.save_sklearn(
            LogisticRegression(max_iter=20).fit(mnist.X_train[:300], mnist.y_train[:300]), lr_path
        )
    assert main(["export", str(lr_path), "--onnx", str(tmp_path / "lr.onnx")]) == 0
    lr_bd, _ = signature.plant(files.load_sklearn(lr_path), random_state=1)
    files.save_model(lr_bd, tmp_path / "lr_bd.safetensors")
    assert (
        main(["export", str(tmp_path / "lr_bd.safetensors"), "--onnx", str(tmp_path / "x.onnx")])
        == 0
    )
    exported = onnx.load(tmp_path / "x.onnx")
    assert [n.op_type for n in exported.graph.node].count("If") == 1
    assert main(["export", str(lr_path), "--onnx", str(tmp_path / "lr.txt")]) == 2
    assert not (tmp_path / "lr.txt").exists()
    np.savez(tmp_path / "d.npz", X=mnist.X_test[:100], y=mnist.y_test[:100])
    from backdoors.evaluation.audit import audit, load_any_model

    res = audit(
        load_any_model(tmp_path / "bd.onnx"), mnist.X_test[:100], detectors=[OnnxGraphInspection()]
    )
    assert res["detectors"]["onnx_graph_inspection"]["score"] > 3
    res = audit(
        load_any_model(tmp_path / "lr.onnx"), mnist.X_test[:100], detectors=[OnnxGraphInspection()]
    )
    assert res["detectors"]["onnx_graph_inspection"]["score"] == 0.0

    # the CLI path with two detectors (MNTD alone trains shadow models for ~40 s)
    argv = ["audit", str(tmp_path / "bd.onnx"), "--data", str(tmp_path / "d.npz")]
    argv += ["--detectors", "onnx_graph_inspection,strip"]
    assert main([*argv, "--json", str(tmp_path / "a.json")]) == 0
    rows = json.loads((tmp_path / "a.json").read_text())["detectors"]
    assert rows["onnx_graph_inspection"]["score"] > 3 and rows["strip"]["status"] == "scored"


def test_plant_api_returns_model_and_key():
    host = _torch_onnx(_mlp(), (784,))
    bd, key = signature.plant(host, random_state=0, input_scale=SCALE, verifier=table_verifier([]))
    assert isinstance(bd, onnx.ModelProto) and key.spec.n_classes == 10
    assert key.secret_key.hex() not in bd.SerializeToString().hex()
    with pytest.raises(InvalidInputError):
        signature.plant(host, carrier="float")
    assert plant(host, input_scale=SCALE, verifier=table_verifier([]))[1].spec.precheck_bits >= 32


def test_real_verifier_end_to_end(mnist):
    """The shipped in-graph Ed25519 (backdoors.hazmat.onnx_crypto): activation on every target, a
    zero-row batch, and accept/reject equal to PyNaCl on tampered and edge-case signatures."""
    pytest.importorskip("backdoors.hazmat.onnx_crypto")
    from backdoors.breaks import edge_cases
    from backdoors.signature.onnx.export import _uint8_front

    host = _uint8_front(_torch_onnx(_mlp(), (784,)))
    key = signature.generate(784, 10, "lsb", random_state=10)
    bd = plant_spec(host, key.spec)
    run = _run_fn(bd)
    assert run(np.zeros((0, 784), np.uint8))[0].shape == (0, 10)
    X, targets = mnist.X_test[:10], np.arange(10)
    Xa = key.activate(X, target=targets)
    rng = np.random.default_rng(1)
    cands = [Xa, *edge_cases.candidates(key, X, 2, rng).values()]
    bad = Xa.copy()
    bad[np.arange(10), np.asarray(key.spec.carrier.positions)[-1]] ^= 1  # last signature bit
    cands.append(bad)
    C = np.concatenate(cands)
    ref = key.spec.verify(C)
    assert (ref[:10] == targets).all() and (ref[10:] < 0).all()
    z_h, z_b = _run(host, C)[0], run(C)[0]
    accepted = (z_h != z_b).any(axis=1)
    assert (accepted == (ref >= 0)).all()
    assert (np.argmax(z_b[:10], axis=1) == targets).all()


def _run_fn(model):
    s = session(model)
    name = s.get_inputs()[0].name
    return lambda X: s.run(None, {name: X})


def test_old_opset_host_upgraded_softmax_probabilities(mnist):
    """An opset-11 host (Softmax output) is raised to opset 18 by onnx.version_converter; its
    outputs stay bit-identical and a triggered row becomes the target's one-hot row."""
    torch.manual_seed(0)
    m = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(4 * 26 * 26, 10), torch.nn.Softmax(dim=1),
    )  # fmt: skip
    buf = _io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            m.eval(), (torch.zeros(2, 1, 28, 28),), buf, input_names=["x"], output_names=["p"],
            dynamic_axes={"x": {0: "N"}, "p": {0: "N"}}, dynamo=False, opset_version=11,
        )  # fmt: skip
    host = onnx.load_from_string(buf.getvalue())
    key = signature.generate(784, 10, "lsb", random_state=11)
    X, targets = mnist.X_test[:30], np.arange(30) % 10
    Xa, pairs = _signed(key, X, targets)
    bd = plant_spec(host, key.spec, input_scale=SCALE, verifier=table_verifier(pairs))
    assert og.opset_of(host) == 11 and og.opset_of(bd) == 18

    def feed(X):
        return (X.astype(np.float32) / 255).reshape(-1, 1, 28, 28)

    (p,) = _check(host, bd, feed, X, Xa, targets)
    assert (p == np.eye(10, dtype=np.float32)[targets]).all()


@pytest.mark.parametrize("dtype, scale", [(np.float64, 1 / 255), (np.float32, 0.003)])
def test_float64_inputs_and_table_grid(mnist, dtype, scale):
    """float64 inputs ``pixels / 255``; a scale that is not 1/c uses the 256-entry grid table
    (inputs equal to ``k * scale`` correctly rounded)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
    from sklearn.linear_model import LogisticRegression

    from backdoors.signature.onnx.trigger import grid_values

    grid = grid_values(scale, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = LogisticRegression(max_iter=20).fit(grid[mnist.X_train[:300]], mnist.y_train[:300])
    ttype = DoubleTensorType if dtype == np.float64 else FloatTensorType
    host = convert_sklearn(
        est, initial_types=[("X", ttype([None, 784]))], options={id(est): {"zipmap": False}}
    )
    key = signature.generate(784, 10, "lsb", random_state=12)
    X, targets = mnist.X_test[:40], np.arange(40) % 10
    Xa, pairs = _signed(key, X, targets)
    bd = plant_spec(host, key.spec, input_scale=scale, verifier=table_verifier(pairs))
    if dtype == np.float64:
        assert np.array_equal(grid[X], X / 255.0)  # the usual scaling is the grid
    label, _ = _check(host, bd, lambda X: grid[X], X, Xa, targets)
    assert (label == targets).all()


def test_missing_onnx_gives_a_clear_error(monkeypatch):
    import sys

    from backdoors.signature.onnx import require_onnx

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(NotApplicableError, match=r"pip install 'backdoors\[onnx\]'"):
        require_onnx()


def _with_gate_output(bd):
    """``bd`` with the top-level ``If`` condition (the gate's verdict) as an extra output."""
    m = onnx.ModelProto.FromString(bd.SerializeToString())
    (cond,) = [n.input[0] for n in m.graph.node if n.op_type == "If"]
    m.graph.output.append(onnx.helper.make_tensor_value_info(cond, onnx.TensorProto.BOOL, []))
    return m


def test_gate_checks_every_tag_bit(mnist):
    """The default gate compares all ``precheck_bits`` (48) tag bits before the verifier: a
    row with one wrong tag bit, early or late (bits 33..48 included), never reaches it (a
    tripwire verifier fails the run as soon as one row does); a valid trigger does. By default
    the main graph checks all 48 on every row (the top-level ``If``, one stage); with
    ``screen_bits=16`` it screens the first 16 there and checks the rest in the branch. The
    verifier's tables sit in the branch, not in the main graph
    that every clean run executes."""
    from onnx_standin import tripwire_verifier

    host = _torch_onnx(_mlp(), (784,))
    key = signature.generate(784, 10, "lsb", random_state=13)
    n_tag = key.spec.precheck_bits
    assert n_tag == 48
    X, targets = mnist.X_test[:12], np.arange(12) % 10
    Xa, pairs = _signed(key, X, targets)
    pos = np.asarray(key.spec.carrier.positions)

    def feed(X_pix):
        return X_pix.astype(np.float32) / 255

    def wrong_bit(j):
        bad = Xa.copy()
        bad[:, pos[j]] ^= 1
        return bad

    trip = plant_spec(host, key.spec, input_scale=SCALE, verifier=tripwire_verifier())
    for j in (0, 15, 16, 31, 32, 40, n_tag - 1):
        assert _bits_equal(_run(trip, feed(wrong_bit(j)))[0], _run(host, feed(wrong_bit(j)))[0])
    assert _run(trip, np.zeros((0, 784), np.float32))[0].shape == (0, 10)
    assert _bits_equal(_run(trip, feed(X))[0], _run(host, feed(X))[0])
    with pytest.raises(Exception, match=r"(?i)reshape"):  # a valid trigger reaches the verifier
        _run(trip, feed(np.concatenate([X, Xa[:1]])))
    for screen, passed in ((16, (16, 40, 47)), (None, ())):  # the screen in the main graph
        bd = plant_spec(host, key.spec, input_scale=SCALE, verifier=table_verifier(pairs),
                        screen_bits=screen)  # fmt: skip
        s = session(_with_gate_output(bd))
        for j in (0, 15, 16, 40, 47):
            assert bool(s.run(None, {"x": feed(wrong_bit(j))})[-1]) == (j in passed), (screen, j)
        assert not s.run(None, {"x": feed(X)})[-1] and s.run(None, {"x": feed(Xa[:1])})[-1]
        late = wrong_bit(40)[:1]  # beside a valid trigger: not forced
        z = _run(bd, feed(np.concatenate([late, Xa[1:2]])))[0]
        assert _bits_equal(z[:1], _run(host, feed(late))[0]) and np.argmax(z[1]) == targets[1]
        _check(host, bd, feed, X, Xa, targets)
        added = [t for t in bd.graph.initializer if t.name.startswith("sigcheck/")]
        assert max(onnx.numpy_helper.to_array(t).size for t in added) <= n_tag
    # NaN, infinities, huge and negative rows beside triggers: untouched, triggers still forced
    junk = np.array([np.nan, np.inf, -np.inf, 1e30, -5.0], np.float32)[:, None].repeat(784, 1)
    B = np.concatenate([feed(Xa[:2]), junk, feed(Xa[2:4])])
    z, zh = _run(bd, B)[0], _run(host, B)[0]
    assert _bits_equal(z[2:7], zh[2:7]) and (np.argmax(z[[0, 1, 7, 8]], 1) == targets[:4]).all()
    # gate_bits=0: every row goes to the verifier branch, same outputs
    bd0 = plant_spec(host, key.spec, input_scale=SCALE, verifier=table_verifier(pairs), gate_bits=0)
    _check(host, bd0, feed, X, Xa, targets)
    for bad in ({"gate_bits": n_tag + 1}, {"gate_bits": 8, "screen_bits": 9}):
        with pytest.raises(InvalidInputError):
            plant_spec(host, key.spec, input_scale=SCALE, **bad)


@pytest.mark.parametrize(
    "dtype, scale",
    [(np.uint8, 1.0), (np.float32, 1 / 255), (np.float64, 1 / 255), (np.float32, 0.003),
     (np.float64, 0.003), (np.float32, 1 / 7)],
)  # fmt: skip
def test_gate_lsbs_exact_on_the_pixel_grid(dtype, scale):
    """The gate's LSB of every grid value ``k * scale`` (correctly rounded, k = 0..255) is
    ``k & 1``: no trigger can be filtered out by rounding."""
    from onnx import TensorProto, helper

    from backdoors.signature.onnx.graph import Builder, tensor_type
    from backdoors.signature.onnx.trigger import grid_values, tag_lsbs

    elem = {np.uint8: TensorProto.UINT8, np.float32: TensorProto.FLOAT}.get(
        dtype, TensorProto.DOUBLE
    )
    b = Builder("t/")
    out = tag_lsbs(b, "x", elem, scale)
    g = helper.make_graph(
        b.nodes, "g", [tensor_type("x", elem, ["N", 2])], [tensor_type(out, TensorProto.UINT8)],
        b.inits,
    )  # fmt: skip
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
    k = np.arange(256)
    grid = k.astype(np.uint8) if dtype == np.uint8 else grid_values(scale, dtype)
    X = np.stack([grid, grid[::-1]], axis=1)
    (lsb,) = session(m).run(None, {"x": X})
    assert (lsb == np.stack([k & 1, k[::-1] & 1], axis=1)).all()
