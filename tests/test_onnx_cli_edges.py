"""ONNX edges: multi-output hosts, element types, the CLI on .onnx files, scanner telemetry."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from backdoors.cli import main  # noqa: E402
from backdoors.errors import NotApplicableError  # noqa: E402
from backdoors.experiments.onnx.hosts import two_output_module  # noqa: E402
from backdoors.models import data  # noqa: E402
from backdoors.signature.onnx.export import _uint8_front  # noqa: E402
from backdoors.signature.onnx.plant import check_loadable, plant  # noqa: E402
from backdoors.signature.onnx.runtime import session  # noqa: E402
from onnx_hosts import torch_onnx  # noqa: E402
from onnx_standin import table_verifier  # noqa: E402


@pytest.fixture(scope="module")
def mnist():
    return data.mnist(n_train=200, n_test=40)


def _two_heads_onnx(tmp_path):
    import warnings

    path = tmp_path / "two.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            two_output_module(), (torch.zeros(2, 784),), str(path), input_names=["x"],
            output_names=["logits", "features"], dynamo=False,
            dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}, "features": {0: "N"}},
        )  # fmt: skip
    m = _uint8_front(onnx.load(path))
    onnx.save(m, path)
    return m, path


def _run(model, X):
    s = session(model)
    return s.run(None, {s.get_inputs()[0].name: X})


def test_two_output_host_features_pass_through(mnist, tmp_path, standin):
    """(logits [N, 10], features [N, 32]): the 10-wide output is the class output, the features
    pass through bit for bit (triggered rows too); the file passes the full checker and loads.
    (The 32-wide output used to be taken as logits: a file onnxruntime refused.)"""
    from backdoors import signature
    from backdoors.signature.onnx.plant import plant_spec

    host, path = _two_heads_onnx(tmp_path)
    assert main(["plant", "signature", str(path), "-o", str(tmp_path / "bd.onnx"),
                 "-k", str(tmp_path / "bd.key")]) == 0  # fmt: skip
    bd = onnx.load(tmp_path / "bd.onnx")
    onnx.checker.check_model(bd, full_check=True)
    X = mnist.X_test[:10]
    for h, b in zip(_run(host, X), _run(bd, X), strict=True):
        assert h.tobytes() == b.tobytes()
    # the API, the class output named by the user; a trigger forces the logits only
    key = signature.generate(784, 10, "lsb", random_state=1)
    Xa = key.activate(X, target=np.full(10, 3))
    msgs = key.spec.messages(key.spec.carrier.clear(Xa), np.full(10, 3))
    table = table_verifier([(m, key._signer.sign(m)) for m in msgs])
    bd2 = plant_spec(host, key.spec, verifier=table, class_output="logits")
    (_, fh), (lb, fb) = _run(host, Xa), _run(bd2, Xa)
    assert (lb.argmax(1) == 3).all() and fb.tobytes() == fh.tobytes()
    with pytest.raises(Exception, match="no output named"):
        plant_spec(host, key.spec, verifier=table, class_output="nope")


def test_check_loadable_refuses_a_graph_onnxruntime_rejects():
    """The last step of planting: a graph with inconsistent shapes is refused, not written."""
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "bad",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 10])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        [onnx.numpy_helper.from_array(np.zeros(32, np.float32), "w")],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    with pytest.raises(NotApplicableError, match="planted graph"):
        check_loadable(m)


def test_float16_host_named_in_the_error():
    torch.manual_seed(0)
    host = torch_onnx(torch.nn.Linear(784, 10), (784,))
    host.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.FLOAT16
    with pytest.raises(NotApplicableError, match="float16") as err:
        plant(host, random_state=0)
    assert "element type 10" not in str(err.value)


def test_cli_commands_take_onnx_files(mnist, tmp_path, capsys, standin):
    """activate / predict / verify / sign with an .onnx model (one-line errors, exit 2)."""
    host = _uint8_front(torch_onnx(torch.nn.Sequential(torch.nn.Linear(784, 10)), (784,)))
    onnx.save(host, tmp_path / "host.onnx")
    bd, k = tmp_path / "bd.onnx", tmp_path / "bd.key"
    assert (
        main(["plant", "signature", str(tmp_path / "host.onnx"), "-o", str(bd), "-k", str(k)]) == 0
    )
    np.save(tmp_path / "x.npy", mnist.X_test[:5])
    assert main(["activate", str(bd), str(k), str(tmp_path / "x.npy"), "--target", "7",
                 "-o", str(tmp_path / "xa.npy")]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["predict", str(bd), str(tmp_path / "xa.npy")]) == 0
    assert len(json.loads(capsys.readouterr().out)["labels"]) == 5
    # a key of another model is refused
    other, ko = tmp_path / "o.onnx", tmp_path / "o.key"
    assert (
        main(["plant", "signature", str(tmp_path / "host.onnx"), "-o", str(other), "-k", str(ko)])
        == 0
    )
    capsys.readouterr()
    assert main(["activate", str(other), str(k), str(tmp_path / "x.npy"), "--target", "1",
                 "-o", str(tmp_path / "xb.npy")]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert err.startswith("backdoors: error:") and "does not belong" in err and "\n" not in err
    assert main(["verify", str(bd), str(tmp_path / "xa.npy")]) == 2
    assert "ONNX" in capsys.readouterr().err
    # publisher signatures cover ONNX files
    assert main(["keygen", "-o", str(tmp_path / "pub.key")]) == 0
    assert main(["sign", str(bd), "--publisher-key", str(tmp_path / "pub.key")]) == 0
    pub = ["--publisher", str(tmp_path / "pub.pub")]
    assert main(["predict", str(bd), str(tmp_path / "xa.npy"), *pub]) == 0
    raw = bytearray(bd.read_bytes())
    raw[-1] ^= 1
    bd.write_bytes(bytes(raw))
    capsys.readouterr()
    assert main(["predict", str(bd), str(tmp_path / "xa.npy"), *pub]) == 2
    assert "\n" not in capsys.readouterr().err.strip()
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    assert main(["predict", str(tmp_path / "junk.onnx"), str(tmp_path / "x.npy")]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a valid ONNX model" in err and "\n" not in err


def test_modelaudit_runs_with_telemetry_off(tmp_path, monkeypatch):
    """The scanner record says telemetry was off, and the scanner process saw it off."""
    from backdoors.experiments.onnx import scanners

    exe = tmp_path / "modelaudit"
    exe.write_text(
        "#!/bin/sh\n"
        'T="$PROMPTFOO_DISABLE_TELEMETRY"\n'
        'echo "{\\"issues\\": [], \\"checks\\": [{\\"name\\": \\"telemetry=$T\\", '
        '\\"status\\": \\"failed\\"}]}"\n'
    )
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("BACKDOORS_SCANNERS_BIN", str(tmp_path))
    monkeypatch.delenv("PROMPTFOO_DISABLE_TELEMETRY", raising=False)
    rec = scanners.modelaudit(tmp_path / "any.onnx")
    assert rec["status"] == "ran" and rec["failed_checks"] == ["telemetry=1"]
    assert rec["telemetry"].startswith("off")
    assert scanners.scan(tmp_path / "any.onnx")["telemetry"].startswith("off")
    assert os.environ.get("PROMPTFOO_DISABLE_TELEMETRY") is None


@pytest.mark.slow
def test_cli_activate_predict_real_verifier(mnist, tmp_path, capsys):
    """The whole CLI path on an ONNX file with the in-graph Ed25519: activated inputs are
    predicted as the target."""
    host = _uint8_front(torch_onnx(torch.nn.Sequential(torch.nn.Linear(784, 10)), (784,)))
    onnx.save(host, tmp_path / "host.onnx")
    bd, k = tmp_path / "bd.onnx", tmp_path / "bd.key"
    assert (
        main(["plant", "signature", str(tmp_path / "host.onnx"), "-o", str(bd), "-k", str(k)]) == 0
    )
    np.save(tmp_path / "x.npy", mnist.X_test[:5])
    assert main(["activate", str(bd), str(k), str(tmp_path / "x.npy"), "--target", "7",
                 "-o", str(tmp_path / "xa.npy")]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["predict", str(bd), str(tmp_path / "xa.npy")]) == 0
    assert json.loads(capsys.readouterr().out)["labels"] == [7] * 5
