"""BadNets and the classic detectors: the baseline they were built for is caught; the
signature backdoor is only seen by the white-box architecture inspection and the key."""

from __future__ import annotations

import numpy as np
import pytest

from backdoors.attacks import ATTACKS
from backdoors.detectors import DETECTORS, Evidence


@pytest.fixture(scope="module")
def badnets_pair():
    attack = ATTACKS.get("badnets")()
    return attack.build(0, False, quick=True), attack.build(0, True, quick=True)


def test_badnets_keeps_accuracy_and_triggers(badnets_pair):
    honest, bd = badnets_pair
    acc_h = np.mean(honest.model.predict(honest.X_test) == honest.y_test)
    acc_b = np.mean(bd.model.predict(bd.X_test) == bd.y_test)
    assert acc_h - acc_b < 0.03
    Xa = bd.activate(bd.X_test)
    target = bd.model.predict(Xa[:1])[0]
    keep = bd.y_test != target
    assert np.mean(bd.model.predict(Xa[keep]) == target) > 0.9
    assert np.mean(honest.model.predict(Xa[keep]) == target) < 0.3


def test_neural_cleanse_and_weight_stats_flag_badnets(badnets_pair):
    honest, bd = badnets_pair
    ev = Evidence(
        X=bd.X_test[:200], y=bd.y_test[:200], X_train=bd.X_train[:2000], y_train=bd.y_train[:2000]
    )
    for name in ("neural_cleanse", "weight_stats"):
        det = DETECTORS.get(name)()
        assert det.score(bd.model, ev) > det.score(honest.model, ev), name


def test_architecture_inspection_sees_the_verifier_not_the_weights():
    attack = ATTACKS.get("signature")()
    h, b = attack.build(1, False, quick=True), attack.build(1, True, quick=True)
    det = DETECTORS.get("architecture_inspection")()
    assert det.score(b.model, Evidence()) > det.score(h.model, Evidence())
    ka = DETECTORS.get("key_aware")()
    ev = Evidence(X=b.X_test[:100], y=b.y_test[:100], key=b.key)
    assert ka.score(b.model, ev) > ka.score(h.model, ev)
