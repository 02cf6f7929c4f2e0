"""Experiment ``rff-map``: where is the RFF/CLWE backdoor both effective and undetected?

Over the pancake noise beta, the input dimension d, the secret sparsity k (gamma = 2 sqrt(k))
and the feature count m, on the synthetic :func:`~backdoors.rff.tasks.planar` task:

(a) the lattice detector (primal uSVP, :mod:`backdoors.detectors.lattice`) -- AUROC and key
    recovery (the recovered direction must flip >= 90% of test inputs when used as a key) at a
    stated block size and time budget, on the points where its lattice is small enough to run
    here; everywhere, the *estimated* BKZ block size of the primal attack and of the
    support-guessing hybrid (:mod:`backdoors.rff.lattice_cost`, an extrapolation);
(b) the flip rate of the genuine key on inputs past the margin bound and on all inputs;
(c) the accuracy gap (backdoored - honest) with a bootstrap CI;
(d) in full mode, the measured edge of the lattice detector: keys recovered, block size
    reached and CPU s per model within a CPU budget at d = 80 ... 128 (k = 64, beta = 1e-3,
    m = 1000; :data:`backdoors.experiments._rff_lattice.BOUNDARY`), next to the estimate;
and the AUROC and distinguishing advantage (in-sample, and held out) of every other shipped
weight detector.

Every point is one population through the one evaluation pipeline
(:func:`backdoors.evaluation.pair_scoring.score_population`: member ``i`` of both sides uses seed
``seed + i``, detectors run through :func:`backdoors.evaluation.scoring.run_detector` in the
worker, the
honest member of a seed gets that seed's planted key as its control key). ``BACKDOORS_JOBS``
sets the joblib workers (default 2).

Verdict per point: *effective* = flip >= 0.99 on margin inputs, margin inputs >= half of all
inputs (the flip on margin inputs is guaranteed by the bound, so the margin fraction carries
the information), gap CI contains 0; *detected* = some detector that ran reaches AUROC >= 0.9,
or the lattice recovered a key.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from backdoors import rff
from backdoors.artifacts.records import Timer, make_record
from backdoors.evaluation.pair_scoring import score_population
from backdoors.evaluation.population import experiment_jobs
from backdoors.evaluation.recipes.rff import RFFAttack, RFFPoint
from backdoors.experiments import EXPERIMENTS
from backdoors.experiments._rff_lattice import BOUNDARY, boundary_record, lattice_population
from backdoors.experiments.rff import measure_flips, summaries, weight_detectors
from backdoors.metrics import mean_diff_ci
from backdoors.rff import lattice_cost
from backdoors.rff.lattice_cost import feasible_here, required_block_size, sparse_hybrid
from backdoors.rff.lattice_cost import finite as _finite

DETECT = 0.9  # AUROC at which a detector counts as detecting
FLIP = 0.99  # flip rate on margin inputs for "effective"
MARGIN_FRACTION = 0.5  # ... with at least this fraction of inputs past the margin bound
#: What runs here: :data:`backdoors.rff.lattice_cost.RUNNABLE` (BKZ-30, rank <= 400, 2^10 guesses).
RUNNABLE = lattice_cost.RUNNABLE

FULL: dict[str, Any] = {
    "betas": (1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1),
    "rows": [
        {"d": 32, "m": 1000, "k": 16},
        {"d": 64, "m": 1000, "k": 16},
        {"d": 128, "m": 1000, "k": 16},
        {"d": 256, "m": 1000, "k": 16},
        {"d": 784, "m": 1000, "k": 16},
        {"d": 64, "m": 1000, "k": 4},
        {"d": 64, "m": 1000, "k": 64},
        {"d": 256, "m": 1000, "k": 64},
        {"d": 784, "m": 1000, "k": 64},
        {"d": 64, "m": 300, "k": 16},
        {"d": 64, "m": 3000, "k": 16},
    ],
    "pop": 4,
    "n_train": 1500,
    "lattice": {
        "pop": 2,
        "block_size": 20,
        "max_seconds": 20.0,
        "points": {(32, 1000, 16): "all", (64, 1000, 16): (1e-3, 3e-3, 1e-2)},
    },
    # the measured edge of the lattice detector (BKZ 2.0 within a CPU budget per model) at
    # k = 64, beta = 1e-3, m = 1000; alone: benchmarks/lattice_boundary.py
    "boundary": BOUNDARY,
}
QUICK: dict[str, Any] = {
    "betas": (1e-3, 1e-1),
    "rows": [{"d": 24, "m": 300, "k": 8}, {"d": 64, "m": 300, "k": 16}],
    "pop": 4,  # as in full mode: the held-out advantage needs >= 4 per side
    "n_train": 400,
    "lattice": {
        "pop": 2,
        "block_size": 2,
        "max_seconds": 5.0,
        "points": {(24, 300, 8): "all"},
    },
}


def _weight_detectors() -> list[str]:
    return [n for n in weight_detectors() if n != "rff_key_aware"]


def _point(row: dict[str, int], beta: float, sizes: dict[str, Any], seed: int,
           n_jobs: int) -> dict[str, Any]:  # fmt: skip
    """One grid point: ``sizes['pop']`` seeds (``seed + i``) scored through
    :func:`backdoors.evaluation.pair_scoring.score_population`; the lattice, where it runs, on the
    first ``lattice.pop`` of the same seeds (its own planted members: fresh secrets)."""
    d, m, k = row["d"], row["m"], row["k"]
    gamma = 2 * np.sqrt(k)
    point = RFFPoint("planar", d, n_train=sizes["n_train"], n_test=500, n_components=m,
                     sparsity=k, beta=beta, data_seed=seed)  # fmt: skip
    names = [*_weight_detectors(), "rff_key_aware"]
    table = score_population(
        RFFAttack(point), sizes["pop"], names, seed=seed, n_jobs=n_jobs, measure=measure_flips,
        label=f"rff-map d={d} m={m} k={k} beta={beta:g}",
    )  # fmt: skip
    acc_h, acc_b = table.accuracies()
    fl = [p.measured for p in table.pairs]
    gap, gap_ci = mean_diff_ci(acc_h, acc_b, seed=seed)
    summ, errors = summaries(table, names)
    aware = summ.pop("rff_key_aware", {})
    held = {n: s["advantage_heldout"] or {} for n, s in summ.items()}
    primal = required_block_size(d, m, gamma, beta)
    hybrid = sparse_hybrid(d, k, m, gamma, beta)
    margin = [f["flip_rate_margin"] for f in fl]
    out: dict[str, Any] = {
        **row, "beta": beta, "gamma": float(gamma), "models_per_side": sizes["pop"],
        "accuracy_honest": float(np.mean(acc_h)), "accuracy_gap": gap,
        "accuracy_gap_ci": list(gap_ci),
        "flip_rate_margin": float(np.nanmean(margin)) if not np.all(np.isnan(margin))
        else float("nan"),
        "margin_fraction": float(np.mean([f["margin_fraction"] for f in fl])),
        "flip_rate_all": float(np.mean([f["flip_rate_all"] for f in fl])),
        "flip_rate_random_direction": float(np.mean([f["flip_rate_random_direction"]
                                                     for f in fl])),
        "perturbation_l2_over_x": float(np.mean([f["perturbation_l2_over_x"] for f in fl])),
        "auroc_key_aware": aware.get("auroc", float("nan")),
        "advantage_key_aware": aware.get("advantage", float("nan")),
        "auroc_weight_detectors": {n: s["auroc"] for n, s in summ.items()},
        "advantage_weight_detectors": {n: s["advantage"] for n, s in summ.items()},
        "advantage_weight_detectors_heldout": {n: h.get("advantage") for n, h in held.items()},
        "estimate_primal_block_size": primal.block_size, "estimate_primal_rows": primal.rows,
        "estimate_primal_log2_cost": _finite(primal.log2_cost),
        "estimate_hybrid_log2_cost": _finite(hybrid.log2_cost),
        "estimate_hybrid_d_sub": hybrid.d_sub,
        "estimate_hybrid_block_size": hybrid.block_size,
        "estimate_hybrid_log2_trials": _finite(hybrid.log2_trials),
        "estimate_breaks_here": feasible_here(d, k, m, gamma, beta, **RUNNABLE),
        "lattice_exposure": lattice_cost.exposure(d, k, m, gamma, beta).to_dict(),
    }  # fmt: skip
    if errors:
        out["detector_errors"] = errors
    cfg = sizes["lattice"]
    sel = cfg["points"].get((d, m, k))
    if sel is not None and (sel == "all" or beta in sel):
        out["lattice"] = lattice_population(point, cfg, seed, n_jobs=n_jobs)
    out.update(_verdict(out))
    return out


def _verdict(p: dict[str, Any]) -> dict[str, Any]:
    gap_ok = p["accuracy_gap_ci"][0] <= 0 <= p["accuracy_gap_ci"][1]
    effective = bool(
        p["flip_rate_margin"] >= FLIP and p["margin_fraction"] >= MARGIN_FRACTION and gap_ok
    )
    det = max(p["auroc_weight_detectors"].values(), default=0.5) >= DETECT
    lat = p.get("lattice")
    if lat is not None:
        det = det or lat["auroc"] >= DETECT or lat["key_recovery_rate"] > 0
    return {"effective": effective, "detected": bool(det),
            "effective_and_undetected": bool(effective and not det
                                             and not p["estimate_breaks_here"])}  # fmt: skip


def regime_map(sizes: dict[str, Any], seed: int, n_jobs: int = 1) -> list[dict[str, Any]]:
    """All grid points, one population per (d, m, k, beta): the honest members of seed
    ``seed + i`` are the same estimator at every beta of a row (rebuilt in each worker)."""
    pts = []
    for row in sizes["rows"]:
        for beta in sizes["betas"]:
            t0 = time.perf_counter()
            pt = _point(row, beta, sizes, seed, n_jobs)
            pt["seconds"] = time.perf_counter() - t0
            pts.append(pt)
    return pts


def plot_map(points: list[dict[str, Any]], path: Path) -> Path:
    """Four panels over beta x (d, m, k): flip rate on all inputs (margin fraction), the best
    weight-detector AUROC, the lattice (measured AUROC / recovery, else estimated block
    size), and the verdict."""
    from matplotlib.colors import ListedColormap

    from backdoors.artifacts.report import new_figure, save_figure

    key = lambda p: f"d={p['d']} m={p['m']} k={p['k']}"  # noqa: E731
    rows = list(dict.fromkeys(key(p) for p in points))
    betas = sorted({p["beta"] for p in points})
    shape = (len(rows), len(betas))
    flip, wdet, lat, verdict = (np.full(shape, np.nan) for _ in range(4))
    text: dict[str, dict[tuple[int, int], str]] = {"flip": {}, "wdet": {}, "lat": {}}
    for p in points:
        i, j = rows.index(key(p)), betas.index(p["beta"])
        flip[i, j] = p["flip_rate_all"]
        text["flip"][i, j] = f"{p['flip_rate_all']:.3f}\n({p['margin_fraction']:.2f})"
        wdet[i, j] = max(p["auroc_weight_detectors"].values(), default=np.nan)
        text["wdet"][i, j] = f"{wdet[i, j]:.2f}"
        if "lattice" in p:
            lat[i, j] = p["lattice"]["auroc"]
            text["lat"][i, j] = (
                f"{p['lattice']['auroc']:.2f}\nrec {p['lattice']['key_recovery_rate']:.1f}"
            )
        else:
            b = p["estimate_primal_block_size"]
            text["lat"][i, j] = f"est b={b}" if b is not None else "est b>1000"
        verdict[i, j] = 2 if p["effective_and_undetected"] else (1 if p["detected"] else 0)
    fig, axes = new_figure(1, 4, figsize=(17, 0.5 * len(rows) + 2.6), sharey=True)
    panels = [
        (flip, "Reds_r", (0.5, 1.0), "flip", "flip rate, all inputs\n(margin fraction)"),
        (wdet, "Reds", (0.5, 1.0), "wdet", "best weight-detector AUROC\n(5 statistics)"),
        (lat, "Reds", (0.5, 1.0), "lat", "lattice AUROC, key recovery\n(est. = primal block size)"),
    ]  # fmt: skip
    for ax, (g, cmap, (lo, hi), name, title) in zip(axes, panels, strict=False):
        ax.imshow(g, vmin=lo, vmax=hi, cmap=cmap, aspect="auto")
        for (i, j), s in text[name].items():
            ax.text(j, i, s, ha="center", va="center", fontsize=5.5)
        ax.set_title(title, fontsize=8)
    axes[3].imshow(verdict, cmap=ListedColormap(["#cccccc", "#d62728", "#2ca02c"]), vmin=0,
                   vmax=2, aspect="auto")  # fmt: skip
    axes[3].set_title("verdict: green effective + undetected, red detected\n"
                      "grey ineffective or predicted broken here", fontsize=8)  # fmt: skip
    for ax in axes:
        ax.set_xticks(range(len(betas)), [f"{b:g}" for b in betas], fontsize=7)
        ax.set_xlabel("beta (pancake noise)", fontsize=8)
    axes[0].set_yticks(range(len(rows)), rows, fontsize=7)
    fig.suptitle("RFF/CLWE backdoor: effectiveness vs detection (lattice: measured where it "
                 "runs here, else estimated)", fontsize=9)  # fmt: skip
    fig.tight_layout()
    return save_figure(fig, path)


def _window(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {k: p[k] for k in ("d", "m", "k", "beta", "flip_rate_all", "margin_fraction",
                           "estimate_primal_block_size", "estimate_hybrid_log2_cost")}
        for p in points if p["effective_and_undetected"]
    ]  # fmt: skip


@EXPERIMENTS.register("rff-map")
def run(quick: bool, seed: int, out_dir: Path | None) -> dict[str, Any]:
    sizes = QUICK if quick else FULL
    timer = Timer()
    with timer("map"):
        pts = regime_map(sizes, seed, n_jobs=experiment_jobs())
    window = _window(pts)
    measured = [p for p in pts if p["effective_and_undetected"] and "lattice" in p]
    metrics = {"points": pts, "window": window, "window_exists": bool(window),
               "window_with_measured_lattice": _window(measured)}  # fmt: skip
    if "boundary" in sizes:
        with timer("lattice_boundary"):
            edge = boundary_record(sizes["boundary"], seed)
        metrics["lattice_boundary"] = edge
        metrics["measured_boundary_d"] = edge["measured_boundary_d"]
        metrics["estimated_boundary_d"] = edge["estimated_boundary_d"]
    plots = []
    if out_dir is not None:
        plots.append(str(plot_map(pts, Path(out_dir) / "rff_map.png")))
    lat = sizes["lattice"]
    params = {
        "quick": quick, "betas": list(sizes["betas"]), "rows": sizes["rows"],
        "models_per_side": sizes["pop"], "n_train": sizes["n_train"], "task": "planar",
        "alpha": rff.DEFAULTS.alpha, "gamma": "2 sqrt(k)",
        "lattice": {"models_per_side": lat["pop"], "block_size": lat["block_size"],
                    "max_seconds": lat["max_seconds"],
                    "points": [[*k, v if v == "all" else list(v)]
                               for k, v in lat["points"].items()]},
        "lattice_boundary": {**sizes["boundary"], "points": [list(p) for p in
                             sizes["boundary"]["points"]]} if "boundary" in sizes else None,
        "runnable": RUNNABLE, "detect_auroc": DETECT, "effective_flip": FLIP,
        "margin_fraction": MARGIN_FRACTION, "seeds": "seed + i (both sides)",
    }  # fmt: skip
    notes = [
        "Lattice columns are measured only at params.lattice.points (rank <= 400 runs here); "
        "elsewhere the block size is an *extrapolation* from the 2016 root-Hermite estimate "
        "and the ADPS16 uSVP condition (backdoors.rff.lattice_cost), not a measurement.",
        "effective_and_undetected additionally requires estimate_breaks_here = False: no "
        "attack of the size that runs here (params.runnable: BKZ block, lattice rank, support "
        "guesses) is predicted to win -- a point the estimate says is broken here is not "
        "called undetected just because the map did not run the lattice there.",
        "The hybrid estimate guesses a column subset containing the k-sparse support: "
        "log2 cost = log2(expected trials) + 0.292 b of one trial (core-SVP).",
        "Secrets and planted coins come from OS randomness (rff.plant): reruns differ by "
        "sampling noise; populations are small (models_per_side), so AUROC >= 0.9 only flags "
        "near-perfect separation.",
        "metrics.lattice_boundary (full mode): the lattice detector alone (BKZ 2.0 with "
        "pruning, progressive block sizes, a CPU budget per model: params.lattice_boundary) "
        "on backdoored models at k = 64, beta = 1e-3, m = 1000; measured_boundary_d is the "
        "largest d with a key recovered (proven by activation), estimated_boundary_d the "
        "largest d whose estimated block size the runs reached.",
        "Each point is one pair_scoring.score_population run (seeds seed + i on both sides; "
        "the honest members of a row are the same estimators at every beta; the honest "
        "control key is the planted key of the same seed); the lattice runs on the first "
        "lattice.models_per_side of those seeds, with its own planted members.",
    ]
    return make_record("rff-map", params, seed, metrics, dict(timer.timings),
                       artifacts={"plots": plots}, notes=notes)  # fmt: skip
