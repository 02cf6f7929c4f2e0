"""How much parallel population scoring buys: one worker vs two, and a Dask cluster.

``population_speedup`` = median wall time of scoring ``n`` seeds (both sides built and scored
in the worker, :mod:`backdoors.evaluation.pair_scoring`) with one joblib worker, divided by the
same with
two workers, repetitions interleaved so that machine noise hits both alike. The Dask figure
runs the same jobs on a ``LocalCluster`` of two separate worker *processes* (one thread each),
timed against two joblib workers while the cluster is up (and the joblib 1-vs-2 comparison
while it is not); Dask is optional, and without it the Dask entries are ``None`` with a
reason.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from backdoors.evaluation.pair_scoring import score_population
from backdoors.evaluation.recipes import ATTACKS, Attack
from backdoors.threads import one_thread

#: Model-level detectors scored in the workers of the speed test, per attack (cheap ones).
SPEED_DETECTORS = {
    "rff": ["rff_key_aware", "coordinate_normality", "spectral_bbp"],
    "relu": ["relu_key_aware", "diagonal_thresholding", "weight_norm"],
}
#: Seeds per timed run (full mode): populations of the sizes the experiments score, so that
#: per-seed work, not the fixed cost of one parallel call, is what is timed. An RFF seed fits
#: two m = 2000 learners on 4,000 MNIST rows, a ReLU seed about twenty times less work, hence
#: the counts (benchmarks/population_speed.py prints the measured per-seed times).
SPEED_SEEDS = {"rff": 10, "relu": 120}


def _warm() -> int:
    """Import every attack module in a worker (timings exclude interpreter start-up)."""
    return len(ATTACKS.names())


def _dask_client(n_workers: int) -> tuple[Any, Any, str]:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        return None, None, "dask/distributed not installed (pip install 'backdoors[dask]')"
    cluster = LocalCluster(
        n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = Client(cluster, set_as_default=False)
    client.run(_warm)
    return cluster, client, ""


def _timed(attack, n, dets, seed, quick, modes, reps, times, busy) -> None:
    """Interleaved repetitions of every mode (after one untimed warm-up run each, which loads
    the data sets in every worker process); wall times and summed job seconds per mode."""
    for _, kw in modes:
        score_population(attack, 2, dets, seed=seed + 99_990, quick=quick, **kw)
    for r in range(reps):
        s = seed + 100_000 + r * n
        for label, kw in modes:
            with one_thread() if label == "joblib_1" else _nothing():
                t = time.perf_counter()
                tab = score_population(attack, n, dets, seed=s, quick=quick, **kw)
                times.setdefault(label, []).append(time.perf_counter() - t)
            busy.setdefault(label, []).append(
                sum(p.build_seconds + p.score_seconds for p in tab.pairs)
            )


def speedup(
    attack: str | Attack,
    n: int = 4,
    reps: int = 3,
    *,
    quick: bool = False,
    seed: int = 0,
    detectors: list[Any] | None = None,
    dask: bool = True,
) -> dict[str, Any]:
    """Median seconds of scoring ``n`` seeds with 1 and 2 joblib workers (and Dask), ratios.

    Two phases: joblib with 1 vs 2 workers interleaved, with no Dask cluster alive (its idle
    worker processes would take CPU from the timed ones); then, with the cluster up, Dask vs 2
    joblib workers interleaved (``dask_vs_joblib_time``, equal background for both)."""
    from joblib import Parallel, delayed

    name = attack if isinstance(attack, str) else attack.name
    dets = detectors if detectors is not None else SPEED_DETECTORS.get(name, [])
    Parallel(n_jobs=2)(delayed(_warm)() for _ in range(2))
    times: dict[str, list[float]] = {}
    busy: dict[str, list[float]] = {}  # summed job seconds per run
    joblib_modes = [("joblib_1", {"n_jobs": 1}), ("joblib_2", {"n_jobs": 2})]
    _timed(attack, n, dets, seed, quick, joblib_modes, reps, times, busy)
    t0 = time.perf_counter()
    cluster, client, why = _dask_client(2) if dask else (None, None, "not requested")
    startup = time.perf_counter() - t0 if client is not None else None
    dtimes: dict[str, list[float]] = {}
    if client is not None:
        try:
            dask_modes = [("joblib_2", {"n_jobs": 2}), ("dask", {"scheduler": client})]
            _timed(attack, n, dets, seed, quick, dask_modes, reps, dtimes, {})
        finally:
            client.close()
            cluster.close()
    med = {k: float(np.median(v)) for k, v in times.items()}
    dmed = {k: float(np.median(v)) for k, v in dtimes.items()}
    if "dask" in dmed:
        med["dask"] = dmed["dask"]
    job = {k: float(np.median(v)) / n for k, v in busy.items()}
    return {
        "attack": name,
        "seeds": n,
        "members": 2 * n,
        "reps": reps,
        "detectors_in_workers": dets,
        "median_seconds": med,
        "population_speedup": med["joblib_1"] / med["joblib_2"],
        # where the rest goes: a seed's own time with 2 busy workers vs 1 (memory/cache
        # contention), and the workers' busy fraction of the wall time (scheduling, tail)
        "seconds_per_seed": job,
        "seed_slowdown_2_workers": job["joblib_2"] / job["joblib_1"],
        "worker_busy_fraction": job["joblib_2"] * n / (2 * med["joblib_2"]),
        "dask_vs_joblib_time": dmed["dask"] / dmed["joblib_2"] if "dask" in dmed else None,
        "dask_speedup": med["joblib_1"] / dmed["dask"] if "dask" in dmed else None,
        "dask_processes": client is not None,
        "dask_startup_seconds": startup,
        "dask_note": why,
    }


@contextmanager
def _nothing() -> Iterator[None]:
    yield
