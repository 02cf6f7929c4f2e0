"""The planted ONNX file in runtimes other than onnxruntime (small host, few inputs; the
full matrix is ``benchmarks/onnx_runtime_matrix.py``)."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from backdoors import signature  # noqa: E402
from backdoors.experiments.onnx.matrix import check_runtime  # noqa: E402
from backdoors.models import data  # noqa: E402
from backdoors.signature.onnx.export import _uint8_front  # noqa: E402
from backdoors.signature.onnx.plant import plant_spec  # noqa: E402
from onnx_hosts import torch_onnx  # noqa: E402

# Runtimes that cannot run the *fast* verifier profile, and why (docs/onnx.md, "Runtimes");
# the portable profile runs in them (test_portable_profile_runs_in).
KNOWN = {
    "tract": "tract implements no ONNX Loop, and aborts the process on a uint64/int64 MatMul",
    "openvino": "OpenVINO converts no Loop that reads outer values, and its CPU plugin runs "
    "int64/uint64 in 32 bits and float64 as float32 (the verifier's exact arithmetic)",
}


@pytest.fixture(scope="module")
def mnist():
    return data.mnist(n_train=200, n_test=60)


@pytest.fixture(scope="module")
def twins():
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(784, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    host = _uint8_front(torch_onnx(mlp, (784,)))
    key = signature.generate(784, 10, "lsb", random_state=3)
    return host.SerializeToString(), plant_spec(host, key.spec).SerializeToString(), key


@pytest.fixture(scope="module")
def portable_twins(twins):
    host, _, key = twins
    bd = plant_spec(onnx.load_from_string(host), key.spec, profile="portable")
    return host, bd.SerializeToString(), key


def _check(runtime, twins, mnist):
    host, bd, key = twins
    return check_runtime(
        runtime, host, bd, key, lambda X: X, mnist.X_test[:40], 40, 2, np.arange(10),
        np.random.default_rng(0),
    )  # fmt: skip


@pytest.mark.parametrize(
    "runtime", ["onnxruntime", "onnxruntime-no-opt", "onnxruntime-parallel", "reference"]
)
def test_planted_file_portable(runtime, twins, mnist):
    """Loads, clean outputs bit-identical to the honest file in the same runtime, every
    trigger fires, and the accepted inputs of the battery (bit flips, S + L, swapped target,
    random signature, out-of-range target, edge cases) are exactly those PyNaCl accepts.
    (The reference evaluator ran no Loop iteration when the optional ``cond`` was omitted.)"""
    rec = _check(runtime, twins, mnist)
    assert rec["status"] == "pass", rec
    assert rec["triggers_fired"] == rec["triggers"] == 2
    assert rec["verdict_inputs"] >= 20


@pytest.mark.slow
@pytest.mark.parametrize("runtime", sorted(KNOWN))
def test_runtimes_known_not_portable(runtime, twins, mnist):
    """Records what tract and OpenVINO do today: the honest host runs; the planted file
    does not pass (see KNOWN). Fails loudly once they do, so that KNOWN gets updated."""
    rec = _check(runtime, twins, mnist)
    if rec["status"] in ("not installed", "honest host does not load"):
        pytest.skip(f"{runtime}: {rec['status']} ({rec.get('reason')})")
    assert rec["status"] != "pass", f"{runtime} now passes: update KNOWN and the docs"


@pytest.mark.slow
@pytest.mark.parametrize(
    "runtime", ["onnxruntime", "reference", "openvino", "openvino-f32", "tract"]
)
def test_portable_profile_runs_in(runtime, portable_twins, mnist):
    """The portable verifier profile: the planted file loads in OpenVINO (at its default
    precision, bfloat16 on CPUs that have it, too: the backdoor multiplexes the input of the
    host's last layer, so that layer writes the outputs as in the honest file) and in tract,
    clean outputs are bit-identical to the honest file's there, triggers fire and the
    battery's verdicts are PyNaCl's."""
    rec = _check(runtime, portable_twins, mnist)
    if rec["status"] in ("not installed", "honest host does not load"):
        pytest.skip(f"{runtime}: {rec['status']} ({rec.get('reason')})")
    assert rec["status"] == "pass", rec
    assert rec["triggers_fired"] == rec["triggers"] == 2


def test_unknown_verifier_profile_is_refused():
    from backdoors.errors import InvalidInputError
    from backdoors.signature.onnx.plant import VERIFIERS, verifier_for

    assert set(VERIFIERS.names()) == {"fast", "portable"}
    assert getattr(verifier_for("portable"), "takes_row_mask", False)
    with pytest.raises(InvalidInputError, match="verifier profile"):
        verifier_for("nope")


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["openvino", "onnxruntime", "tract"])
def test_portable_float_host_runs_in(runtime, mnist):
    """A float32-input host (pixels / 255) with the portable profile: bit-identical clean
    outputs, triggers and PyNaCl's verdicts also under OpenVINO's default precision (bfloat16
    on CPUs that have it), where the verifier branch checks the pixel grid at bfloat16."""
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(784, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    host = torch_onnx(mlp, (784,))
    key = signature.generate(784, 10, "lsb", random_state=5)
    bd = plant_spec(host, key.spec, input_scale=1 / 255, profile="portable")
    rec = check_runtime(
        runtime, host.SerializeToString(), bd.SerializeToString(), key,
        lambda X: X.astype(np.float32) / np.float32(255), mnist.X_test[:40], 40, 2,
        np.arange(10), np.random.default_rng(0),
    )  # fmt: skip
    if rec["status"] in ("not installed", "honest host does not load"):
        pytest.skip(f"{runtime}: {rec['status']} ({rec.get('reason')})")
    assert rec["status"] == "pass", rec
    assert rec["triggers_fired"] == rec["triggers"] == 2
