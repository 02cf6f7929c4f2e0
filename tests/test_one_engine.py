"""One engine: a member's scores do not depend on which caller asked for them.

The ``detectors`` experiment (its table), the RFF/ReLU experiments (``score_population`` with a
``measure``, summarised by ``experiments.rff.summaries``) and ``backdoors audit`` on the same
member, data and seed must give bit-identical scores, with a realistic training set (more rows
than the policy's ``n_train``, so the subset rule matters) and a reference model (so the
disagreement search, which needs one, is scored on every path).
"""

from __future__ import annotations

import numpy as np
import pytest

import population_toys as toys
from backdoors.detectors import DETECTORS
from backdoors.evaluation.audit import audit
from backdoors.evaluation.evidence_policy import (
    QUICK_POLICY,
    EvidencePolicy,
    policy_for,
    reference_seed,
)
from backdoors.evaluation.pair_scoring import score_population
from backdoors.experiments.detectors import run_table
from backdoors.experiments.rff import summaries

N_TRAIN = 2600  # rows per member: more than QUICK_POLICY.n_train
SEED, N = 3, 5
NAMES = ["disagreement_search", "toy_traindata", "toy_weight", "toy_keyaware"]


def _detectors() -> list:
    return [DETECTORS.get("disagreement_search")(budget=400), toys.ToyTrainData(),
            toys.ToyWeight(), toys.ToyKeyAware()]  # fmt: skip


@pytest.fixture(scope="module", params=[True, False], ids=["quick", "full"])
def paths(request):
    """The detectors experiment's record (--quick: with its time budget, so the first seed is
    scored alone) and the RFF experiments' call (in-process here; workers give the same
    scores, tests/test_population.py) on the same seeds."""
    quick = request.param
    att = toys.ToyPatchAttack(n_train=N_TRAIN, poison=0.05)
    rec = run_table([att], _detectors(), quick, SEED, None, n=N, n_jobs=1, timing=False,
                    grow=False)  # fmt: skip
    tab = score_population(att, N, _detectors(), seed=SEED, quick=quick, n_jobs=1,
                           measure=toys.toy_measure)  # fmt: skip
    assert rec["metrics"]["evidence_policy"]["n_train"] == policy_for(quick).n_train
    return att, rec["metrics"], tab, policy_for(quick)


def test_policy_subsets_training_data_and_builds_a_reference_from_another_stream():
    pol = QUICK_POLICY
    assert pol.n_train < N_TRAIN
    X = np.arange(3 * N_TRAIN, dtype=float).reshape(N_TRAIN, 3)
    Xs, ys = pol.train_subset(X, np.arange(N_TRAIN), 7)
    assert len(Xs) == pol.n_train and np.all(np.diff(ys) > 0)
    assert not np.array_equal(ys, np.arange(pol.n_train))  # not the first rows
    np.testing.assert_array_equal(pol.train_subset(X, None, 7)[0], Xs)
    assert not np.array_equal(pol.train_subset(X, None, 8)[0], Xs)
    refs = {reference_seed(s) for s in range(1000)}
    assert len(refs) == 1000 and not refs & set(range(1000))
    assert EvidencePolicy(n_train=None).train_subset(X, None, 7)[0] is X


def test_detectors_experiment_and_rff_path_give_the_same_table(paths):
    _, m, tab, _ = paths
    summ, errors = summaries(tab, NAMES)
    assert errors == {} and set(summ) == set(NAMES)  # disagreement_search applies on both
    for name in NAMES:
        s = summ[name]
        assert m["auroc"][name]["toy_patch"] == s["auroc"]
        assert m["auroc_ci"][name]["toy_patch"] == s["auroc_ci"]
        assert m["tpr_at_5fpr"][name]["toy_patch"] == s["tpr_at_5fpr"]
        assert m["advantage"][name]["toy_patch"] == s["advantage"]
        h = s["advantage_heldout"]
        assert m["advantage_heldout"][name]["toy_patch"] == [h["advantage"], *h["ci"]]
    acc_h, acc_b = tab.accuracies()
    assert m["clean_accuracy_drop"]["toy_patch"] == float(np.mean(acc_h - acc_b))
    succ = [p.attack_success for p in tab.pairs]
    assert m["attack_success"]["toy_patch"] == float(np.mean(succ)) > 0.5


def test_audit_of_a_member_gives_the_engines_scores(paths):
    att, _, tab, pol = paths
    dets = [d for d in _detectors() if "key" not in d.needs]  # an auditor holds no key
    for pair in tab.pairs:
        ref = att.build(reference_seed(pair.seed), False).model
        for side, bd in ((0, False), (1, True)):
            mem = att.build(pair.seed, bd)
            got = audit(mem.model, mem.X_test, mem.y_test, mem.X_train, mem.y_train,
                        reference=ref, seed=mem.seed, detectors=dets,
                        policy=pol)["detectors"]  # fmt: skip
            for det in dets:
                o = pair.outcomes[det.name][side]
                assert got[det.name]["status"] == o["status"] == "scored"
                assert got[det.name]["score"] == o["score"]  # bit-identical
    # the training-data detector saw n_train rows (a random subset in --quick) or all rows
    pos = tab.scores("toy_traindata")[1]
    if pol.n_train is None:  # 130 poisoned rows of 2600 in every backdoored member
        assert np.all(pos == 130 / N_TRAIN)
    else:  # a different random 1000 rows per seed: the poisoned count varies around 50
        assert len(set(pos)) > 1 and np.all(np.abs(pos - 0.05) < 0.025)
