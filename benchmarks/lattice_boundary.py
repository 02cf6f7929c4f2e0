"""Where does the lattice detector break the RFF backdoor on this machine within a budget?

Runs only the lattice-boundary points of ``experiment rff-map`` (full mode): k = 64,
beta = 1e-3, m = 1000 on the planar task at d = 64 (the control), 80, 96, 112, 128,
each backdoored model attacked by the ``lattice`` detector (BKZ 2.0, pruning, progressive
block sizes) with a per-model CPU budget (720 s at d = 80, 180-300 s elsewhere), through the
same evaluation function (:func:`backdoors.experiments._rff_lattice.boundary_point`). Writes the
record after every point (a partial record is still a record) and prints progress.
``python benchmarks/lattice_boundary.py [--d 64:1:180 80:2:720 ...] [--first I] [--json PATH]``;
``--merge A.json B.json ... --json PATH`` joins records run in separate processes (one model
per core) into one record, each ``d``'s runs together.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from backdoors.artifacts.records import make_record
from backdoors.experiments._rff_lattice import BOUNDARY, boundary_record, merge_points


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d", nargs="*", default=None,
                    help="d:models:cpu_s_per_model (default: BOUNDARY)")  # fmt: skip
    ap.add_argument("--seed", type=int, default=0, help="data seed; member i has seed + i")
    ap.add_argument("--first", type=int, default=0,
                    help="index of the first member (seed + first)")  # fmt: skip
    ap.add_argument("--json", default="docs/results/lattice-boundary.json")
    ap.add_argument("--merge", nargs="*", type=Path, help="records to join into --json")
    a = ap.parse_args()
    if a.merge:
        merge(a.merge, Path(a.json))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    cfg = dict(BOUNDARY)
    cfg["first_member"] = a.first
    if a.d:
        cfg["points"] = [(int(d), int(n), float(b)) for d, n, b in (s.split(":") for s in a.d)]
    t0 = time.perf_counter()

    def save(metrics: dict) -> None:
        rec = make_record("lattice-boundary", {**cfg, "points": [list(p) for p in cfg["points"]]},
                          a.seed, metrics, {"total": time.perf_counter() - t0},
                          notes=["benchmarks/lattice_boundary.py; the same points run in "
                                 "`backdoors experiment rff-map` (full mode)"])  # fmt: skip
        Path(a.json).write_text(json.dumps(rec, indent=1, default=float) + "\n")

    metrics = boundary_record(cfg, a.seed, log=print, on_point=save)
    save(metrics)
    for p in metrics["points"]:
        print(
            f"d={p['d']}: keys {p['keys_recovered']}/{p['models']}, block reached "
            f"{p['block_size_reached']}, CPU s {[round(c or 0) for c in p['cpu_seconds']]}, "
            f"estimate BKZ-{p['estimate_primal_block_size']}"
        )
    print(
        f"measured_boundary_d={metrics['measured_boundary_d']} "
        f"estimated_boundary_d={metrics['estimated_boundary_d']}"
    )


def merge(paths: list[Path], out: Path) -> None:
    """One record from several: their points joined (:func:`merge_points`), parameters and
    versions of the first, every source named in the notes with its commit and timings."""
    recs = [json.loads(p.read_text()) for p in paths]
    metrics = merge_points(recs)
    params = dict(recs[0]["params"])
    params["points"] = [[p["d"], p["models"], p["max_cpu_seconds_per_model"]]
                        for p in metrics["points"]]  # fmt: skip
    params.pop("first_member", None)
    notes = [
        f"merged from {len(recs)} records: "
        + "; ".join(
            f"{p.name} ({r['created']}, points {r['params']['points']}, first member "
            f"{r['params'].get('first_member', 0)})"
            for p, r in zip(paths, recs, strict=True)
        )
    ]
    for r in recs:
        notes += [n for n in r.get("notes", []) if n not in notes]
    timings = {"total": sum(r["timings"].get("total", 0.0) for r in recs)}
    rec = make_record("lattice-boundary", params, recs[0]["seed"], metrics, timings, notes=notes)
    rec["versions"] = recs[0]["versions"]
    out.write_text(json.dumps(rec, indent=1, default=float) + "\n")
    for p in metrics["points"]:
        print(f"d={p['d']}: keys {p['keys_recovered']}/{p['models']}, CPU s "
              f"{[round(c or 0) for c in p['cpu_seconds']]}")  # fmt: skip
    print(
        f"measured_boundary_d={metrics['measured_boundary_d']} "
        f"estimated_boundary_d={metrics['estimated_boundary_d']}"
    )


if __name__ == "__main__":
    main()
