"""The random-ReLU experiments publish what the one evaluation pipeline computes on the
members they name: member ``i`` of a population scored with seed ``s`` is the recipe's member
of seed ``s + i`` (honest members, deterministic in their seed, have the published scores of
``build(s + i, False)``), the honest member of a seed is scored with the key planted in the
backdoored member of that seed, and the relu-scale populations are disjoint seed blocks.
Everything is proved from published figures and per-seed scores (backdoored keys are fresh OS
randomness, so only the pair's own ``measure`` can return one)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from backdoors import metrics
from backdoors.contract import member_seed
from backdoors.detectors import DETECTORS
from backdoors.detectors.sparse_pca import KEY_OBLIVIOUS
from backdoors.evaluation import pair_scoring, scoring
from backdoors.evaluation.evidence_policy import policy_for
from backdoors.evaluation.recipes.relu import ReLUAttack, ReLUPoint
from backdoors.evaluation.recipes.relu_tasks import ReLUMnistAttack, ReLUWeightsAttack
from backdoors.experiments import relu as relu_exp
from backdoors.experiments import relu_map
from backdoors.experiments import relu_scale as rs

SMALL = ReLUPoint(d=300, m=30, k=15, theta=2.5, n_train=150, n_test=200)


def _nu_variance(model: Any, nu: np.ndarray) -> float:
    """The key-aware control's statistic from its formula: ``(1/m) ||W nu||^2``."""
    return float(np.mean((np.asarray(model.weights_, dtype=np.float64) @ nu) ** 2))


def _direct(name: str, k: int, built: Any) -> float:
    """Detector ``name`` (told ``k``) run on one member, outside any experiment."""
    det = DETECTORS.get(name)(k=k)
    out = scoring.run_detector(
        det, built.model, policy_for(False).member_evidence(det, built, None, None)
    )
    assert out.status == "scored", out.reason
    return out.score


def _direct_auroc(name: str, k: int, att: Any, seeds: range) -> float:
    """AUROC of ``name`` over members built here (both sides must be deterministic)."""
    neg = [_direct(name, k, att.build(s, False)) for s in seeds]
    return metrics.auroc(neg, [_direct(name, k, att.build(s, True)) for s in seeds])


def planted_nu(honest: Any, planted: Any) -> dict[str, Any]:
    """A pair measure returning the secret direction planted in this seed's backdoored member."""
    return {"nu": np.asarray(planted.key.nu, dtype=np.float64)}


def test_relu_population_member_i_has_the_scores_of_seed_s_plus_i():
    pop = relu_map.population(SMALL, 4, seed=5)
    assert pop["seeds"] == [5, 6, 7, 8]
    assert set(pop["scores"]) == {*KEY_OBLIVIOUS, "relu_key_aware", *relu_map.COIN_DETECTORS}
    honest = [ReLUAttack(SMALL).build(s, False) for s in range(5, 9)]
    assert [h.info["coin_seed"] for h in honest] == [member_seed(s) for s in range(5, 9)]
    for name in ("weight_norm", "sphericity", "spectral_bbp"):
        want = [_direct(name, SMALL.k, h) for h in honest]
        np.testing.assert_allclose(pop["scores"][name][0], want, err_msg=name)
    # the published summaries are those of the published scores
    for name, (neg, pos) in pop["scores"].items():
        assert pop["summary"][name]["auroc"] == pytest.approx(metrics.auroc(neg, pos)), name
    neg, pos = pop["scores"]["relu_key_aware"]
    # about 1 honest, 1 + theta backdoored (chi-square spreads: compare the means of 4)
    assert pos.mean() > neg.mean() + 0.75 and pop["summary"]["relu_key_aware"]["auroc"] >= 0.75
    assert len(pop["fb"]) == len(pop["fr"]) == sum(pop["n_margin"]) > 0


def test_the_honest_member_is_scored_with_the_key_planted_at_its_seed():
    """Per seed, the honest member's key-aware score is ``(1/m) ||W_h nu||^2`` with the ``nu``
    of the same seed's backdoored member (returned by the pair's measure), not another seed's."""
    att = ReLUAttack(SMALL)
    det = DETECTORS.get("relu_key_aware")(k=SMALL.k)
    tab = pair_scoring.score_population(att, 3, [det], seed=5, measure=planted_nu)
    nus = tab.measured("nu")
    neg, pos = tab.scores("relu_key_aware")
    honest = [att.build(s, False).model for s in (5, 6, 7)]
    np.testing.assert_allclose(
        neg, [_nu_variance(h, nu) for h, nu in zip(honest, nus, strict=True)]
    )
    other = [_nu_variance(h, nus[(i + 1) % 3]) for i, h in enumerate(honest)]
    assert not np.allclose(neg, other)
    assert pos.mean() > neg.mean() + 0.75  # about 1 + theta vs about 1


def test_sweep_mnist_and_linear_head_publish_their_seeds_members():
    pts = relu_map.sweep([{"d": 200, "m": 20, "k": 10}], [2.0, 6.0], 2, seed=3, n_test=150)
    assert [(p["theta"], p["n_models"]) for p in pts] == [(2.0, 4), (6.0, 4)]
    assert pts[1]["auroc"]["relu_key_aware"] == 1.0
    # MNIST 0 vs 1 and the linear head: the honest accuracy published is that of seeds s, s + 1
    # (no flip-rate comparison: with 2 fresh keys fb < fr in about 1 run of 25;
    # tests/test_relu.py compares them on a larger population)
    rec = relu_exp._mnist_01(2, 11, 1)
    assert rec["n_models"] == 4
    assert set(rec["advantage_key_oblivious"]) == {*KEY_OBLIVIOUS, *relu_map.COIN_DETECTORS}
    mn = [ReLUMnistAttack().build(s, False) for s in (11, 12)]
    n = pair_scoring.N_EVAL
    acc = [np.mean(h.model.predict(h.X_test[:n]) == h.y_test[:n]) for h in mn]
    assert rec["accuracy_honest"] == pytest.approx(np.mean(acc))
    lin = relu_exp._linear_head(2, 20, 1)
    heads = [ReLUAttack(ReLUPoint(head="linear", n_test=600)).build(s, False) for s in (20, 21)]
    acc = [np.mean(h.model.predict(h.X_test[:n]) == h.y_test[:n]) for h in heads]
    assert lin["accuracy_honest"] == pytest.approx(np.mean(acc)) and min(acc) > 0.5
    assert lin["n_models"] == 4  # (its flip rates: 2 fresh keys, too few to compare)


def test_relu_scale_populations_are_disjoint_seed_blocks(monkeypatch):
    """Quick sizes 4 + 6 + 2 + 4 from seed 100: the at-scale population is seeds 100-103, the
    large one 104-109, the SDP point 110-111, the vs-m row 112-115; each published AUROC is
    that of members built here from its block (weights-only members: both sides
    deterministic)."""
    monkeypatch.setattr(rs, "QUICK_SIZES", {"default": 4, "large": 6, "sdp": 2, "vs_m": 4})
    point = {"d": 120, "m": 12, "k": 6, "theta": 2.5}
    out = rs.scale_metrics(point, True, seed=100)
    assert out["n_per_side_at_scale"] == 4 and out["n_per_side_large"] == 6
    assert set(out["advantage"]) == {*rs.STATS, "covariance_thresholding_tuned"}
    assert set(out["auroc_large"]) == set(rs.CHEAP) and out["covariance_thresholding_tuned_t"]
    assert out["sdp_point"]["seeds"] == [110, 111]
    att = ReLUWeightsAttack(120, 12, 6, 2.5)
    for name in ("sphericity", "spectral_bbp", "weight_norm"):
        assert out["auroc_at_scale"][name] == pytest.approx(
            _direct_auroc(name, 6, att, range(100, 104))), name  # fmt: skip
        assert out["auroc_large"][name] == pytest.approx(
            _direct_auroc(name, 6, att, range(104, 110))), name  # fmt: skip
    (row,) = [r for r in out["advantage_vs_m"] if r["m"] == 400]
    wide = ReLUWeightsAttack(120, 400, 6, 2.5)
    assert row["auroc"]["sphericity"] == pytest.approx(
        _direct_auroc("sphericity", 6, wide, range(112, 116)))  # fmt: skip


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
    want = [_direct("weight_norm", 5, att.build(s, False)) for s in (4, 5, 6)]
    np.testing.assert_allclose(tab.scores("weight_norm")[0], want)
    assert np.isnan(tab.accuracies()[0]).all()  # no inputs, no accuracy


def test_population_in_workers_matches_in_process():
    """Honest members are deterministic in their seed: the same honest scores and
    accuracies whether the pairs run in-process or on two joblib workers."""
    one = relu_map.population(SMALL, 2, seed=1, detectors=("weight_norm",))
    two = relu_map.population(SMALL, 2, seed=1, detectors=("weight_norm",), n_jobs=2)
    np.testing.assert_allclose(one["scores"]["weight_norm"][0], two["scores"]["weight_norm"][0])
    np.testing.assert_allclose(one["acc_h"], two["acc_h"])
    assert one["seeds"] == two["seeds"] == [1, 2]
