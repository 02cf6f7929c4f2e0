"""Benchmark: the ``detectors`` experiment's full-mode scoring on chosen attacks and
detectors at a chosen population size, e.g. Activation Clustering and Spectral Signatures in
every configuration (variant rows) on BadNets when the full experiment does not fit the time.

Writes the record (same keys as ``backdoors experiment detectors``, including
``best_config_auroc``, ``best_config``, ``best_config_auroc_heldout``) and the heat map.

Run: PYTHONPATH=src .venv/bin/python benchmarks/detectors_configs.py --attacks badnets \\
       --n 20 --json docs/results/detectors-configs.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from backdoors.detectors import DETECTORS
from backdoors.evaluation.recipes import ATTACKS
from backdoors.experiments.detectors import run_table

DEFAULT_DETECTORS = (
    "activation_clustering",
    "spectral_signatures",
    "strip",
    "strip_model",
    "weight_stats",
    "key_aware",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--attacks", nargs="+", default=["badnets"])
    ap.add_argument("--detectors", nargs="+", default=list(DEFAULT_DETECTORS))
    ap.add_argument("--n", type=int, default=20, help="members per side")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--json", type=Path, required=True)
    args = ap.parse_args()
    attacks = [ATTACKS.get(a)() for a in args.attacks]
    dets = [DETECTORS.get(d)() for d in args.detectors]
    rec = run_table(attacks, dets, False, args.seed, args.json.parent / "plots", n=args.n,
                    n_jobs=args.jobs, timing=False, grow=False)  # fmt: skip
    rec["params"]["command"] = "benchmarks/detectors_configs.py " + " ".join(
        f"--{k} {' '.join(map(str, v)) if isinstance(v, list) else v}"
        for k, v in vars(args).items()
    )
    args.json.write_text(json.dumps(rec, indent=1, default=str))
    m = rec["metrics"]
    for d, row in sorted(m["best_config_auroc"].items()):
        for a, v in row.items():
            print(f"{d} x {a}: best {m['best_config'][d][a]} AUROC {v:.3f} "
                  f"{m['best_config_auroc_ci'][d][a]} held-out "
                  f"{m['best_config_auroc_heldout'].get(d, {}).get(a)}")  # fmt: skip


if __name__ == "__main__":
    main()
