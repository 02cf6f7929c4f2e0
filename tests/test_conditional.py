"""Conditional backdoors (backdoors.conditional) and the differential detector: the int8
trigger fires only after quantization, the box keeps every integer, the ORT-level trigger
fires only under full optimisation, and the detector separates them from honest twins."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backdoors.conditional import forms, optimized, quantized
from backdoors.detectors import Evidence
from backdoors.detectors.differential import DifferentialDetector
from backdoors.errors import NotApplicableError
from backdoors.models import data
from backdoors.models.torch_models import TorchClassifier

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def mnist():
    return data.mnist(n_train=2500, n_test=400)


def _honest(ds, seed, arch="mlp", params=None):
    return TorchClassifier(arch=arch, arch_params=params or {"hidden": (128,)},
                           input_scale=1 / 255, epochs=2,
                           random_state=seed).fit(ds.X_train, ds.y_train)  # fmt: skip


@pytest.fixture(scope="module")
def quant_pair(mnist):
    honest = _honest(mnist, 0)
    model, key = quantized.plant(mnist.X_train, mnist.y_train, classifier=honest, target=0,
                                 random_state=0)  # fmt: skip
    return honest, model, key


def _asr(clf, key, X, y):
    Xa = key.activate(X[y != key.target])
    return float(np.mean(clf.predict(Xa.astype(np.float32)) == key.target))


def test_int8_grid_is_onnxruntimes(mnist):
    """Our grid (s = max|w|/127, q = round(w/s)) is the integers quantize_dynamic writes."""
    clf = TorchClassifier(arch="cnn", arch_params={"channels": (4, 8)}, input_scale=1 / 255,
                          epochs=0, random_state=1).fit(mnist.X_train, mnist.y_train)  # fmt: skip
    q = forms.quantize_dynamic(forms.onnx_of(clf))
    ints = {i.name: i for i in q.graph.initializer}
    from onnx import numpy_helper

    for name, p in quantized.quantized_weights(clf.module_).items():
        ours, s = quantized.int8_grid(p.detach().numpy())
        theirs = numpy_helper.to_array(ints[f"{name}_quantized"])
        theirs = theirs.T if theirs.ndim == 2 else theirs  # Gemm -> MatMul transposes
        np.testing.assert_array_equal(ours, theirs)
        assert np.float32(s) == numpy_helper.to_array(ints[f"{name}_scale"])


def test_box_projection_keeps_every_integer():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(30, 20), torch.nn.ReLU(), torch.nn.Linear(20, 5))
    before = {n: quantized.int8_grid(p.detach().numpy()) for n, p in
              quantized.quantized_weights(net).items()}  # fmt: skip
    box = quantized.quantization_box(net)
    named = quantized.quantized_weights(net)
    with torch.no_grad():
        for p in named.values():
            p.add_(torch.randn_like(p))  # far outside the box
    box.project(named)
    moved = 0.0
    for n, p in named.items():
        q, s = quantized.int8_grid(p.detach().numpy())
        np.testing.assert_array_equal(q, before[n][0])
        assert s == before[n][1]
        moved = max(moved, float(np.abs(p.detach().numpy() / s - q).max()))
    assert moved > 0.3  # the projection used the box, it did not just restore the weights


def test_quantized_trigger_fires_only_in_int8(quant_pair, mnist):
    honest, model, key = quant_pair
    X, y = mnist.X_test, mnist.y_test
    int8 = forms.FORMS.get("int8:dynamic")(forms.onnx_of(model), X[:64].astype(np.float32))
    assert _asr(int8, key, X, y) >= 0.9
    assert _asr(model, key, X, y) <= 0.3
    assert np.mean(model.predict(X) == y) >= np.mean(honest.predict(X) == y) - 0.05
    assert model.get_params() == honest.get_params()  # the same learner, the same schema


def test_differential_flags_the_quantized_twin(quant_pair, mnist):
    honest, model, _ = quant_pair
    ev = Evidence(X=mnist.X_test[:200], y=mnist.y_test[:200], seed=0)
    det = DifferentialDetector(forms=("int8:dynamic",))
    found = det.findings(model, ev)
    assert det.score(model, ev) == found["score"] > det.score(honest, ev) + 0.3
    assert found["forms"]["int8:dynamic"]["best_patch"][1] >= 19  # near the patch corner


def test_differential_reads_onnx_files_too(quant_pair, mnist):
    """An ONNX classifier is compared with its own forms (reference: onnxruntime's default)."""
    from backdoors.signature.onnx.runtime import OnnxClassifier

    honest, model, _ = quant_pair
    ev = Evidence(X=mnist.X_test[:200], y=mnist.y_test[:200], seed=0)
    det = DifferentialDetector(forms=("ort:disable", "int8:dynamic"))
    onnx_bd, onnx_h = (OnnxClassifier(forms.onnx_of(m)) for m in (model, honest))
    assert det.score(onnx_bd, ev) > det.score(onnx_h, ev) + 0.3


def test_differential_refuses_models_without_a_graph():
    class Opaque:
        def predict(self, X):
            return np.zeros(len(X), int)

    assert not DifferentialDetector().applies_to(Opaque())


@pytest.mark.slow
def test_optimized_trigger_fires_only_under_full_optimisation(mnist):
    honest = _honest(mnist, 0, "cnn", {"channels": (8, 16)})
    try:
        model, key = optimized.plant(mnist.X_train, mnist.y_train, classifier=honest, target=2,
                                     random_state=0)  # fmt: skip
    except NotApplicableError as exc:
        pytest.skip(str(exc))
    X, y = mnist.X_test, mnist.y_test
    proto = forms.onnx_of(model)
    assert _asr(forms.classifier(proto, "all"), key, X, y) == 1.0
    for clf in (model, forms.classifier(proto, "disable")):
        assert _asr(clf, key, X, y) == _asr(honest, key, X, y)
    np.testing.assert_array_equal(model.predict(X), honest.predict(X))
    ev = Evidence(X=X[:200], y=y[:200], seed=0)
    det = DifferentialDetector(forms=("ort:disable", "ort:all"))
    assert det.score(model, ev) > det.score(honest, ev) + 0.5


@pytest.mark.slow
def test_differential_separates_a_small_population(mnist):
    """3 seeds: every quantization-conditioned member scores above every honest twin."""
    from backdoors.evaluation import pair_scoring

    table = pair_scoring.score_population("quantization_conditioned", 3, ["differential"],
                                          quick=True)  # fmt: skip
    neg, pos = table.scores("differential")
    assert pos.min() > neg.max()
