"""Experiment ``relu``: the random-ReLU sparse-PCA backdoor (paper Algorithms 7-10,
paper.md §4.3, §9.4) at the default hard-window point, on MNIST 0-vs-1, with a linear head,
and the (theta, k, m, d) map of where it hides.

Default point: d=2000, m=100, k=100, theta=2.5 (below the BBP threshold sqrt(d/m)=4.47; per
coordinate theta/k=0.025 against the diagonal's noise sqrt(2/m)=0.14; the bulk-scale shift
theta sqrt(m/2d)=0.40 sd), lambda = 0.4 median ||x||.
Flip rates are measured on inputs at most ``MARGIN`` (20%) below tau. Every population (default
point, sweep, MNIST, linear head) is scored by
:func:`backdoors.evaluation.pair_scoring.score_population`
(member ``i`` = seed ``seed + i``; workers: ``BACKDOORS_JOBS``, default 2), which also gives
the distinguishing advantage per detector. The weight statistics
at scale (hundreds of members per side, held-out advantage) come from
:mod:`backdoors.experiments.relu_scale` (also ``backdoors experiment relu-scale`` alone).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np

from backdoors import metrics
from backdoors.artifacts.records import Timer, make_record
from backdoors.evaluation.pair_scoring import score_population, seed_search_control
from backdoors.evaluation.recipes import Built
from backdoors.evaluation.recipes.relu import ReLUAttack, ReLUPoint, SmallSeedReLUAttack
from backdoors.evaluation.recipes.relu_tasks import ReLUMnistAttack
from backdoors.experiments import EXPERIMENTS, relu_scale
from backdoors.experiments.relu_map import (
    CONTROL_STREAM,
    MARGIN,
    advantages,
    aurocs,
    detection_thresholds,
    fit_time_ratio,
    jobs,
    plot_map,
    population,
    sweep,
)


def _sweep_rows(quick: bool) -> tuple[list[dict[str, int]], list[float]]:
    if quick:
        rows = [{"d": 400, "m": 40, "k": 20}, {"d": 400, "m": 100, "k": 20}]  # fmt: skip
        return rows, [1.0, 3.0, 8.0]
    rows = [
        {"d": 1000, "m": 50, "k": 50},
        {"d": 1000, "m": 100, "k": 50},
        {"d": 1000, "m": 200, "k": 50},
        {"d": 1000, "m": 400, "k": 50},
        {"d": 1000, "m": 100, "k": 10},
        {"d": 1000, "m": 100, "k": 25},
        {"d": 1000, "m": 100, "k": 100},
        {"d": 500, "m": 100, "k": 50},
        {"d": 2000, "m": 100, "k": 50},
    ]
    return rows, [0.5, 1.0, 2.0, 3.0, 5.0, 8.0]


def _mnist_01(n_models: int, seed: int, n_jobs: int, m: int = 50, k: int = 50,
              theta: float = 2.5, lam_rel: float = 0.4) -> dict[str, Any]:  # fmt: skip
    """MNIST zeros vs ones (pixels / 255, d=784): the honest net thresholds ink norm. Member
    seeds ``seed .. seed + n_models - 1`` (the same numbers as the default point's: a different
    recipe, so different members)."""
    attack = ReLUMnistAttack(m=m, k=k, theta=theta, lam_rel=lam_rel)
    pop = population(attack, n_models, seed, desc="relu MNIST 0 vs 1", n_jobs=n_jobs)
    gap, ci = metrics.mean_diff_ci(pop["acc_h"], pop["acc_b"])
    au = aurocs(pop)
    adv, held = advantages(pop)
    return {
        "task": "MNIST 0 vs 1, pixels/255", "d": 784, "m": m, "k": k, "theta": theta,
        "lam_rel": lam_rel, "n_models": 2 * n_models,
        "accuracy_honest": float(np.mean(pop["acc_h"])), "accuracy_gap": gap,
        "accuracy_gap_ci": ci,
        "flip_rate_backdoor": float(pop["fb"].mean()),
        "flip_rate_random_direction": float(pop["fr"].mean()),
        "auroc_key_aware": au.pop("relu_key_aware")[0],
        "auroc_key_oblivious": {n: v[0] for n, v in au.items()},
        "auroc_key_oblivious_ci": {n: v[1] for n, v in au.items()},
        "advantage_key_oblivious": {n: v for n, v in adv.items() if n != "relu_key_aware"},
        "advantage_key_oblivious_heldout": {n: v for n, v in held.items()
                                            if n != "relu_key_aware"},
    }  # fmt: skip


def measure_linear_head(honest: Built, backdoored: Built) -> dict[str, Any]:
    """Per pair, in the worker: flip rates of the linear head's backdoored member on the
    closest third of its test inputs predicted 0 (smallest margins of the head's own decision
    value), against a random unit direction of the same norm (stream ``[s, CONTROL_STREAM]``)."""
    b = backdoored
    z = b.model.decision_function(b.X_test)
    neg = np.flatnonzero(z < 0)
    Xs = b.X_test[neg[np.argsort(-z[neg])][: max(1, len(neg) // 3)]]  # closest third
    R = np.random.default_rng([b.seed, CONTROL_STREAM]).standard_normal(Xs.shape)
    R /= np.linalg.norm(R, axis=1, keepdims=True)
    base = b.model.predict(Xs)
    return {"fb": float(np.mean(b.model.predict(b.activate(Xs)) != base)),
            "fr": float(np.mean(b.model.predict(Xs + b.key.lam * R) != base))}  # fmt: skip


def _linear_head(n_models: int, seed: int, n_jobs: int) -> dict[str, Any]:
    """The same coins with a trained logistic head: accuracy and flip rates. Member seeds
    ``seed .. seed + n_models - 1``: the default point's data sets, so the heads compare on the
    same inputs. No detectors (they read the same weights as at the default point)."""
    att = ReLUAttack(ReLUPoint(head="linear", n_test=600))
    table = score_population(att, n_models, [], seed=seed, n_jobs=n_jobs,
                             measure=measure_linear_head, label="relu linear head")  # fmt: skip
    acc_h, acc_b = table.accuracies()
    gap, ci = metrics.mean_diff_ci(acc_h, acc_b)
    return {"n_models": 2 * n_models, "accuracy_honest": float(np.mean(acc_h)),
            "accuracy_gap": gap, "accuracy_gap_ci": ci,
            "flip_rate_backdoor": float(np.mean(table.measured("fb"))),
            "flip_rate_random_direction": float(np.mean(table.measured("fr"))),
            "margin": "closest third of inputs predicted 0 by the head"}  # fmt: skip


@EXPERIMENTS.register("relu")
def run(quick: bool, seed: int, out_dir: Path | None) -> dict[str, Any]:
    """Populations at the default point, the sweep, MNIST and the linear head (small in quick)."""
    timer = Timer()
    point = ReLUPoint(n_test=600 if quick else 1000)
    n = 80 if quick else 100  # the flip advantage varies by model (sd ~0.2): 80 resolve 0.4
    n_jobs = jobs()
    with timer("default_point"):
        pop = population(point, n, seed, desc="relu default point", n_jobs=n_jobs)
    with timer("seed_search_control"):  # honest seeds 0..n-1 vs planted: 1.0 expected
        control = seed_search_control(SmallSeedReLUAttack(ReLUPoint(d=200, m=20, k=10)), 10)
    gap, gap_ci = metrics.mean_diff_ci(pop["acc_h"], pop["acc_b"], seed=seed)
    au = aurocs(pop)
    key_aware = au.pop("relu_key_aware")
    adv, held = advantages(pop)
    held_ci = {k: s["advantage_heldout"]["ci"] for k, s in pop["summary"].items()}
    with timer("fit_time"):
        ratio = fit_time_ratio(point, 11 if quick else 21, seed)
    rows, thetas = _sweep_rows(quick)
    with timer("sweep"):
        pts = sweep(rows, thetas, 3 if quick else 8, seed, n_jobs=n_jobs)
    flip_vs_gap = _flip_vs_gap(pop)
    metrics_out: dict[str, Any] = {
        "accuracy_gap": gap,
        "accuracy_gap_ci": list(gap_ci),
        "accuracy_honest": float(pop["acc_h"].mean()),
        "accuracy_backdoored": float(pop["acc_b"].mean()),
        "flip_rate_backdoor": float(pop["fb"].mean()),
        "flip_rate_random_direction": float(pop["fr"].mean()),
        "flip_rate_top_singular_direction": float(pop["fs"].mean()),
        "flip_advantage": float(pop["fb"].mean() - pop["fr"].mean()),
        "flip_margin": MARGIN,
        "flip_inputs": int(len(pop["fb"])),
        "flip_rate_by_gap": flip_vs_gap,
        "auroc_key_aware": key_aware[0],
        "auroc_key_aware_ci": key_aware[1],
        "auroc_key_oblivious": {k: v[0] for k, v in au.items()},
        "auroc_key_oblivious_ci": {k: v[1] for k, v in au.items()},
        "advantage_key_aware": adv.pop("relu_key_aware"),
        "advantage_key_oblivious": adv,
        "advantage_key_oblivious_heldout": {k: v for k, v in held.items() if k in adv},
        "advantage_key_oblivious_heldout_ci": {k: v for k, v in held_ci.items() if k in adv},
        "perturbation_l0": float(np.median(pop["l0"])),
        "perturbation_l2_over_x": float(pop["l2x"].mean()),
        "fit_time_ratio": ratio,
        "seed_search_control": control,
        "n_models_default_point": 2 * n,
        "sweep": pts,
        "sweep_detects_at_theta": detection_thresholds(pts),
    }
    with timer("at_scale"):
        metrics_out.update(
            relu_scale.scale_metrics(
                {"d": point.d, "m": point.m, "k": point.k, "theta": point.theta},
                quick,
                seed,
                n_jobs=n_jobs,
            )
        )
    # quick runs small MNIST and linear-head populations too: every effect of the full mode
    n_mnist, n_linear = (6, 4) if quick else (20, 10)
    with timer("mnist"):
        metrics_out["real_data"] = _mnist_01(n_mnist, seed, n_jobs)
    with timer("linear_head"):
        metrics_out["linear_head"] = _linear_head(n_linear, seed, n_jobs)
    plots = []
    if out_dir is not None:
        plots.append(str(plot_map(pts, Path(out_dir) / "relu_map.png")))
    params = {**vars(point), "n_per_class": n, "margin": MARGIN, "quick": quick,
              "sweep_rows": rows, "sweep_thetas": thetas, "n_jobs": n_jobs}  # fmt: skip
    notes = [
        "Every population goes through pair_scoring.score_population: member i of a population "
        f"is seed {seed} + i (honest and backdoored member of a seed share data and estimator); "
        "detectors run through scoring.run_detector in the workers, the honest member of a seed "
        "scored with the key of that seed's backdoored member (key-aware control). Both sides' "
        "learner seed is the 128-bit contract.member_seed(seed + i): seed_search, which finds "
        "small learner seeds, is at chance on these populations.",
        "advantage_key_oblivious: P[A=1|bd] - P[A=1|honest] at the best threshold on the "
        "default point's members (in-sample, optimistic); _heldout: orientation and threshold "
        "fixed on the even-indexed seeds, measured on the odd ones (bootstrap CI).",
        "Flip rates: inputs with tau(1-margin) <= s(x) < tau; random direction = fresh uniform "
        "unit vector per input, same lambda.",
        "Detectors read the weight matrix; diagonal_thresholding and truncated_power are told k.",
        "Toy sizes: 'undetected' means by these detectors with these population sizes.",
        "At scale (auroc_at_scale, advantage): weight matrices only, drawn from the learners' "
        "coins (the statistics read nothing else; the threshold head is trained identically); "
        "advantage = P[A=1|backdoored] - P[A=1|honest] at a threshold (midway between the two "
        "medians) and orientation fixed on the even-indexed half of each population, measured "
        "on the odd half (bootstrap CI over that half). covariance_thresholding_tuned: t tuned "
        "on the even half's AUROC, AUROC and advantage on the odd half. sdp_point: the full "
        "SDP runs at d=200, m=10, k=10 (d = 2000 needs a 2000 x 2000 eigendecomposition per "
        "ADMM step); at d = 2000 the registered sdp_sparse_pca screens to the 200 "
        "largest-variance coordinates first.",
        "strongest_statistic_at_scale is the maximum over statistics on the same members "
        "(selection-biased upward); the advantage of each statistic is held-out.",
    ]
    if quick:
        sizes = relu_scale.QUICK_SIZES
        notes.append(f"quick mode: {n}+{n} models at the default point, small sweep, small "
                     f"at-scale populations ({sizes} per side), {n_mnist}+{n_mnist} MNIST and "
                     f"{n_linear}+{n_linear} linear-head models.")  # fmt: skip
    return make_record("relu", params, seed, metrics_out, timer.timings,
                       artifacts={"plots": plots}, notes=notes)  # fmt: skip


def _flip_vs_gap(pop: dict[str, Any]) -> list[dict[str, float]]:
    """Flip rates binned by the relative gap (tau - s(x)) / tau."""
    edges = np.linspace(0, MARGIN, 5)
    out = []
    for lo, hi in itertools.pairwise(edges):
        sel = (pop["gap"] >= lo) & (pop["gap"] < hi)
        if sel.any():
            out.append({"gap_low": float(lo), "gap_high": float(hi), "n": int(sel.sum()),
                        "backdoor": float(pop["fb"][sel].mean()),
                        "random": float(pop["fr"][sel].mean())})  # fmt: skip
    return out
