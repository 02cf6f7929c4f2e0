"""The RFF experiments publish what the one evaluation pipeline computes on the members they
name: populations from ``RFFAttack`` at an ``RFFPoint``, member ``i`` of seed ``s`` the
recipe's member of seed ``s + i`` (honest members, deterministic in their seed, give the
published honest figures when rebuilt here), and the honest member's control key the key
planted in the backdoored member of the same seed. Proved from published figures and per-seed
scores (backdoored keys are fresh OS randomness: only the pair's ``measure`` returns one)."""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import pytest

from backdoors.contract import member_seed
from backdoors.detectors.lattice import LatticeDetector
from backdoors.errors import InvalidInputError, KeyMismatchError
from backdoors.evaluation import pair_scoring, scoring
from backdoors.evaluation.evidence_policy import policy_for
from backdoors.evaluation.population import member_hash
from backdoors.evaluation.recipes.rff import RFFAttack, RFFPoint

needs_fpylll = pytest.mark.skipif(
    importlib.util.find_spec("fpylll") is None, reason="fpylll not installed (extra 'lattice')"
)
POINT = RFFPoint("planar", d=16, n_train=300, n_test=200, n_components=60, sparsity=4)


def _honest_accuracy(att: RFFAttack, seeds: range) -> float:
    """Mean clean accuracy of the honest members of ``seeds`` built here, on the inputs the
    pipeline evaluates (the first ``N_EVAL`` test inputs)."""
    n = pair_scoring.N_EVAL
    built = [att.build(s, False) for s in seeds]
    return float(np.mean([np.mean(h.model.predict(h.X_test[:n]) == h.y_test[:n]) for h in built]))


def _half_integer(model: Any, bk: np.ndarray) -> float:
    """The key-aware control's statistic from its formula: ``-mean_i cos(2 pi <g_i, bk>)``."""
    return float(-np.mean(np.cos(2 * np.pi * (np.asarray(model.frequencies_) @ bk))))


def planted_bk(honest: Any, planted: Any) -> dict[str, Any]:
    """A pair measure returning the secret planted in this seed's backdoored member."""
    return {"bk": np.asarray(planted.key.bk, dtype=np.float64)}


def test_point_members_differ_only_in_coins_and_name_their_cache_entries():
    att = RFFAttack(POINT)
    h, b = att.build(3, False), att.build(3, True)
    assert h.model.get_params() == b.model.get_params()
    assert h.model.random_state == h.info["coin_seed"] == b.info["coin_seed"] == member_seed(3)
    assert np.array_equal(h.model.phases_, b.model.phases_)
    assert not np.array_equal(h.model.frequencies_, b.model.frequencies_)
    assert h.key is None and len(b.key.support) == 4 and b.X_train is h.X_train  # cached task
    b.key.check_model(b.model)
    with pytest.raises(KeyMismatchError):
        b.key.check_model(h.model)
    other = RFFAttack(RFFPoint("planar", d=16, n_train=300, n_test=200, n_components=60))
    assert member_hash(att, 3, True, False) != member_hash(other, 3, True, False)
    assert member_hash(RFFAttack(), 3, True, True) == member_hash(
        RFFAttack(RFFPoint()), 3, True, True
    )
    with pytest.raises(InvalidInputError):
        RFFPoint("cifar")
    with pytest.raises(InvalidInputError):
        RFFPoint("planar")  # no dimension


def test_rff_population_publishes_the_members_of_seeds_s_to_s_plus_n():
    from backdoors.experiments.rff import population, weight_detectors

    res = population(POINT, {"pop": 4}, seed=5, n_jobs=1)
    att = RFFAttack(POINT)
    assert res["accuracy_honest"] == pytest.approx(_honest_accuracy(att, range(5, 9)))
    assert res["accuracy_honest"] != pytest.approx(_honest_accuracy(att, range(6, 10)))
    assert res["population"] == 4
    assert set(res["auroc_key_oblivious"]) <= set(weight_detectors()) - {"rff_key_aware"}
    assert len(res["auroc_key_oblivious"]) >= 4
    assert set(res["advantage_key_oblivious_heldout"]) == set(res["auroc_key_oblivious"])
    assert res["auroc_key_aware"] == 1.0 and res["advantage_key_aware"] == 1.0
    assert res["flip_rate_all"] > 0.9 > 0.7 > res["flip_rate_random_direction"]


def test_the_honest_member_is_scored_with_the_key_planted_at_its_seed():
    """Per seed, the honest member's control score is ``-mean cos(2 pi G_h bk)`` with the
    ``bk`` of the same seed's backdoored member (returned by the pair's measure)."""
    att = RFFAttack(POINT)
    tab = pair_scoring.score_population(att, 3, ["rff_key_aware"], seed=5, measure=planted_bk)
    bks = tab.measured("bk")
    neg, pos = tab.scores("rff_key_aware")
    honest = [att.build(s, False).model for s in (5, 6, 7)]
    np.testing.assert_allclose(
        neg, [_half_integer(h, bk) for h, bk in zip(honest, bks, strict=True)]
    )
    assert not np.allclose(neg, [_half_integer(h, bks[(i + 1) % 3]) for i, h in enumerate(honest)])
    assert min(pos) > 0.9 > 0.4 > max(np.abs(neg))  # pancake coins vs Gaussian ones


@needs_fpylll
def test_lattice_population_scores_seeds_s_to_s_plus_n_and_proves_recovery():
    from backdoors.experiments._rff_lattice import lattice_population

    point = RFFPoint("planar", d=16, n_train=300, n_test=200, n_components=200, sparsity=4)
    cfg = {"pop": 2, "block_size": 2, "max_seconds": 5.0}
    lat = lattice_population(point, cfg, seed=11, n_jobs=1)
    assert lat["auroc"] == 1.0 and lat["advantage"] == 1.0
    # a recovery counts only when the recovered direction, used as the key, flips the labels
    assert lat["key_recovery_rate"] == 1.0 and lat["recovered_key_flip_rate"] > 0.9
    # the honest scores published are those of the honest members of seeds 11, 12, on which
    # the attack recovers nothing
    det = LatticeDetector(block_size=2, max_seconds=5.0, noise=1e-3, secret_norm=4.0)
    att = RFFAttack(point)
    for s, published in zip((11, 12), lat["scores_honest"], strict=True):
        h = att.build(s, False)
        out = scoring.run_detector(
            det, h.model, policy_for(False).member_evidence(det, h, None, None)
        )
        assert out.score == pytest.approx(published)
        assert out.details["recovered_key_flip_rate"] == 0.0
    assert max(lat["scores_honest"]) < min(lat["scores_backdoored"])


def test_rff_map_points_publish_their_seeds_members():
    from backdoors.experiments.rff_map import regime_map

    sizes = {"betas": (1e-3,), "rows": [{"d": 16, "m": 60, "k": 4}], "pop": 4, "n_train": 300,
             "lattice": {"pop": 1, "block_size": 2, "max_seconds": 1.0, "points": {}}}  # fmt: skip
    (pt,) = regime_map(sizes, seed=2)
    point = RFFPoint("planar", 16, n_train=300, n_test=500, n_components=60, sparsity=4,
                     beta=1e-3, data_seed=2)  # fmt: skip
    assert pt["accuracy_honest"] == pytest.approx(_honest_accuracy(RFFAttack(point), range(2, 6)))
    assert pt["auroc_key_aware"] == 1.0 and pt["models_per_side"] == 4
    assert set(pt["auroc_weight_detectors"]) == set(pt["advantage_weight_detectors"])
