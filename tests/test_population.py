"""Populations: seeds, joblib / Dask parity, the content-hash cache, and the detectors table."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

import population_toys as toys
from backdoors import metrics
from backdoors.errors import InvalidInputError
from backdoors.evaluation import population
from backdoors.evaluation.population import build_population, member_hash
from backdoors.experiments.detectors import run_table

pytestmark = pytest.mark.usefixtures("toy_key_kind")


def _preds(pop):
    X = pop.honest[0].X_test
    return [m.model.predict(X) for m in pop.members()]


def test_members_pair_by_seed_and_backdoor_works():
    pop = build_population(toys.ToyPatchAttack(), 3, seed=7)
    assert [m.seed for m in pop.honest] == [7, 8, 9] == [m.seed for m in pop.backdoored]
    assert all(not m.backdoored and m.key is None for m in pop.honest)
    assert all(m.backdoored and m.key is not None for m in pop.backdoored)
    assert pop.n_built == 6 and pop.n_cached == 0
    h, b = pop.honest[0], pop.backdoored[0]
    Xa = b.activate(h.X_test)
    assert np.mean(b.model.predict(Xa) == 1) > 0.95 > np.mean(h.model.predict(Xa) == 1)
    # one copy of the shared test set in memory
    assert all(m.X_test is h.X_test for m in pop.members())


def test_cache_rerun_builds_nothing_and_fills_gaps(tmp_path):
    cache = tmp_path / "cache"
    first = build_population(toys.ToyPatchAttack(), 3, cache_dir=cache)
    toys.BUILD_CALLS.clear()
    again = build_population(toys.ToyPatchAttack(), 3, cache_dir=cache)
    assert again.n_built == 0 and again.n_cached == 6 and toys.BUILD_CALLS == []
    for a, b in zip(_preds(first), _preds(again), strict=True):
        np.testing.assert_array_equal(a, b)
    for m0, m1 in zip(first.members(), again.members(), strict=True):
        assert m0.key == m1.key and m0.seed == m1.seed and m0.backdoored == m1.backdoored
        np.testing.assert_array_equal(m0.X_train, m1.X_train)
        # the cached member keeps the build time measured when it was built
        assert m1.info["target"] == 1 and m1.info["build_seconds"] == m0.info["build_seconds"]
        if m0.backdoored:
            X = m0.X_test
            np.testing.assert_array_equal(
                m0.info["clean_model"].predict(X), m1.info["clean_model"].predict(X)
            )
    # only safetensors / skops / JSON on disk, keys 0600, the shared test set stored once
    files = [p for p in cache.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} == {".safetensors", ".skops", ".json"}
    keys = [p for p in files if p.name == "key.json"]
    assert len(keys) == 3 and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in keys)
    n_arrays = len(list((cache / "arrays").iterdir()))
    assert n_arrays == 2 + 2 * 6  # X_test, y_test shared; X_train, y_train per member
    # a larger request builds only the missing seeds; other params are other entries
    more = build_population(toys.ToyPatchAttack(), 5, cache_dir=cache)
    assert (more.n_built, more.n_cached) == (4, 6)
    other = build_population(toys.ToyPatchAttack(poison=0.3), 1, cache_dir=cache)
    assert other.n_built == 2
    assert member_hash(toys.ToyPatchAttack(), 0, True, False) != member_hash(
        toys.ToyPatchAttack(), 0, False, False
    )


def test_corrupt_cache_entry_is_rebuilt(tmp_path):
    build_population(toys.ToyPatchAttack(), 2, cache_dir=tmp_path)
    h = member_hash(toys.ToyPatchAttack(), 1, True, False)
    model = tmp_path / "members" / h / "model.skops"
    model.write_bytes(model.read_bytes()[:50])
    again = build_population(toys.ToyPatchAttack(), 2, cache_dir=tmp_path)
    assert (again.n_built, again.n_cached) == (1, 3)
    assert again.backdoored[1].model.predict(again.backdoored[1].X_test).shape == (200,)


def test_uncacheable_models_are_built_and_reported(tmp_path):
    pop = build_population(toys.ToyPlainAttack(), 2, cache_dir=tmp_path)
    again = build_population(toys.ToyPlainAttack(), 2, cache_dir=tmp_path)
    assert again.n_built == 4 and len(again.uncached) == 4
    assert "PlainModel has no artifact format" in pop.uncached[0]


def test_joblib_workers_and_dask_cluster_give_the_same_models(tmp_path):
    """Also the default suite's sibling of the worker-process cluster test below: the same
    members and the same scores on an in-process Dask cluster."""
    from distributed import LocalCluster

    from backdoors.evaluation.pair_scoring import score_population

    seq = build_population(toys.ToyPatchAttack(), 2)
    dets = [toys.ToyWeight(), toys.ToyKeyAware()]
    ref = score_population(toys.ToyPatchAttack(), 3, dets)
    par = build_population(toys.ToyPatchAttack(), 2, n_jobs=2)
    with LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        dsk = build_population(
            toys.ToyPatchAttack(), 2, scheduler=cluster.scheduler_address, cache_dir=tmp_path
        )
        tab = score_population(toys.ToyPatchAttack(), 3, dets, scheduler=cluster.scheduler_address)
        toys.BUILD_CALLS.clear()
        cached = build_population(
            toys.ToyPatchAttack(), 2, scheduler=cluster.scheduler_address, cache_dir=tmp_path
        )
    assert dsk.n_built == 4 and cached.n_built == 0 and toys.BUILD_CALLS == []
    for pop in (par, dsk, cached):
        assert [m.seed for m in pop.members()] == [m.seed for m in seq.members()]
        for a, b in zip(_preds(seq), _preds(pop), strict=True):
            np.testing.assert_array_equal(a, b)
    assert [p.seed for p in tab.pairs] == [0, 1, 2]
    for d in ("toy_weight", "toy_keyaware"):
        for x, y in zip(ref.scores(d), tab.scores(d), strict=True):
            np.testing.assert_array_equal(x, y)


def test_bad_arguments():
    with pytest.raises(InvalidInputError):
        build_population(toys.ToyPatchAttack(), 0)
    with pytest.raises(InvalidInputError, match="unknown attack"):
        build_population("no-such-attack", 1)
    with pytest.raises(InvalidInputError):
        population.build_populations([toys.ToyPatchAttack(), toys.ToyPatchAttack()], 1)


def test_detectors_table_on_toys(tmp_path):
    attacks = [toys.ToyPatchAttack(), toys.ToyNullAttack()]
    dets = [cls() for cls in toys.TOY_DETECTORS]
    rec = run_table(attacks, dets, True, 0, tmp_path, n=6, n_jobs=1, timing=False, budget=None)
    m = rec["metrics"]
    # positive control and the detectors that see the toy trigger separate the populations
    assert m["auroc"]["toy_keyaware"]["toy_patch"] >= 0.99
    assert m["auroc"]["toy_weight"]["toy_patch"] >= 0.99
    assert m["auroc"]["toy_traindata"]["toy_patch"] >= 0.99
    assert m["detector_levels"]["toy_filter"] == "input"
    # a detector's variant (findings["variants"]) is its own row, derived without re-scoring
    neg = m["auroc"]["toy_weight_negated"]["toy_patch"]
    assert neg == pytest.approx(1 - m["auroc"]["toy_weight"]["toy_patch"])
    assert m["detector_levels"]["toy_weight_negated"] == "model"
    assert m["auroc"]["toy_filter"]["toy_patch"] >= 0.99  # clean vs activated inputs
    assert m["tpr_at_5fpr"]["toy_weight"]["toy_patch"] >= 0.9
    # on the null attack nothing separates: identical models. Scores that vary across seeds
    # give a wide bootstrap CI strictly around 0.5 (6 vs 6 pin nothing); tied scores, [0.5, 0.5]
    for d in ("toy_weight", "toy_traindata"):
        assert m["auroc"][d]["toy_null"] == 0.5
    lo, hi = m["auroc_ci"]["toy_weight"]["toy_null"]
    assert lo < 0.5 < hi and hi - lo > 0.3
    assert m["auroc_ci"]["toy_traindata"]["toy_null"] == [0.5, 0.5]
    # perfectly separated populations: every bootstrap resample is separated too
    assert m["auroc_ci"]["toy_keyaware"]["toy_patch"] == [1.0, 1.0]
    assert m["not_scored"]["toy_broken"]["toy_patch"].startswith("error: RuntimeError")
    assert m["attack_success"]["toy_patch"] > 0.8 > m["attack_success"]["toy_null"]
    assert abs(m["clean_accuracy_drop"]["toy_patch"]) < 0.1
    assert m["population_sizes"]["toy_patch"] == [6, 6]
    # the distinguishing advantage: ~1 for the positive control, 0 on identical populations
    assert m["advantage"]["toy_keyaware"]["toy_patch"] >= 0.99
    assert m["advantage"]["toy_weight"]["toy_null"] == 0.0
    assert m["advantage_heldout"]["toy_keyaware"]["toy_patch"] == [1.0, 1.0, 1.0]
    adv, lo, hi = m["advantage_heldout"]["toy_weight"]["toy_null"]
    assert adv == lo == hi == 0.0  # identical models: no threshold separates the held-out half
    plots = rec["artifacts"]["plots"]
    assert any(p.endswith("auroc_heatmap.png") for p in plots)
    assert all(Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in plots)
    text = (tmp_path / "report.md").read_text()
    assert "| `toy_weight` (model) |" in text and "toy_null" in text
    assert json.loads(json.dumps(rec))["metrics"] == rec["metrics"]  # plain JSON types only


def test_detectors_table_scores_cached_members_without_rebuilding(tmp_path):
    """With a cache the experiment fills it first, then the scoring workers load the members:
    a rerun builds nothing and reports the same table."""
    dets = [toys.ToyWeight(), toys.ToyKeyAware(), toys.ToyInputFilter()]
    kw = dict(n=3, n_jobs=1, timing=False, cache_dir=tmp_path)
    first = run_table([toys.ToyPatchAttack()], dets, True, 0, None, **kw)
    toys.BUILD_CALLS.clear()
    again = run_table([toys.ToyPatchAttack()], dets, True, 0, None, **kw)
    assert toys.BUILD_CALLS == []
    assert first["params"]["cached_members"] == {"toy_patch": 0}
    assert again["params"]["cached_members"] == {"toy_patch": 6}
    for k in ("auroc", "auroc_ci", "attack_success", "not_scored"):
        assert again["metrics"][k] == first["metrics"][k]
    assert again["metrics"]["auroc"]["toy_weight"]["toy_patch"] == 1.0


def test_parallel_scoring_matches_in_process_scoring():
    from backdoors.evaluation.detection_table import pair_results
    from backdoors.evaluation.pair_scoring import score_population

    dets = [toys.ToyWeight(), toys.ToyKeyAware(), toys.ToyBroken()]
    one, two = (
        {(r.detector, r.attack): r for r in pair_results(
            score_population(toys.ToyPatchAttack(), 5, dets, n_jobs=n_jobs), dets)}
        for n_jobs in (1, 2)
    )  # fmt: skip
    assert one.keys() == two.keys()
    for k in one:
        assert one[k].status == two[k].status
        np.testing.assert_array_equal(one[k].neg, two[k].neg)
        np.testing.assert_array_equal(one[k].pos, two[k].pos)
    seeds = [(d["seed"], d["backdoored"]) for d in two[("toy_weight", "toy_patch")].details]
    assert seeds == [(s, bd) for s in range(5) for bd in (False, True)]
    assert two[("toy_broken", "toy_patch")].status == "error"


def test_quick_budget_skips_slow_detectors():
    import time

    class Slow(toys.ToyWeight):
        name = "toy_slow"

        def score(self, model, evidence):  # 0.4 CPU s (budgets count CPU, not wall time)
            t0 = time.process_time()
            while time.process_time() - t0 < 0.4:
                pass
            return super().score(model, evidence)

    rec = run_table(
        [toys.ToyPatchAttack()],
        [Slow(), toys.ToyWeight()],
        True,
        0,
        None,
        n=3,
        n_jobs=1,
        timing=False,
        budget=0.0,
    )
    m = rec["metrics"]
    assert m["not_scored"]["toy_slow"]["toy_patch"].startswith("skipped")  # 6 x 0.4 s > 2 s
    assert "toy_patch" in m["auroc"]["toy_weight"]  # cheap detectors always get their 2 s


def test_scoring_in_workers_gives_the_scores_of_whole_members():
    """One job per seed, models scored where they are built: the same numbers as scoring
    whole members built in the parent under the same policy, and only small records come
    back."""
    from backdoors.evaluation.evidence_policy import DEFAULT_POLICY
    from backdoors.evaluation.pair_scoring import PairScores, score_population
    from backdoors.evaluation.scoring import run_detector

    dets = [toys.ToyWeight(), toys.ToyKeyAware(), toys.ToyBroken()]
    pop = population.build_population(toys.ToyPatchAttack(), 4)
    keys = [b.key for b in pop.backdoored]
    ref = {
        (d.name, side): np.array([
            run_detector(d, m.model, DEFAULT_POLICY.member_evidence(d, m, k, None)).score
            for m, k in zip(getattr(pop, side), keys, strict=True)
        ])
        for d in dets[:2] for side in ("honest", "backdoored")
    }  # fmt: skip
    for n_jobs in (1, 2):
        tab = score_population(toys.ToyPatchAttack(), 4, dets, n_jobs=n_jobs)
        assert [p.seed for p in tab.pairs] == [0, 1, 2, 3]
        assert all(type(p) is PairScores for p in tab.pairs)
        for d in ("toy_weight", "toy_keyaware"):
            neg, pos = tab.scores(d)
            np.testing.assert_array_equal(neg, ref[(d, "honest")])
            np.testing.assert_array_equal(pos, ref[(d, "backdoored")])
        auc = metrics.auroc(ref[("toy_keyaware", "honest")], ref[("toy_keyaware", "backdoored")])
        assert tab.summary("toy_keyaware")["auroc"] == auc
        assert tab.summary("toy_broken")["status"] == "not_scored"
        assert tab.pairs[0].attack_success > 0.8 and tab.pairs[0].accuracy[0] > 0.8
    with pytest.raises(InvalidInputError, match="scores inputs"):
        score_population(toys.ToyPatchAttack(), 2, [toys.ToyInputFilter()])


def test_pair_measures_run_in_the_workers_and_come_back_in_seed_order():
    """An experiment's per-pair figures (``measure``) are computed next to the scores."""
    from backdoors.evaluation.pair_scoring import score_population

    for n_jobs in (1, 2):
        tab = score_population(
            toys.ToyPatchAttack(), 3, [toys.ToyWeight()], seed=5, n_jobs=n_jobs,
            measure=toys.toy_measure,
        )  # fmt: skip
        assert tab.measured("seed") == [5, 6, 7]
        dis = np.array(tab.measured("disagreement"))
        assert np.all((dis >= 0) & (dis < 0.5))  # same data, a patch backdoor: mostly agree
        h, b = tab.accuracies()
        assert h.shape == b.shape == (3,) and np.all(h > 0.8)


@pytest.mark.slow  # two worker processes start; the in-process cluster test above is its sibling
def test_dask_cluster_of_worker_processes_gives_the_same_results(tmp_path):
    """The same population commands on a Dask cluster of two separate worker processes."""
    from distributed import Client, LocalCluster

    from backdoors.evaluation.pair_scoring import score_population

    seq = build_population(toys.ToyPatchAttack(), 2)
    dets = [toys.ToyWeight(), toys.ToyKeyAware()]
    ref = score_population(toys.ToyPatchAttack(), 3, dets)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        pids = set(client.run(os.getpid).values())
        dsk = build_population(toys.ToyPatchAttack(), 2, scheduler=client, cache_dir=tmp_path)
        tab = score_population(toys.ToyPatchAttack(), 3, dets, scheduler=cluster.scheduler_address)
    assert len(pids) == 2 and os.getpid() not in pids
    for a, b in zip(_preds(seq), _preds(dsk), strict=True):
        np.testing.assert_array_equal(a, b)
    for d in ("toy_weight", "toy_keyaware"):
        for x, y in zip(ref.scores(d), tab.scores(d), strict=True):
            np.testing.assert_array_equal(x, y)


@pytest.mark.slow
def test_speedup_reports_ratios():
    from backdoors.evaluation.parallel_speed import speedup

    sp = speedup(toys.ToyPatchAttack(n_train=3000), n=4, reps=1, detectors=[toys.ToyWeight()])
    med = sp["median_seconds"]
    assert set(med) == {"joblib_1", "joblib_2", "dask"} and sp["members"] == 8
    assert sp["population_speedup"] == pytest.approx(med["joblib_1"] / med["joblib_2"])
    assert sp["dask_speedup"] == pytest.approx(med["joblib_1"] / med["dask"])


def test_population_cli_builds_then_reuses_cache(tmp_path, monkeypatch, capsys):
    from backdoors.cli import main

    toys.install(monkeypatch)
    argv = ["population", "toy_patch", "--n", "2", "--cache", str(tmp_path / "c")]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(argv) == 0
    second = json.loads(capsys.readouterr().out)
    assert (first["built"], second["built"], second["from_cache"]) == (4, 0, 4)
    assert second["honest_accuracy"] == first["honest_accuracy"] > 0.9
    assert main(["population", "nope"]) == 2


@pytest.mark.slow  # ~5 s idle, up to a minute on the loaded shared machine
def test_real_signature_members_round_trip_through_the_cache(tmp_path):
    """A wrapper model with a model-valued info entry, loaded in a fresh interpreter (where
    nothing has imported the wrapper's module yet)."""
    import subprocess
    import sys

    pytest.importorskip("backdoors.evaluation.recipes.signature")
    pop = build_population("signature", 1, quick=True, cache_dir=tmp_path)
    b = pop.backdoored[0]
    X = b.X_test[:20]
    np.save(tmp_path / "x.npy", b.activate(X, target=3))
    code = (
        "import sys, numpy as np; "
        "from backdoors.evaluation.population import build_population as bp;"
        f"p = bp('signature', 1, quick=True, cache_dir={str(tmp_path)!r});"
        f"x = np.load({str(tmp_path / 'x.npy')!r});"
        "print(p.n_built, p.n_cached, int((p.backdoored[0].model.predict(x) == 3).sum()),"
        " type(p.backdoored[0].info['honest']).__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "2", "20", "TorchClassifier"]


def test_claims_follow_the_figures():
    from backdoors.experiments.detectors_report import claims

    m = {
        "auroc": {
            "a": {"badnets": 0.95, "signature": 0.52},
            "b": {"badnets": 0.91, "signature": 0.70},
            "key_aware": {"badnets": 1.0, "signature": 1.0},
            "architecture_inspection": {"signature": 1.0},
        },
        "auroc_ci": {
            "a": {"badnets": [0.9, 1.0], "signature": [0.4, 0.6]},
            "b": {"badnets": [0.8, 1.0], "signature": [0.55, 0.85]},
            "key_aware": {"badnets": [1.0, 1.0], "signature": [1.0, 1.0]},
            "architecture_inspection": {"signature": [1.0, 1.0]},
        },
        "population_sizes": {"badnets": [20, 20], "signature": [20, 20]},
        "badnets_clean_accuracy_drop": 0.004,
        "badnets_attack_success": 0.97,
    }
    c = claims(m)
    assert c["badnets_two_detectors_auroc_ge_0.9"] and c["badnets_attack_success_ge_0.95"]
    assert c["badnets_clean_accuracy_drop_le_0.01"] and c["signature_key_aware_auroc_ge_0.99"]
    assert not c["signature_black_box_cis_contain_0.5"]  # b's CI excludes 0.5
    m["auroc_ci"]["b"]["signature"] = [0.45, 0.8]  # white-box inspection is not counted
    assert claims(m)["signature_black_box_cis_contain_0.5"]


def test_speed_test_runs_without_the_optional_dask(monkeypatch):
    """A plain ``pip install .`` has no dask: the speed test still runs and says why."""
    import sys

    from backdoors.evaluation.parallel_speed import speedup

    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails as if not installed
    sp = speedup(toys.ToyPatchAttack(), n=2, reps=1, detectors=[toys.ToyWeight()])
    med = sp["median_seconds"]
    assert sp["population_speedup"] == pytest.approx(med["joblib_1"] / med["joblib_2"])
    assert sp["dask_vs_joblib_time"] is None and sp["dask_speedup"] is None
    assert "not installed" in sp["dask_note"] and set(sp["median_seconds"]) == {
        "joblib_1",
        "joblib_2",
    }
    # the diagnostics say where time goes: per-seed seconds per mode, workers' busy fraction
    assert set(sp["seconds_per_seed"]) == {"joblib_1", "joblib_2"}
    # one worker runs the seeds back to back: its wall time covers their summed busy time;
    # two workers are busy at most 2 x the wall time
    per_seed = sp["seconds_per_seed"]
    assert med["joblib_1"] >= per_seed["joblib_1"] * sp["seeds"]
    assert sp["worker_busy_fraction"] <= 1.0
    assert sp["seed_slowdown_2_workers"] == pytest.approx(
        per_seed["joblib_2"] / per_seed["joblib_1"]
    )
    with pytest.raises(InvalidInputError, match="optional dependency"):
        build_population(toys.ToyPatchAttack(), 1, scheduler="tcp://127.0.0.1:1")


def test_experiment_jobs_reads_one_environment_variable(monkeypatch):
    """Every experiment takes its worker count from BACKDOORS_JOBS, with a clear error."""
    from backdoors.evaluation.population import experiment_jobs

    monkeypatch.delenv("BACKDOORS_JOBS", raising=False)
    assert experiment_jobs() == 2 and experiment_jobs(1) == 1
    monkeypatch.setenv("BACKDOORS_JOBS", "3")
    assert experiment_jobs(1) == 3
    for bad in ("two", "0", "-2"):
        monkeypatch.setenv("BACKDOORS_JOBS", bad)
        with pytest.raises(InvalidInputError, match="BACKDOORS_JOBS"):
            experiment_jobs()


@pytest.mark.slow  # 350 MB per worker and a real loky replacement: 10-25 s on 2 cores
def test_worker_replacement_by_loky_stays_quiet_and_changes_no_result():
    """A worker that keeps a large per-process cache is replaced by loky's leak heuristic,
    which warns 'A worker stopped while some jobs were given to the executor' (seen by every
    ``backdoors demo`` user); run_jobs keeps that expected replacement quiet, and every job's
    result still arrives."""
    import warnings

    pytest.importorskip("psutil")  # loky's leak check needs it
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        out = dict(population.run_jobs(toys.grow_cache, list(range(12)), 2, None, "toy jobs"))
    assert out == {i: i * i for i in range(12)}
    assert not [w for w in seen if population.LOKY_RESTART_WARNING in str(w.message)]
