"""BKZ 2.0 in the lattice detector (detectors/_bkz.py): progressive reduction with pruning,
strategy lookup and its computed fallback, the CPU budget."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from backdoors import rff
from backdoors.detectors import Evidence, _bkz
from backdoors.detectors.lattice import RECOVERED, LatticeDetector, lattice_attack
from backdoors.rff.lattice_cost import best_rows, required_block_size, usvp_margin

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("fpylll") is None, reason="fpylll not installed (extra 'lattice')"
)


def _instance(d: int = 24, k: int = 8, beta: float = 0.02, m: int = 300, seed: int = 0):
    """Planted frequencies where LLL is not enough: the estimate says BKZ-25."""
    key = rff.generate(d, k, beta=beta, random_state=seed)
    return key, key.coins.sample(m, d, np.random.default_rng(seed + 10))


@pytest.fixture
def no_strategy_file(monkeypatch, tmp_path):
    """No strategy file anywhere (as on a machine without fplll's data package)."""
    monkeypatch.setattr(_bkz, "strategy_candidates", lambda: [tmp_path / "missing.json"])


def test_bkz2_recovers_a_key_lll_alone_misses(no_strategy_file):
    key, G = _instance()
    res = lattice_attack(G, block_size=30, max_seconds=60.0, noise=0.02, secret_norm=key.gamma)
    assert res.strategies.startswith("computed")  # the fallback, not a file
    assert res.log[0]["block"] == 2 and res.log[0]["score"] < RECOVERED  # LLL's basis: no key
    assert res.recovered and res.stopped == "recovered"
    assert res.reached_block >= 20 and res.tours >= 1
    err = min(np.linalg.norm(res.direction - key.bk), np.linalg.norm(res.direction + key.bk))
    assert err < 0.05 * key.gamma


def test_computed_strategies_are_pruned_and_preprocessed():
    s = _bkz.computed_strategy(50)
    assert s.block_size == 50 and list(s.preprocessing_block_sizes) == [30]
    (p,) = s.pruning_parameters
    c = np.array(p.coefficients)
    assert len(c) == 50 and c[0] == pytest.approx(1.0)
    assert np.all(np.diff(c) <= 1e-12) and 0 < c[-1] < 1  # pruned: bounds shrink with depth
    assert 0 < p.expectation <= 1
    (exact,) = _bkz.computed_strategy(10).pruning_parameters  # small blocks: no pruning
    assert list(exact.coefficients) == [1.0] * 10


def test_strategy_file_is_looked_up_from_the_environment(monkeypatch, tmp_path):
    from fpylll.fplll.bkz_param import dump_strategies_json

    path = tmp_path / "ours.json"
    dump_strategies_json(str(path).encode(), [_bkz.computed_strategy(b) for b in range(31)])
    monkeypatch.setenv(_bkz.STRATEGY_ENV, str(path))
    assert _bkz.find_strategy_file() == path
    loaded = _bkz.strategies(30, path)
    assert [s.block_size for s in loaded] == list(range(31))
    assert list(loaded[25].pruning_parameters[0].coefficients) == pytest.approx(
        list(_bkz.computed_strategy(25).pruning_parameters[0].coefficients)
    )
    key, G = _instance(seed=1)
    res = lattice_attack(G, block_size=20, max_seconds=60.0, noise=0.02, secret_norm=key.gamma)
    assert str(path) in res.strategies and res.tours >= 1 and res.reached_block == 20


def test_budget_stops_the_progression_and_the_report_says_so():
    """Honest frequencies (nothing to find) and a noise level at which the estimate predicts no
    block size wins (so the schedule runs to BKZ-60): a 0.5 CPU s budget ends it early; a zero
    budget runs no BKZ tour at all."""
    X = np.random.default_rng(0).standard_normal((400, 24))
    y = (X[:, 0] > 0).astype(int)
    h = rff.RandomFourierFeaturesClassifier(n_components=300, random_state=0).fit(X, y)
    det = LatticeDetector(block_size=60, max_seconds=0.5, noise=0.1, secret_norm=4.0)
    found = det.score(h, Evidence(seed=0)).findings
    assert not found["recovered"] and found["stopped"] == "budget"
    assert found["max_cpu_seconds"] == 0.5 and found["max_block"] == 60
    assert 2 <= found["reached_block"] < 60 and found["cpu_seconds"] > 0
    # the block size reported is the last one a finished tour used (as logged)
    res = lattice_attack(h.frequencies_, block_size=60, max_seconds=0.5, noise=0.1,
                         secret_norm=4.0)  # fmt: skip
    assert res.stopped == "budget" and res.reached_block == max(e["block"] for e in res.log)
    none = LatticeDetector(block_size=60, max_seconds=0.0, noise=0.1, secret_norm=4.0)
    found = none.score(h, Evidence(seed=0)).findings
    assert found["stopped"] == "budget" and found["tours"] == 0 and found["reached_block"] == 2


def test_progression_ends_past_the_estimate_without_the_clock():
    """Where the uSVP estimate says a small block wins, the schedule stops BEYOND_ESTIMATE past
    it on its own: an honest model gets the same findings on any machine."""
    from backdoors.detectors.lattice import BEYOND_ESTIMATE

    X = np.random.default_rng(0).standard_normal((400, 24))
    y = (X[:, 0] > 0).astype(int)
    h = rff.RandomFourierFeaturesClassifier(n_components=300, random_state=0).fit(X, y)
    res = lattice_attack(h.frequencies_, noise=0.02, secret_norm=4.0, max_seconds=600.0)
    assert not res.recovered and res.stopped == "schedule"
    assert res.reached_block <= 2 + BEYOND_ESTIMATE < res.block_size


def test_schedule_is_progressive_and_ends_at_the_cap():
    assert _bkz.schedule(30) == [20, 25, 30]
    s = _bkz.schedule(61)
    assert s[0] == 20 and s[-1] == 61 and all(np.diff(s) > 0)


@pytest.mark.parametrize("d", [64, 80, 96])
def test_rows_sit_inside_the_predicted_winning_range(d):
    gamma, beta = 16.0, 1e-3
    est = required_block_size(d, 399, gamma, beta)
    n = best_rows(d, 399, gamma, beta)
    assert est.block_size is not None and n is not None
    assert usvp_margin(d, n, gamma, beta, est.block_size) >= 0
    assert usvp_margin(d, n, gamma, beta, est.block_size) >= usvp_margin(
        d, est.rows, gamma, beta, est.block_size
    )


def test_boundary_record_merges_repeated_d_and_measures_the_edge():
    """Tiny boundary run through the experiment's function: d = 16 twice (seeds 0, 1 merged
    into one point) and d = 20; every key is recovered and proven by activation."""
    from backdoors.experiments._rff_lattice import boundary_record

    cfg = {"points": [(16, 1, 20.0), (20, 1, 20.0), (16, 1, 20.0)], "k": 4, "beta": 1e-3,
           "m": 200, "n_train": 300, "block_size": 30}  # fmt: skip
    out = boundary_record(cfg, seed=3)
    p16, p20 = out["points"]
    assert (p16["d"], p16["models"], p20["models"]) == (16, 2, 1)
    assert [r["seed"] for r in p16["runs"]] == [3, 4]
    assert p16["keys_recovered"] == 2 and p20["keys_recovered"] == 1
    assert all(r["recovered_key_flip_rate"] >= 0.9 for r in p16["runs"] + p20["runs"])
    assert out["measured_boundary_d"] == 20
    assert p20["estimate_primal_block_size"] is not None
    # records of separate processes (one model each) join into the same point; a run that
    # appears twice counts once
    from backdoors.experiments._rff_lattice import merge_points, point_summary

    one = {"metrics": {"points": [point_summary(16, 4, 1e-3, 200, p16["runs"][:1]), p20]}}
    two = {"metrics": {"points": [point_summary(16, 4, 1e-3, 200, p16["runs"][1:]), p20]}}
    merged = merge_points([two, one])
    assert merged["points"] == out["points"]
    assert merged["measured_boundary_d"] == 20


def test_a_reduction_is_charged_only_its_own_cpu_time():
    """CPU spent before a reduction (``stats``, e.g. the LLL step) is not taken from the
    reduction's own budget a second time: with 100 s already spent and a 50 s budget, the
    progressive reduction still runs its tours."""
    from backdoors.detectors.lattice import embedding_basis

    key, G = _instance()
    B = embedding_basis(G[:80], 2 * key.gamma / 0.02, 16)
    rows = [[int(v) for v in r] for r in B.tolist()]
    stats = {"cpu_seconds": 100.0}
    step = {"kind": "bkz", "schedule": [20], "tours": 1, "max_time": 50.0, "strategy_file": None}
    _bkz.isolated_reduction(rows, step, stats=stats)
    assert stats["tours"] == 1 and stats["reached_block"] == 20 and stats["cpu_seconds"] > 100
