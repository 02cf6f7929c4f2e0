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


def test_deployed_view_is_the_int8_model(quant_pair, mnist):
    """The int8 view answers queries with the quantized graph itself and holds its weights
    as int8 values times scales; its torch module differs from the deployed graph only by the
    dynamic quantization of activations."""
    from backdoors.conditional.deployed import deployed_view

    _, model, _ = quant_pair
    X = mnist.X_test
    view = deployed_view(model, "int8:dynamic", X[:64])
    int8 = forms.FORMS.get("int8:dynamic")(forms.onnx_of(model), X[:64].astype(np.float32))
    np.testing.assert_array_equal(view.predict(X), int8.predict(X.astype(np.float32)))
    floats = quantized.quantized_weights(model.module_)
    for name, p in quantized.quantized_weights(view.module_).items():
        q, s = quantized.int8_grid(floats[name].detach().numpy())
        np.testing.assert_allclose(p.detach().numpy(), q.astype(np.float32) * np.float32(s),
                                   rtol=1e-6)  # fmt: skip
    assert sorted(view.dequantized_) == sorted(floats)
    with torch.no_grad():
        z = view.module_(torch.from_numpy(X.astype(np.float32))).numpy()
    assert np.mean(z.argmax(1) == view.predict(X)) >= 0.97
    assert np.mean(model.predict(X) != view.predict(X)) > 0  # not the float model


class _Fixed:
    """A recipe returning the fixture's members (the population engine's path, small data)."""

    name = "fixed_quantized_pair"

    def __init__(self, pair, ds):
        self.pair, self.ds = pair, ds

    def build(self, seed, backdoored, quick=False):
        from backdoors.evaluation.recipes import Built

        honest, model, key = self.pair
        m, k = (model, key) if backdoored else (honest, None)
        info = {"target": key.target, "fires_in": "int8:dynamic"}
        return Built(m, k, backdoored, seed, self.ds.X_test, self.ds.y_test,
                     self.ds.X_train[:500], self.ds.y_train[:500], info=info)  # fmt: skip


def test_population_scores_the_deployed_form(quant_pair, mnist):
    """score_population scores both members' int8 forms by one path: the key-aware control
    sees the trigger only in the planted member's int8 form, the honest twin's int8 form is
    scored too, and weight statistics read different (dequantized) weights."""
    from backdoors.evaluation import pair_scoring
    from backdoors.evaluation.recipes import Attack

    attack = type("FixedAttack", (_Fixed, Attack), {})(quant_pair, mnist)
    dets = ["key_aware", "weight_stats", "strip_model"]
    pair = pair_scoring.score_population(
        attack, 1, dets, quick=True, also_forms=("int8:dynamic", "deployed")
    ).pairs[0]
    alone = pair_scoring.score_population(attack, 1, dets[:1], quick=True, form="int8:dynamic")
    scores = {f: {d: [o["score"] for o in pair.outcomes[d + f]] for d in dets}
              for f in ("", "@int8:dynamic", "@deployed")}  # fmt: skip
    (h_f, b_f), (h_q, b_q) = scores[""]["key_aware"], scores["@int8:dynamic"]["key_aware"]
    assert b_f <= 0.3 and b_q >= 0.9 and h_q <= 0.1 and h_f <= 0.1
    assert [o["score"] for o in alone.pairs[0].outcomes["key_aware"]] == [h_q, b_q]
    assert scores["@deployed"] == scores["@int8:dynamic"]  # the recipe's fires_in form
    for det in ("weight_stats", "strip_model"):  # both sides re-scored on the int8 form
        assert all(o["status"] == "scored" for o in pair.outcomes[det + "@int8:dynamic"])
        assert all(a != b for a, b in zip(scores[""][det], scores["@int8:dynamic"][det],
                                          strict=True))  # fmt: skip
