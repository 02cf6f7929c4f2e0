"""Parallel population scoring, one worker vs two (and a 2-process Dask cluster).

Prints ``population_speedup`` and the per-job times for the RFF and ReLU populations, the
figures the population-speed target needs (goal >= 1.8 on 2 workers). Run on a quiet machine::

    python benchmarks/population_speed.py [rff relu] [--seeds N] [--reps R]

Each timed run scores ``N`` seeds (both members built and scored in the worker, only scores
return, :mod:`backdoors.evaluation.pair_scoring`); repetitions of the three modes are interleaved
and
the medians compared (:func:`backdoors.evaluation.parallel_speed.speedup`).
"""

from __future__ import annotations

import argparse
import json

from backdoors.evaluation.parallel_speed import SPEED_SEEDS, speedup


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("attacks", nargs="*", default=["rff", "relu"])
    ap.add_argument("--seeds", type=int, default=None, help="seeds per run (default SPEED_SEEDS)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-dask", action="store_true")
    args = ap.parse_args()
    for name in args.attacks:
        n = args.seeds or SPEED_SEEDS[name]
        res = speedup(name, n=n, reps=args.reps, dask=not args.no_dask)
        print(json.dumps(res, indent=1, default=str), flush=True)
        print(f"{name}: population_speedup {res['population_speedup']:.3f} "
              f"(median s {res['median_seconds']})", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
