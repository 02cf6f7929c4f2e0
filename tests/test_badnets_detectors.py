"""BadNets and the classic detectors: the baseline they were built for is caught; the
signature backdoor is only seen by the white-box architecture inspection and the key."""

from __future__ import annotations

import numpy as np
import pytest

from backdoors.detectors import DETECTORS, Evidence
from backdoors.errors import NotApplicableError
from backdoors.evaluation.recipes import ATTACKS


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


def test_weight_stats_flags_badnets(badnets_pair):
    honest, bd = badnets_pair
    det = DETECTORS.get("weight_stats")()
    assert det.score(bd.model, Evidence()).score > det.score(honest.model, Evidence()).score


def test_architecture_inspection_sees_the_verifier_not_the_weights():
    attack = ATTACKS.get("signature")()
    h, b = attack.build(1, False, quick=True), attack.build(1, True, quick=True)
    det = DETECTORS.get("architecture_inspection")()
    assert det.score(b.model, Evidence()).score > det.score(h.model, Evidence()).score
    ka = DETECTORS.get("key_aware")()
    ev = Evidence(X=b.X_test[:100], y=b.y_test[:100], key=b.key)
    assert ka.score(b.model, ev) > ka.score(h.model, ev)


def test_neural_cleanse_short_run_flags_the_badnets_target_class(badnets_pair):
    """The default suite's sibling of the full run below: 60 optimisation steps on 32 inputs
    already single out the target class, and the backdoored twin scores above the honest one."""
    from backdoors.detectors.neural_cleanse import NeuralCleanse

    honest, bd = badnets_pair
    ev = Evidence(X=bd.X_test[:32], seed=0)
    det = NeuralCleanse(steps=60, n_inputs=32)
    found = det.score(bd.model, ev)
    assert found.findings["flagged_class"] == bd.key.target
    assert found.findings["input_range"] == [0.0, 255.0]  # uint8 pixels
    assert found.score > det.score(honest.model, ev).score


@pytest.mark.slow
def test_neural_cleanse_flags_badnets_and_recovers_the_patch_class_and_size(badnets_pair):
    """The reverse-engineered mask for the target class is about the 4x4 patch (16 pixels),
    far below every other class's; the honest twin has no such outlier, and scores lower.
    (The detector's default 200 steps on 64 inputs, once per model.)"""
    honest, bd = badnets_pair
    ev = Evidence(X=bd.X_test[:64], seed=0)
    det = DETECTORS.get("neural_cleanse")()
    found = det.score(bd.model, ev)
    norms, target = np.array(found.findings["norms"]), bd.key.target
    assert found.findings["flagged_class"] == target
    assert found.findings["input_range"] == [0.0, 255.0]  # uint8 pixels
    assert norms[target] < 40 and np.median(norms) / norms[target] > 2.5
    honest_found = det.score(honest.model, ev)
    assert honest_found.findings["variants"]["norm_ratio"] < np.median(norms) / norms[target]
    assert found.score > honest_found.score


@pytest.mark.slow
def test_neural_cleanse_flags_badnets_with_training_data(badnets_pair):
    honest, bd = badnets_pair
    ev = Evidence(
        X=bd.X_test[:200], y=bd.y_test[:200], X_train=bd.X_train[:2000], y_train=bd.y_train[:2000]
    )
    det = DETECTORS.get("neural_cleanse")()
    assert det.score(bd.model, ev).score > det.score(honest.model, ev).score


def test_mntd_scores_a_badnets_member_above_its_honest_twin(badnets_pair):
    """The default suite's sibling of the three-pair run below: a meta-classifier on 8 jumbo
    shadows (random patches) scores the BadNets member (fixed corner patch) above its twin;
    it refuses inputs that are not MNIST images."""
    from backdoors.detectors.mntd import MNTD

    honest, bd = badnets_pair
    det = MNTD(n_shadow=8, epochs=150)
    ev = Evidence(X=honest.X_test[:200])
    assert det.score(bd.model, ev) > det.score(honest.model, ev)
    with pytest.raises(NotApplicableError, match="MNIST uint8"):
        det.check(honest.model, Evidence(X=honest.X_test[:50, :100]))


@pytest.mark.slow
def test_mntd_query_tuning_separates_badnets_without_knowing_the_patch():
    """MNTD's meta-classifier, trained on jumbo shadows (random patches), scores unseen
    BadNets members (fixed corner patch) above their honest twins."""
    from backdoors.detectors.mntd import MNTD

    attack = ATTACKS.get("badnets")()
    det = MNTD(n_shadow=12, epochs=200)
    wins = 0
    for seed in (3, 4, 5):
        h, b = attack.build(seed, False, quick=True), attack.build(seed, True, quick=True)
        ev = Evidence(X=h.X_test[:200])
        wins += det.score(b.model, ev) > det.score(h.model, ev)
    assert wins >= 2
    with pytest.raises(NotApplicableError, match="MNIST uint8"):
        det.check(h.model, Evidence(X=h.X_test[:50, :100]))


def test_detectors_apply_to_binary_margin_models():
    """STRIP and the disagreement search score a binary model with a 1-D decision function."""
    from backdoors import rff
    from backdoors.detectors._access import proba

    rng = np.random.default_rng(0)
    X = rng.random((300, 16))
    y = (X[:, 0] > 0.5).astype(int)
    f = rff.RandomFourierFeaturesClassifier(
        n_components=64, bandwidth=1.0, alpha=1e-3, random_state=0
    ).fit(X, y)
    g = rff.RandomFourierFeaturesClassifier(
        n_components=64, bandwidth=1.0, alpha=1e-3, random_state=1
    ).fit(X, y)
    P = proba(f, X)
    assert P.shape == (300, 2) and np.allclose(P.sum(axis=1), 1.0)
    assert np.array_equal(P.argmax(axis=1), f.predict(X))
    s = DETECTORS.get("strip")().score(f, Evidence(X=X[:50], X_train=X[50:]))
    assert s.shape == (50,) and np.isfinite(s).all()
    d = DETECTORS.get("disagreement_search")().score(f, Evidence(X=X, reference=g))
    assert np.isfinite(d.score)


def test_badnets_plants_in_the_small_cnn_too(mnist_small):
    from backdoors import badnets

    ds = mnist_small
    clf = badnets.default_classifier("cnn", random_state=0, epochs=5)
    model, key = badnets.plant(
        ds.X_train, ds.y_train, target=3, poison_rate=0.1, classifier=clf, random_state=0
    )
    assert key.target == 3 and model.arch == "cnn"
    assert np.mean(model.predict(ds.X_test) == ds.y_test) > 0.75
    keep = ds.y_test != 3
    assert np.mean(model.predict(key.activate(ds.X_test[keep])) == 3) > 0.9
