"""The random-ReLU experiments run on the one evaluation pipeline: every detector
score of their populations comes from ``scoring.run_detector`` called by ``pair_scoring``,
member ``i`` of a population scored with seed ``s`` is seed ``s + i``, and the honest member
of a seed is scored with the key of the backdoored member of that seed."""

from __future__ import annotations

import numpy as np
import pytest

from backdoors import metrics
from backdoors.contract import member_seed
from backdoors.detectors import DETECTORS
from backdoors.detectors.sparse_pca import KEY_OBLIVIOUS
from backdoors.evaluation import pair_scoring, scoring
from backdoors.evaluation.recipes.relu import ReLUAttack, ReLUPoint
from backdoors.evaluation.recipes.relu_tasks import ReLUMnistAttack, ReLUWeightsAttack
from backdoors.experiments import relu as relu_exp
from backdoors.experiments import relu_map
from backdoors.experiments import relu_scale as rs

SMALL = ReLUPoint(d=300, m=30, k=15, theta=2.5, n_train=150, n_test=200)


@pytest.fixture
def spy(monkeypatch):
    """Record every member built (recipe, seed, side) and every detector score, and whether
    that score was computed inside ``scoring.run_detector`` called from ``pair_scoring``."""
    # "alive" keeps every built model referenced, so that ``id(model)`` names one member
    log = {"built": [], "scored": [], "outside": [], "keys": [], "alive": []}
    inside = []
    real_run = scoring.run_detector

    def run_detector(det, model, evidence):
        inside.append(det.name)
        try:
            log["keys"].append((det.name, id(model), evidence.key))
            return real_run(det, model, evidence)
        finally:
            inside.pop()

    monkeypatch.setattr(pair_scoring, "run_detector", run_detector)
    for name in {*KEY_OBLIVIOUS, "relu_key_aware", *rs.STATS}:
        cls = DETECTORS.get(name)

        def score(self, model, evidence, _real=cls.score):
            (log["scored"] if inside else log["outside"]).append(self.name)
            return _real(self, model, evidence)

        monkeypatch.setattr(cls, "score", score)
    for cls in (ReLUAttack, ReLUMnistAttack, ReLUWeightsAttack):

        def build(self, seed, backdoored, quick=False, _real=cls.build):
            built = _real(self, seed, backdoored, quick)
            log["alive"].append(built.model)
            log["built"].append((type(self).__name__, seed, backdoored, id(built.model),
                                 built.key))  # fmt: skip
            return built

        monkeypatch.setattr(cls, "build", build)
    return log


def _seeds(log, recipe):
    return sorted({(s, bd) for r, s, bd, _, _ in log["built"] if r == recipe})


def test_relu_population_is_scored_by_the_pipeline_with_seeds_s_to_s_plus_n(spy):
    pop = relu_map.population(SMALL, 4, seed=5)
    assert _seeds(spy, "ReLUAttack") == [(s, bd) for s in range(5, 9) for bd in (False, True)]
    assert pop["seeds"] == [5, 6, 7, 8]
    assert spy["outside"] == []  # no detector is called around run_detector
    n_dets = len(KEY_OBLIVIOUS) + 1
    assert len(spy["scored"]) == 2 * 4 * n_dets
    # the key-aware control gets, for both members of seed s, the backdoored member's key
    key_of = {mid: key for _, _, bd, mid, key in spy["built"]}
    bd_key = {s: key for _, s, bd, _, key in spy["built"] if bd}
    seed_of = {mid: s for _, s, _, mid, _ in spy["built"]}
    aware = [(mid, k) for name, mid, k in spy["keys"] if name == "relu_key_aware"]
    assert len(aware) == 8 and all(k is bd_key[seed_of[mid]] for mid, k in aware)
    assert all(k is None for name, _, k in spy["keys"] if name != "relu_key_aware")
    assert sum(key_of[mid] is None for mid, _ in aware) == 4  # half of them honest
    # the summaries are the pipeline's, computed on the same scores
    neg, pos = pop["scores"]["relu_key_aware"]
    assert pop["summary"]["relu_key_aware"]["auroc"] == metrics.auroc(neg, pos) == 1.0
    adv, held = relu_map.advantages(pop)
    for name, (neg, pos) in pop["scores"].items():
        assert adv[name] == pytest.approx(metrics.advantage(neg, pos)), name
        assert held[name] == pytest.approx(metrics.heldout_advantage(neg, pos)["advantage"])
    # per-pair measures: the flip booleans of every member's margin set
    assert len(pop["fb"]) == len(pop["fr"]) == sum(pop["n_margin"]) > 0


def test_sweep_mnist_and_linear_head_go_through_the_pipeline(spy):
    relu_map.sweep([{"d": 200, "m": 20, "k": 10}], [2.0, 6.0], 2, seed=3, n_test=150)
    assert _seeds(spy, "ReLUAttack") == [(s, bd) for s in (3, 4) for bd in (False, True)]
    rec = relu_exp._mnist_01(2, 11, 1)  # the default point (m = k = 50): the flip is clear
    assert _seeds(spy, "ReLUMnistAttack") == [(s, bd) for s in (11, 12) for bd in (False, True)]
    assert rec["n_models"] == 4
    assert set(rec["advantage_key_oblivious"]) == {*KEY_OBLIVIOUS, *relu_map.COIN_DETECTORS}
    assert rec["flip_rate_backdoor"] > rec["flip_rate_random_direction"]
    spy["built"].clear()
    lin = relu_exp._linear_head(2, 20, 1)
    assert _seeds(spy, "ReLUAttack") == [(s, bd) for s in (20, 21) for bd in (False, True)]
    assert 0 <= lin["flip_rate_random_direction"] <= 1 and lin["accuracy_honest"] > 0.5
    assert spy["outside"] == []


def test_relu_scale_populations_use_disjoint_seed_blocks_through_the_pipeline(spy, monkeypatch):
    sizes = {"default": 4, "large": 6, "sdp": 2, "vs_m": 4}
    monkeypatch.setattr(rs, "QUICK_SIZES", sizes)
    out = rs.scale_metrics({"d": 120, "m": 12, "k": 6, "theta": 2.5}, True, seed=100)
    built = [(s, bd) for r, s, bd, _, _ in spy["built"] if r == "ReLUWeightsAttack"]
    seeds = [s for s, bd in built if not bd]
    assert sorted(seeds) == list(range(100, 116))  # 4 + 6 + 2 + 4 seeds, none reused
    assert sorted(s for s, bd in built if bd) == sorted(seeds)  # both sides of every seed
    assert spy["outside"] == [] and len(spy["scored"]) > 0
    assert out["n_per_side_at_scale"] == 4 and out["n_per_side_large"] == 6
    assert set(out["advantage"]) == {*rs.STATS, "covariance_thresholding_tuned"}
    assert set(out["auroc_large"]) == set(rs.CHEAP) and out["covariance_thresholding_tuned_t"]


def test_weights_only_members_are_reproducible_and_sides_independent():
    att = ReLUWeightsAttack(d=200, m=50, k=5, theta=3.0)
    h, b = att.build(7, False), att.build(7, True)
    assert len(h.X_test) == 0 and h.key is None and b.backdoored and b.seed == h.seed == 7
    assert h.info["coin_seed"] == b.info["coin_seed"] == member_seed(7)  # 128 bits, both sides
    np.testing.assert_array_equal(h.model.weights_, att.build(7, False).model.weights_)
    np.testing.assert_array_equal(b.model.weights_, att.build(7, True).model.weights_)
    assert not np.array_equal(h.model.weights_, att.build(8, False).model.weights_)
    # the two sides of a seed do not share draws (no shifted copies of the honest normals)
    c = np.corrcoef(h.model.weights_.ravel(), b.model.weights_.ravel())[0, 1]
    assert abs(c) < 0.1
    tab = pair_scoring.score_population(att, 3, ["weight_norm"], seed=4)
    assert [p.seed for p in tab.pairs] == [4, 5, 6]
    assert np.isnan(tab.accuracies()[0]).all()  # no inputs, no accuracy


def test_population_in_workers_matches_in_process():
    """Honest members are deterministic in their seed: the same honest scores and
    accuracies whether the pairs run in-process or on two joblib workers."""
    one = relu_map.population(SMALL, 2, seed=1, detectors=("weight_norm",))
    two = relu_map.population(SMALL, 2, seed=1, detectors=("weight_norm",), n_jobs=2)
    np.testing.assert_allclose(one["scores"]["weight_norm"][0], two["scores"]["weight_norm"][0])
    np.testing.assert_allclose(one["acc_h"], two["acc_h"])
    assert one["seeds"] == two["seeds"] == [1, 2]
