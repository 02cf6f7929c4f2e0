"""Oblivious local mitigation (GSVV 2024) and the robustness corollary (paper §7)."""

from __future__ import annotations

import numpy as np
import pytest

from backdoors import signature
from backdoors.defenses import oblivious, robust
from backdoors.defenses.smoothing import immunize
from backdoors.errors import InvalidInputError
from backdoors.models import data
from backdoors.models.adapters import CallableClassifier


def test_oblivious_mitigation_removes_a_large_trigger_that_smoothing_keeps():
    task = oblivious.LinearTask(d=20, n_test=400, seed=3)
    bd = oblivious.BoxBackdoor(task.honest, 20, seed=3)
    X, y = task.X_test, task.y_test
    Xa = bd.activate(X)
    wrong = (task.honest(Xa) > 0).astype(int)
    assert np.mean((bd(Xa) > 0) != wrong) == 1.0  # the backdoor works
    mit = oblivious.mitigate(bd, n_curves=9, points_per_curve=4, seed=0)
    assert mit.queries_per_prediction == 36
    assert np.mean(mit.predict(Xa) != wrong) <= 0.01
    assert np.mean(mit.predict(X) == y) >= np.mean((bd(X) > 0) == y) - 0.01
    # exact for an affine model: reconstruction equals the honest score
    assert np.allclose(
        oblivious.mitigate(task.honest).decision_function(X[:50]), task.honest(X[:50])
    )
    hard = CallableClassifier(lambda Z: (bd(Z) > 0).astype(int), classes=np.array([0, 1]))
    assert np.mean(immunize(hard, 0.1, 20).predict(Xa) != wrong) > 0.9
    with pytest.raises(InvalidInputError):
        oblivious.mitigate(bd, points_per_curve=2)


def test_pgd_is_blind_to_the_signature_but_the_key_is_not():
    ds = data.mnist(n_train=600, n_test=60)
    clf = robust.PGDTrainedClassifier(
        arch_params={"hidden": (32,)}, epochs=1, eps=0.1, pgd_steps=2
    ).fit(ds.X_train, ds.y_train)
    bdm, key = signature.plant(clf, carrier="lsb", random_state=1)
    a = robust.pgd_attack_success(clf, ds.X_test, ds.y_test, 0.1, steps=5)
    b = robust.pgd_attack_success(bdm, ds.X_test, ds.y_test, 0.1, steps=5)
    assert a["k"] == b["k"] and np.array_equal(a["X_adv"], b["X_adv"])
    assert np.all(bdm.verify(b["X_adv"]) == -1)
    # the rate counts the inputs the model got right, and only those
    assert a["n"] == int(np.sum(clf.predict(ds.X_test) == ds.y_test))
    assert a["success"] == a["k"] / a["n"] and a["ci"] == b["ci"]
    tg = (bdm.predict(ds.X_test) + 1) % 10
    Xk = signature.activate(ds.X_test, key, target=tg)
    d = np.abs(Xk.astype(int) - ds.X_test.astype(int))
    assert np.all(bdm.predict(Xk) == tg) and d.max() <= 1 and (d > 0).sum(1).max() <= 520
