"""Re-check detector AUROCs of a record on a fresh, larger population of the same attack.

A cell of ``docs/results/detectors-full.json`` whose 95% CI just misses 0.5 (on 20 + 20
members, among some 40 model-level cells) is what resampling produces now and then. This
script scores ``N`` new seeds (``seed .. seed + N - 1``, seeds the record did not use) of one
registered attack with the given detectors through the one evaluation worker
(:func:`backdoors.evaluation.pair_scoring.score_population`, full-mode evidence policy), and
writes AUROC, CI and TPR at 5% FPR per detector in one record.
``python benchmarks/population_recheck.py --attack rff --n 80 --seed 100
--detectors spectral_bbp projected_normality --json docs/results/rff-recheck.json``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from backdoors.artifacts.records import make_record
from backdoors.evaluation import pair_scoring
from backdoors.evaluation.population import experiment_jobs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--attack", required=True, help="a registered attack (population recipe)")
    ap.add_argument("--n", type=int, default=80, help="members per side")
    ap.add_argument("--seed", type=int, default=100, help="first seed (the record used 0..)")
    ap.add_argument("--detectors", nargs="+", required=True)
    ap.add_argument("--json", type=Path, required=True)
    a = ap.parse_args()
    t0 = time.perf_counter()
    table = pair_scoring.score_population(
        a.attack, a.n, a.detectors, seed=a.seed, n_jobs=experiment_jobs(),
        label=f"{a.attack}: {a.n} pairs from seed {a.seed}",
    )  # fmt: skip
    metrics = {}
    for d in a.detectors:
        s = table.summary(d)
        metrics[d] = {k: s.get(k) for k in ("auroc", "auroc_ci", "tpr_at_5fpr", "status")}
        print(f"{d}: AUROC {s.get('auroc')} CI {s.get('auroc_ci')}")
    params = {"attack": a.attack, "n": a.n, "seed": a.seed, "detectors": a.detectors,
              "n_jobs": experiment_jobs()}  # fmt: skip
    rec = make_record("population-recheck", params, a.seed, {"detectors": metrics},
                      {"total": time.perf_counter() - t0},
                      notes=["benchmarks/population_recheck.py: fresh seeds through the one "
                             "evaluation worker, full-mode evidence policy"])  # fmt: skip
    a.json.write_text(json.dumps(rec, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
