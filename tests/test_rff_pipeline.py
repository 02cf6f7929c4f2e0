"""The RFF experiments run on the one evaluation pipeline: populations from
``RFFAttack`` at an ``RFFPoint``, member ``i`` of seed ``s`` with seed ``s + i``, every score
in a record computed by ``scoring.run_detector`` inside ``pair_scoring``, and the honest
member's control key the planted key of the same seed."""

from __future__ import annotations

import importlib.util
from collections import defaultdict

import numpy as np
import pytest

from backdoors import metrics
from backdoors.contract import member_seed
from backdoors.errors import InvalidInputError, KeyMismatchError
from backdoors.evaluation import pair_scoring
from backdoors.evaluation.population import member_hash
from backdoors.evaluation.recipes.rff import RFFAttack, RFFPoint

needs_fpylll = pytest.mark.skipif(
    importlib.util.find_spec("fpylll") is None, reason="fpylll not installed (extra 'lattice')"
)
POINT = RFFPoint("planar", d=16, n_train=300, n_test=200, n_components=60, sparsity=4)


@pytest.fixture
def spy(monkeypatch):
    """Every detector call made by pair_scoring: {detector: [(seed, model, key, outcome)]}."""
    calls: dict[str, list] = defaultdict(list)
    real = pair_scoring.run_detector

    def recording(det, model, evidence):
        out = real(det, model, evidence)
        calls[det.name].append((evidence.seed, model, evidence.key, out))
        return out

    monkeypatch.setattr(pair_scoring, "run_detector", recording)
    return calls


def _sides(calls: list, seeds: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(honest, backdoored) scores in seed order; asserts one call per side and seed."""
    by_seed = defaultdict(list)
    for seed, model, _, out in calls:
        assert model.random_state == member_seed(seed)  # member s: the coin seed of s
        by_seed[seed].append(out.score)
    assert sorted(by_seed) == seeds and all(len(v) == 2 for v in by_seed.values())
    return np.array([by_seed[s][0] for s in seeds]), np.array([by_seed[s][1] for s in seeds])


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


def test_rff_population_scores_come_from_run_detector_with_the_same_seed_key(spy):
    from backdoors.experiments.rff import population

    res = population(POINT, {"pop": 4}, seed=5, n_jobs=1)
    seeds = [5, 6, 7, 8]
    scored = [*res["auroc_key_oblivious"], "rff_key_aware"]
    assert len(scored) >= 4
    for name in scored:  # every AUROC of the record is that of the pipeline's scores
        neg, pos = _sides(spy[name], seeds)
        want = (
            res["auroc_key_aware"] if name == "rff_key_aware" else res["auroc_key_oblivious"][name]
        )
        assert metrics.auroc(neg, pos) == pytest.approx(want)
    for name in res["auroc_key_oblivious"]:
        assert np.isfinite(res["advantage_key_oblivious"][name])
        assert name in res["advantage_key_oblivious_heldout"]
    # the control key: both members of seed s get the key planted in the backdoored one
    by_seed = defaultdict(list)
    for seed, model, key, _ in spy["rff_key_aware"]:
        by_seed[seed].append((model, key))
    for seed in seeds:
        (honest, k_h), (planted, k_b) = by_seed[seed]
        assert k_h is k_b
        k_b.check_model(planted)
        with pytest.raises(KeyMismatchError):
            k_h.check_model(honest)
    assert res["auroc_key_aware"] == 1.0 and res["advantage_key_aware"] == 1.0
    assert res["flip_rate_all"] > 0.9 > 0.7 > res["flip_rate_random_direction"]


@needs_fpylll
def test_lattice_population_runs_the_registered_detector_and_proves_recovery(spy):
    from backdoors.experiments._rff_lattice import lattice_population

    point = RFFPoint("planar", d=16, n_train=300, n_test=200, n_components=200, sparsity=4)
    cfg = {"pop": 2, "block_size": 2, "max_seconds": 5.0}
    lat = lattice_population(point, cfg, seed=11, n_jobs=1)
    neg, pos = _sides(spy["lattice"], [11, 12])
    assert lat["scores_honest"] == list(neg) and lat["scores_backdoored"] == list(pos)
    assert lat["auroc"] == 1.0 and lat["advantage"] == 1.0
    # a recovery counts only when the recovered direction, used as the key, flips the labels
    flips = [o.details["recovered_key_flip_rate"] for _, m, _, o in spy["lattice"]]
    assert lat["key_recovery_rate"] == 1.0 and lat["recovered_key_flip_rate"] > 0.9
    assert flips[0] == 0.0 == flips[2] and min(flips[1], flips[3]) > 0.9  # honest: nothing


def test_rff_map_points_are_pipeline_populations(spy):
    from backdoors.experiments.rff_map import regime_map

    sizes = {"betas": (1e-3,), "rows": [{"d": 16, "m": 60, "k": 4}], "pop": 4, "n_train": 300,
             "lattice": {"pop": 1, "block_size": 2, "max_seconds": 1.0, "points": {}}}  # fmt: skip
    (pt,) = regime_map(sizes, seed=2)
    for name, auc in pt["auroc_weight_detectors"].items():
        assert metrics.auroc(*_sides(spy[name], [2, 3, 4, 5])) == pytest.approx(auc)
        assert name in pt["advantage_weight_detectors"]
    assert metrics.auroc(*_sides(spy["rff_key_aware"], [2, 3, 4, 5])) == pt["auroc_key_aware"] == 1
