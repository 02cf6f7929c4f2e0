"""``check_detector`` on every registered detector, and on broken detectors it must reject."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from backdoors.detectors import DETECTORS, Control, Detector, Evidence, Report
from backdoors.detectors.neural_cleanse import NeuralCleanse
from backdoors.evaluation.conformance import CHECKS, check_detector

#: Controls of more than a few seconds (three Neural Cleanse runs over 10 classes; three
#: activation-clustering runs over 9 configurations).
SLOW = {"neural_cleanse", "activation_clustering"}
#: Controls that need an optional extra.
EXTRAS = {"onnx_graph_inspection": "onnx"}


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in DETECTORS.names()],
)
def test_every_registered_detector_conforms(name):
    if name in EXTRAS:
        pytest.importorskip(EXTRAS[name])
    cls = DETECTORS.get(name)
    result = check_detector(cls)
    assert result["wrong_model"] == "ok"
    if cls.positive_control() is None or cls.no_control:
        assert cls.no_control.strip(), f"{name}: no control and no reason"
    ran = [k for k, v in result.items() if v == "ok"]
    skipped = [k for k, v in result.items() if v.startswith("skipped")]
    assert sorted(ran + skipped) == sorted(CHECKS)
    if cls.positive_control() is not None:
        assert set(CHECKS[:-1]) <= set(ran)


# --- broken detectors the checks must catch ---------------------------------------------------
class _Base(Detector):
    needs = frozenset({"weights"})

    def check_model(self, model: Any) -> None:
        if not hasattr(model, "w"):
            from backdoors.errors import NotApplicableError

            raise NotApplicableError(f"{type(model).__name__} has no w")

    def score(self, model: Any, evidence: Evidence) -> float:
        return float(np.abs(model.w).max())


class _W:
    def __init__(self, w: np.ndarray) -> None:
        self.w = w


def _control() -> Control:
    return Control(_W(np.ones(4)), _W(np.array([1.0, 1, 1, 9])), Evidence(seed=0))


class _Stateful(_Base):
    name = "stateful"

    def __init__(self) -> None:
        self.calls = 0

    def score(self, model: Any, evidence: Evidence) -> Report:
        self.calls += 1  # findings depend on the instance's history
        return Report(float(np.abs(model.w).max()), {"calls": self.calls})


class _Random(_Base):
    name = "random"

    def score(self, model: Any, evidence: Evidence) -> float:
        return float(np.abs(model.w).max()) + np.random.default_rng().random()  # unseeded


class _Mutating(_Base):
    name = "mutating"

    def score(self, model: Any, evidence: Evidence) -> float:
        s = float(np.abs(model.w).max())
        model.w /= 2  # normalises the model in place
        return s


class _ReadsKey(_Base):
    name = "reads_key"

    def score(self, model: Any, evidence: Evidence) -> float:
        return float(np.abs(model.w).max()) + (0.0 if evidence.key is None else len(evidence.key))


class _NamesItself(_Base):
    name = "names_itself"

    def check_model(self, model: Any) -> None:
        from backdoors.errors import NotApplicableError

        if not hasattr(model, "w"):
            raise NotApplicableError("names_itself does not apply")


class _Blind(_Base):
    name = "blind"

    def score(self, model: Any, evidence: Evidence) -> float:
        return 1.0


@pytest.mark.parametrize(
    ("cls", "check"),
    [
        (_Stateful, "stateless"),
        (_Random, "deterministic"),
        (_Mutating, "no_mutation"),
        (_ReadsKey, "scores"),  # the poisoned key raises inside score
        (_NamesItself, "wrong_model"),
        (_Blind, "separates_control"),
    ],
)
def test_check_detector_rejects_broken_detectors(cls, check):
    ctl = _control()
    ctl.evidence.key = "a secret"
    with pytest.raises(AssertionError, match=f"{cls.name}\\): {check}"):
        check_detector(cls(), ctl)
    good = type("Good", (_Base,), {"name": "good"})()
    assert check_detector(good, ctl) == dict.fromkeys(CHECKS, "ok")


def test_neural_cleanse_reads_range_and_classes_from_the_model_and_data():
    """A bare 3-class network on [0, 1] features (no ``classes_``): one trigger norm per
    output class (not 10), the pattern confined to the queries' observed range (not 0..255),
    and the same figures from :func:`run_detector`."""
    from torch import nn

    from backdoors.evaluation.scoring import run_detector

    rng = np.random.default_rng(0)
    X = rng.random((64, 16)).astype(np.float32)
    net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 3))
    det = NeuralCleanse(steps=30)
    found = det.score(net, Evidence(X=X, seed=0))
    lo, hi = found.findings["input_range"]
    assert len(found.findings["norms"]) == 3
    assert (lo, hi) == (pytest.approx(X.min()), pytest.approx(X.max())) and 0.0 < lo < hi < 1.0
    out = run_detector(det, net, Evidence(X=X, seed=0))
    assert out.ok and out.score == found.score and out.details["norms"] == found.findings["norms"]
