"""Experiment ``detectors``: the detectors the field relies on, against every registered attack.

For every attack in :data:`backdoors.evaluation.recipes.ATTACKS` (``badnets``, ``signature``,
``rff``,
``relu``, ... whichever are registered) a population of N honest and N backdoored models is
built from seeds (:mod:`backdoors.evaluation.population`), every registered detector scores every
member
with the evidence it declares, and the table reports AUROC with a percentile-bootstrap 95% CI
and TPR at 5% FPR (:mod:`backdoors.evaluation.detection_table`). Paper claim tested: the signature
backdoor (§5.2, Thm 5.4) is black-box undetectable, so every key-oblivious detector's CI should
contain 0.5 while the key-aware positive control reaches ~1; BadNets (Gu et al. 2017), built
for these detectors, should be caught. White-box, the signature verifier is a separate
component, which ``architecture_inspection`` reports.

Environment: ``BACKDOORS_CACHE=DIR`` caches population members (a rerun only builds what is
missing); ``BACKDOORS_SCHEDULER=ADDRESS`` builds them on a Dask cluster instead of joblib;
``BACKDOORS_JOBS`` sets the joblib workers for builds and scoring (default 2).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from backdoors.artifacts.records import Timer, make_record
from backdoors.detectors import Detector
from backdoors.evaluation.detection_table import (
    PairResult,
    best_configurations,
    pair_results,
    tables,
)
from backdoors.evaluation.evidence_policy import policy_for
from backdoors.evaluation.pair_scoring import Budget, PairTable, score_population
from backdoors.evaluation.parallel_speed import SPEED_DETECTORS, SPEED_SEEDS, speedup
from backdoors.evaluation.population import (
    build_populations,
    experiment_jobs,
)
from backdoors.evaluation.recipes import ATTACKS, Attack
from backdoors.evaluation.scoring import all_detectors
from backdoors.experiments import EXPERIMENTS
from backdoors.experiments.detectors_report import (
    claims,
    nc_norms,
    notes_for,
    plot_heatmap,
    plot_rocs,
    write_detectors_report,
)

QUICK_N, FULL_N = 2, 20  # members per side scored by every detector (full: then grown to the
# recipe's ``full_members`` for the model-level detectors)
QUICK_SKIP = ("mntd", "neural_cleanse", "activation_clustering")  # tens of s per model
#: Populations --quick leaves out: the conditional backdoors, whose planting (training in the
#: box of int8-equal weights, searching a guard channel) does not fit the 60 s budget; full
#: mode and ``backdoors experiment conditional --quick`` (about 20 s) measure them.
QUICK_SKIP_ATTACKS = (
    "quantization_conditioned",
    "quantization_conditioned_cnn",
    "optimization_conditioned",
)
QUICK_BUDGET = 15.0  # seconds of detector scoring in --quick (slower detectors are skipped)


def _median_build(tab: PairTable) -> float:
    return float(np.median([t for p in tab.pairs for t in p.member_seconds]))


def _quality(tab: PairTable) -> tuple[float, float]:
    """(mean clean-accuracy drop, mean attack success) over the seeds of one attack."""
    acc_h, acc_b = tab.accuracies()
    drop = acc_h - acc_b
    succ = np.array([p.attack_success for p in tab.pairs], dtype=float)
    mean = lambda v: float(np.mean(v[np.isfinite(v)])) if np.isfinite(v).any() else float("nan")  # noqa: E731
    return mean(drop), mean(succ)


def _fill_cache(attack: Attack, n: int, seed: int, cached: dict[str, int], *, quick: bool,
                n_jobs: int, scheduler: Any, cache_dir: Any) -> list[str]:  # fmt: skip
    """Build the members of ``n`` seeds missing from the population cache (the scoring
    workers then load them); count those already cached; notes on uncachable members."""
    pop = build_populations([attack], n, seed=seed, quick=quick, n_jobs=n_jobs,
                            scheduler=scheduler, cache_dir=cache_dir)[attack.name]  # fmt: skip
    cached[attack.name] += pop.n_cached
    return [f"{pop.attack}: members not cached ({pop.uncached[0]})"] if pop.uncached else []


def speed_tests(attacks: list[Attack], quick: bool, seed: int) -> dict[str, dict[str, Any]]:
    """:func:`backdoors.evaluation.parallel_speed.speedup` for the RFF and ReLU populations (those
    registered here): seeds scored in the workers, only scores return. Full mode only: at the
    two seeds of --quick the ratio is noise (``benchmarks/population_speed.py`` measures it)."""
    if quick:
        return {}
    names = [a.name for a in attacks if a.name in SPEED_DETECTORS]
    by_name = {a.name: a for a in attacks}
    return {n: speedup(by_name[n], n=SPEED_SEEDS[n], reps=3, quick=quick, seed=seed)
            for n in names}  # fmt: skip


def run_table(
    attacks: list[Attack],
    detectors: list[Detector],
    quick: bool,
    seed: int,
    out_dir: Path | None,
    *,
    n: int | None = None,
    n_jobs: int = 2,
    scheduler: Any = None,
    cache_dir: str | os.PathLike | None = None,
    timing: bool = True,
    budget: float | None = None,
    grow: bool = True,
) -> dict[str, Any]:
    """The whole experiment for given attacks and detectors; returns the record. ``grow``:
    in full mode, grow each population to its recipe's ``full_members`` per side."""
    timer = Timer()
    n = n if n is not None else (QUICK_N if quick else FULL_N)
    extra_notes: list[str] = []
    if not attacks:
        extra_notes.append(
            "no attacks are registered (backdoors.evaluation.recipes.ATTACKS is empty)"
        )
    if not detectors:
        extra_notes.append("no detectors are registered (backdoors.detectors.DETECTORS is empty)")
    budget_s = budget if budget is not None else (QUICK_BUDGET if quick else None)
    bud = Budget(budget_s, pairs_left=len(attacks) * len(detectors))
    n_inputs = 2 if quick else 10
    sizes = {a.name: n for a in attacks}
    cached: dict[str, int] = {a.name: 0 for a in attacks}
    tabs: dict[str, PairTable] = {}
    with timer("detectors"):
        for a in attacks:
            kw = dict(quick=quick, n_jobs=n_jobs, scheduler=scheduler, cache_dir=cache_dir)
            if cache_dir is not None:  # fill the cache first; the workers then load members
                extra_notes += _fill_cache(a, n, seed, cached, **kw)
            tab = score_population(a, n, detectors, seed=seed, input_members=n_inputs,
                                   budget=bud, label=f"{a.name}: {n} seeds", **kw)  # fmt: skip
            full = int(getattr(a, "full_members", n))
            if not quick and grow and n < full:
                if cache_dir is not None:
                    extra_notes += _fill_cache(a, full - n, seed + n, cached, **kw)
                k, k_in = full - n, max(0, n_inputs - n)  # input filters: first n_inputs
                dets = [d for d in detectors if k_in or not d.per_input]
                more = score_population(a, k, dets, seed=seed + n, input_members=k_in,
                                        label=f"{a.name}: {k} more seeds", **kw)  # fmt: skip
                tab = tab.extend(more)
            tabs[a.name] = tab
            sizes[a.name] = len(tab.pairs)
    results: dict[tuple[str, str], PairResult] = {
        (r.detector, name): r for name, t in tabs.items() for r in pair_results(t, detectors)
    }
    tab = tables(results)
    pol = policy_for(quick)
    m: dict[str, Any] = {
        "auroc": tab["auroc"],
        "auroc_ci": tab["auroc_ci"],
        "tpr_at_5fpr": tab["tpr_at_5fpr"],
        "advantage": tab["advantage"],
        "advantage_heldout": tab["advantage_heldout"],
        "not_scored": tab["not_scored"],
        **best_configurations(results),
        "detector_levels": {
            **{d.name: "input" if d.per_input else "model" for d in detectors},
            **{r.detector: r.level for r in results.values()},
        },
        "scoring_seconds": tab["seconds"],
        "positive_controls": sorted(d.name for d in detectors if "key" in d.needs),
        "population_sizes": {a: [k, k] for a, k in sizes.items()},
        "median_build_seconds": {a: _median_build(t) for a, t in tabs.items()},
        "evidence_policy": {"n_queries": pol.n_queries, "n_train": pol.n_train},
    }
    quality = {a: _quality(t) for a, t in tabs.items()}
    m["clean_accuracy_drop"] = {a: q[0] for a, q in quality.items()}
    m["attack_success"] = {a: q[1] for a, q in quality.items()}
    if "badnets" in quality:
        m["badnets_clean_accuracy_drop"] = quality["badnets"][0]
        m["badnets_attack_success"] = quality["badnets"][1]
    m["claims"] = claims(m)
    strip = results.get(("strip", "signature"))
    if strip is not None and strip.status == "scored":
        m["strip_signature_input_auroc"] = strip.auroc
        m["strip_signature_input_auroc_ci"] = list(strip.ci)
    nc = results.get(("neural_cleanse", "signature"))
    if nc is not None and nc.status == "scored":
        m["neural_cleanse_signature_norms"] = nc_norms(nc)
    nc_b = results.get(("neural_cleanse", "badnets"))
    if nc_b is not None and nc_b.status == "scored":
        targets = {p.seed: p.target for p in tabs["badnets"].pairs}
        hits = [d["flagged_class"] == targets[d["seed"]] for d in nc_b.details if d["backdoored"]]
        m["neural_cleanse_badnets_target_recovered"] = float(np.mean(hits))
    if timing and attacks:
        with timer("speed_test"):
            sp = speed_tests(attacks, quick, seed)
        if sp:
            m["population_speedup"] = {a: r["population_speedup"] for a, r in sp.items()}
            m["dask_vs_joblib_time"] = {a: r["dask_vs_joblib_time"] for a, r in sp.items()}
            m["speed_test"] = sp
    plots: list[str] = []
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        plots.append(
            str(plot_heatmap(tab["auroc"], tab["auroc_ci"], out_dir / "auroc_heatmap.png"))
        )
        plots += [str(p) for p in plot_rocs(results, out_dir)]
    params = {
        "attacks": [a.name for a in attacks],
        "detectors": [d.name for d in detectors],
        "members_per_side": m["population_sizes"],
        "quick": quick,
        "n_jobs": n_jobs,
        "scheduler": None if scheduler is None else str(scheduler),
        "cache_dir": None if cache_dir is None else str(cache_dir),
        "detector_budget_seconds": budget_s,
        "cached_members": cached,
    }
    if quick:
        extra_notes.append(f"--quick leaves out the slowest detectors: {', '.join(QUICK_SKIP)}")
        extra_notes.append("--quick leaves out the parallel speed test (full mode measures it)")
        extra_notes.append(
            f"--quick leaves out the populations {', '.join(QUICK_SKIP_ATTACKS)} (full mode "
            "and `backdoors experiment conditional` score them)"
        )
    notes = notes_for(m, results, quick) + extra_notes
    record = make_record(
        "detectors", params, seed, m, timer.timings, artifacts={"plots": plots}, notes=notes
    )
    if out_dir is not None:
        record["artifacts"]["report"] = str(write_detectors_report(record, results, out_dir))
    return record


@EXPERIMENTS.register("detectors")
def run(quick: bool, seed: int, out_dir: Path | None) -> dict[str, Any]:
    """Detectors x registered attacks over populations (see module docstring)."""
    attacks = [cls() for name, cls in ATTACKS.items() if not (quick and name in QUICK_SKIP_ATTACKS)]
    detectors = [d for d in all_detectors() if not (quick and d.name in QUICK_SKIP)]
    return run_table(
        attacks,
        detectors,
        quick,
        seed,
        out_dir,
        n_jobs=experiment_jobs(),
        scheduler=os.environ.get("BACKDOORS_SCHEDULER") or None,
        cache_dir=os.environ.get("BACKDOORS_CACHE") or None,
    )
