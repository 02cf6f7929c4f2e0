"""Experiment ``rff``: the white-box undetectable RFF backdoor, measured (paper §6).

Per task: a population of honest and backdoored learners (:class:`~backdoors.evaluation.recipes.rff.
RFFAttack` at one :class:`~backdoors.evaluation.recipes.rff.RFFPoint`), scored through the one
evaluation pipeline (:func:`backdoors.evaluation.pair_scoring.score_population`: member ``i`` of
both
sides uses seed ``seed + i``; same data, same estimator, only the frequency coins differ; every
detector runs through :func:`backdoors.evaluation.scoring.run_detector`, and the honest member of a
seed
gets that seed's planted key as its control key). Measured: accuracy parity, flip rates with
controls, perturbation norms, every registered weight detector (AUROC with bootstrap CI,
distinguishing advantage in-sample and held out), the cost of being a backdoored learner
(sampler and fit time), the toy-regime secret recovery, and the primal lattice attack
(``lattice`` detector) on its own population at a size where it runs, each recovery proven by
activating with the recovered key. ``BACKDOORS_JOBS`` sets the joblib workers (default 2).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from backdoors import rff
from backdoors.artifacts.records import Timer, make_record
from backdoors.breaks.toy_attack import grid_size, recovered, search_secret
from backdoors.detectors import DETECTORS
from backdoors.evaluation.pair_scoring import PairTable, score_population, seed_search_control
from backdoors.evaluation.population import experiment_jobs
from backdoors.evaluation.recipes import Built
from backdoors.evaluation.recipes.rff import RFFAttack, RFFPoint, SmallSeedRFFAttack
from backdoors.experiments import EXPERIMENTS
from backdoors.experiments._rff_lattice import lattice_at, lattice_population
from backdoors.experiments.signature import interleaved_ratio
from backdoors.hazmat.sampling import GaussianCoins
from backdoors.metrics import mean_diff_ci
from backdoors.rff.lattice_cost import Exposure, exposure
from backdoors.rff.tasks import Task

FULL = {
    "pop": 50,
    "m": 1000,
    # synthetic planar tasks in the map's window (d >= 128: the lattice attack does not run
    # here and is not predicted to win at BKZ <= 30); d = 64 was broken (see "lattice")
    "dims": (256, 1024),
    "n_mnist": (3000, 1000),
    "k": 64,  # rff.DEFAULT_SPARSITY (the map's window at d >= 256)
    "toy_trials": 5,
    "reps": 9,
    # the lattice population: the point the outside evaluation broke (d=64, m=1000, k=16)
    "lattice": {
        "d": 64,
        "pop": 8,
        "m": 1000,
        "k": 16,
        "beta": 1e-3,
        "block_size": 30,
        "max_seconds": 120.0,
    },
}
QUICK = {
    "pop": 6,
    "m": 300,
    "dims": (256,),
    "n_mnist": (1000, 500),
    "k": 64,
    "toy_trials": 2,
    "reps": 3,
    "lattice": {
        "d": 24,
        "pop": 4,  # >= 4 per side: the held-out advantage needs two halves of two
        "m": 300,
        "k": 8,
        "beta": 1e-3,
        "block_size": 2,
        "max_seconds": 5.0,
    },
}


def flip_stats(
    model: rff.RandomFourierFeaturesClassifier,
    key: rff.RFFKey,
    X: np.ndarray,
    rng: np.random.Generator,
) -> dict[str, float]:
    """Flip rates of x + s bk (and controls) and the margin condition of paper.md §3.5:
    ``|f(x)| > 2 pi sum_i |w_i| |eps_i|`` guarantees the flip."""
    f = model.decision_function(X)
    flip = lambda Z: float(np.mean(np.sign(model.decision_function(Z)) != np.sign(f)))  # noqa: E731
    phase = model.frequencies_ @ key.bk
    eps = phase - (np.floor(phase) + 0.5)
    bound = 2 * np.pi * float(np.sum(np.abs(model.coef_) * np.abs(eps)))
    meets = np.abs(f) > bound
    fa = model.decision_function(key.activate(X))
    flips = np.sign(fa) != np.sign(f)
    delta = key.delta()
    r = np.zeros_like(delta)
    S = rng.choice(len(delta), size=len(key.support), replace=False)
    r[S] = rng.standard_normal(len(S))
    r *= np.linalg.norm(delta) / np.linalg.norm(r)
    return {
        "flip_rate_margin": float(flips[meets].mean()) if meets.any() else float("nan"),
        "margin_fraction": float(meets.mean()),
        "flip_rate_all": float(flips.mean()),
        "flip_rate_random_direction": flip(X + r),
        "flip_rate_half_key": flip(key.activate(X, multiple=0.5)),
        "restore_rate_double_key": 1.0 - flip(key.activate(X, multiple=2.0)),
        "flip_rate_minus_key": flip(key.activate(X, multiple=-1.0)),
        "perturbation_l0": int(np.count_nonzero(delta)),
        "perturbation_l2": float(np.linalg.norm(delta)),
        "perturbation_l2_over_x": float(np.mean(np.linalg.norm(delta) / np.linalg.norm(X, axis=1))),
    }


def measure_flips(honest: Built, backdoored: Built) -> dict[str, float]:
    """Per pair, in the worker: :func:`flip_stats` of the backdoored member on its test inputs.
    The random-direction control draws from the member's seed (its root stream; the learner's
    coins use the seed's spawned children, :func:`backdoors.rff.coin_streams`)."""
    rng = np.random.default_rng(backdoored.seed)
    return flip_stats(backdoored.model, backdoored.key, backdoored.X_test, rng)


def weight_detectors() -> list[str]:
    """Registered white-box detectors that read only the weights (and the key, for the
    ``rff_key_aware`` control); the lattice attack is scored on its own population."""
    return [
        name
        for name, cls in DETECTORS.items()
        if cls.needs <= {"weights", "key"} and not cls.per_input and name != "lattice"
    ]


def summaries(table: PairTable, names: list[str]) -> tuple[dict[str, dict], dict[str, str]]:
    """(``{detector: summary}`` of the detectors that scored every member, ``{detector:
    reason}`` of those that failed with an error); a detector that does not apply to RFF
    models is in neither."""
    out: dict[str, dict] = {}
    errors: dict[str, str] = {}
    for name in names:
        s = table.summary(name)
        if s["status"] == "scored":
            out[name] = s
        elif any(o["status"] == "error" for p in table.pairs for o in p.outcomes[name]):
            errors[name] = s["reason"]
    return out, errors


def point_exposure(point: RFFPoint, quick: bool = False) -> Exposure:
    """The lattice cost model's verdict on the keys of ``point`` (what ``rff.plant`` records
    in each key and warns about: :func:`backdoors.rff.key_exposure`)."""
    d = point.data(quick).X_train.shape[1]
    k = rff.default_sparsity(d, point.sparsity)
    return exposure(d, k, point.sizes(quick)[2], 2.0 * np.sqrt(k), point.beta)


def population(
    point: RFFPoint, sizes: dict[str, Any], seed: int, *, n_jobs: int = 1, quick: bool = False
) -> dict[str, Any]:
    """Score ``sizes['pop']`` seeds (``seed + i``) of ``point`` with every weight detector
    (:func:`backdoors.evaluation.pair_scoring.score_population`: both members of a seed built and
    scored
    in one worker; the honest member gets the same seed's planted key as its control key)."""
    names = weight_detectors()
    task = point.data(quick)
    table = score_population(
        RFFAttack(point), sizes["pop"], names, seed=seed, quick=quick, n_jobs=n_jobs,
        measure=measure_flips, label=f"RFF populations {task.name}",
    )  # fmt: skip
    acc_h, acc_b = table.accuracies()
    flips = [p.measured for p in table.pairs]
    gap, gap_ci = mean_diff_ci(acc_h, acc_b, seed=seed)
    out: dict[str, Any] = {
        "accuracy_honest": float(np.mean(acc_h)),
        "accuracy_backdoored": float(np.mean(acc_b)),
        "accuracy_gap": gap,
        "accuracy_gap_ci": list(gap_ci),
        "population": sizes["pop"],
        "n_components": point.sizes(quick)[2],
        "bandwidth": task.bandwidth,
        "lattice_exposure": point_exposure(point, quick).to_dict(),
    }
    for key_name in flips[0]:
        vals = np.array([f[key_name] for f in flips], dtype=float)
        out[key_name] = (
            float(np.nanmean(vals)) if key_name != "flip_rate_margin" else float(np.nanmin(vals))
        )
    out["flip_rate_margin_mean"] = float(np.nanmean([f["flip_rate_margin"] for f in flips]))
    summ, errors = summaries(table, names)
    nan = float("nan")
    aware = summ.pop("rff_key_aware", {})
    out["auroc_key_aware"] = aware.get("auroc", nan)
    out["auroc_key_aware_ci"] = aware.get("auroc_ci", [nan, nan])
    out["advantage_key_aware"] = aware.get("advantage", nan)
    out["auroc_key_oblivious"] = {n: s["auroc"] for n, s in summ.items()}
    out["auroc_key_oblivious_ci"] = {n: s["auroc_ci"] for n, s in summ.items()}
    out["advantage_key_oblivious"] = {n: s["advantage"] for n, s in summ.items()}
    held = {n: s["advantage_heldout"] or {} for n, s in summ.items()}
    out["advantage_key_oblivious_heldout"] = {n: h.get("advantage") for n, h in held.items()}
    out["advantage_key_oblivious_heldout_ci"] = {n: h.get("ci") for n, h in held.items()}
    if errors:
        out["detector_errors"] = errors
    return out


def timing(task: Task, sizes: dict[str, Any], seed: int) -> dict[str, float]:
    """Sampler and fit time ratios (interleaved, median) and the scikit-learn baseline."""
    from sklearn.kernel_approximation import RBFSampler
    from sklearn.linear_model import RidgeClassifier
    from sklearn.pipeline import make_pipeline

    m, d = sizes["m"], task.X_train.shape[1]
    key = rff.generate(d, sizes["k"], scale=task.bandwidth, random_state=seed)
    gauss, cakes = GaussianCoins(), key.coins
    r = np.random.default_rng(seed)
    samp = interleaved_ratio(
        lambda: cakes.sample(m, d, r), lambda: gauss.sample(m, d, r), sizes["reps"]
    )[0]

    def fit(coins: Any) -> rff.RandomFourierFeaturesClassifier:
        est = rff.RandomFourierFeaturesClassifier(
            n_components=m, bandwidth=task.bandwidth, alpha=rff.DEFAULTS.alpha, random_state=seed
        )
        if coins is None:
            return est.fit(task.X_train, task.y_train)
        return rff.fit_with_coins(est, task.X_train, task.y_train, coins)

    fit_ratio = interleaved_ratio(lambda: fit(cakes), lambda: fit(None), sizes["reps"])[0]
    gamma_k = 2 * np.pi**2 / task.bandwidth**2  # same Gaussian kernel as ours

    def skl() -> Any:
        return make_pipeline(
            RBFSampler(gamma=gamma_k, n_components=m, random_state=seed),
            RidgeClassifier(alpha=rff.DEFAULTS.alpha * len(task.X_train)),
        ).fit(task.X_train, task.y_train)

    ours_vs_skl = interleaved_ratio(lambda: fit(None), skl, sizes["reps"])[0]
    acc_ours = float(np.mean(fit(None).predict(task.X_test) == task.y_test))
    acc_skl = float(np.mean(skl().predict(task.X_test) == task.y_test))
    return {
        "sampler_time_ratio": samp,
        "fit_time_ratio": fit_ratio,
        "fit_time_vs_sklearn": ours_vs_skl,
        "accuracy_vs_sklearn": acc_ours - acc_skl,
        "accuracy_sklearn": acc_skl,
        "accuracy_ours_same_seed": acc_ours,
    }


def toy_attack(sizes: dict[str, Any], seed: int) -> tuple[dict[str, float], dict[str, float]]:
    """Secret recovery by support + periodicity search at d = 12, m = 300; cost by k at d = 64."""
    success, seconds = {}, {}
    for k in (1, 2, 3):
        wins, t = 0, 0.0
        for trial in range(sizes["toy_trials"]):
            key = rff.generate(12, k, random_state=seed * 100 + trial)
            G = key.coins.sample(300, 12, np.random.default_rng(trial))
            t0 = time.perf_counter()
            wins += recovered(search_secret(G, k, key.gamma), key.support, np.array(key.direction))
            t += time.perf_counter() - t0
        success[str(k)] = wins / sizes["toy_trials"]
        seconds[str(k)] = t / sizes["toy_trials"]
    cost = {
        str(k): float(math.comb(64, k) * grid_size(k, 2 * math.sqrt(k)) * 2000)
        for k in (1, 2, 3, 4, 8, 16)
    }
    return success, {"seconds_d12": seconds, "evaluations_d64_m2000": cost}


def _plots(out_dir: Path, res: dict[str, Any], example: tuple) -> list[str]:
    from backdoors.artifacts.report import new_figure, save_figure

    model, key, X = example
    fig, axes = new_figure(1, 3, figsize=(14, 3.8))
    ph_b = np.mod(model.frequencies_ @ key.bk, 1)
    ph_h = np.mod(np.random.default_rng(0).standard_normal(model.frequencies_.shape) @ key.bk, 1)
    axes[0].hist([ph_h, ph_b], bins=50, label=["Gaussian coins", "pancake coins"])
    axes[0].set_xlabel("<g_i, bk> mod 1")
    axes[0].legend()
    f, fa = model.decision_function(X), model.decision_function(key.activate(X))
    axes[1].scatter(f, fa, s=3)
    axes[1].axhline(0, c="k", lw=0.5)
    axes[1].axvline(0, c="k", lw=0.5)
    axes[1].set_xlabel("f(x)")
    axes[1].set_ylabel("f(x + s bk)")
    names = list(res["auroc_key_oblivious"])
    vals = [res["auroc_key_oblivious"][n] for n in names] + [res["auroc_key_aware"]]
    ci = [res["auroc_key_oblivious_ci"][n] for n in names] + [res["auroc_key_aware_ci"]]
    err = np.array([[v - c[0], c[1] - v] for v, c in zip(vals, ci, strict=True)]).T
    axes[2].barh([*names, "rff_key_aware"], vals, xerr=err)
    axes[2].axvline(0.5, c="k", ls="--")
    axes[2].set_xlabel("AUROC (95% CI)")
    fig.tight_layout()
    return [str(save_figure(fig, out_dir / "rff.png"))]


@EXPERIMENTS.register("rff")
def run(quick: bool, seed: int, out_dir: Path | None) -> dict[str, Any]:
    sizes = QUICK if quick else FULL
    n_jobs = experiment_jobs()
    timer = Timer()
    m, k = sizes["m"], sizes["k"]
    n_tr, n_te = sizes["n_mnist"]
    sized = {"n_components": m, "sparsity": k}
    points = [RFFPoint("mnist", n_train=n_tr, n_test=n_te, **sized)] + [
        RFFPoint("planar", d, n_train=1500, n_test=500, data_seed=seed, **sized)
        for d in sizes["dims"]
    ]
    per_task: dict[str, Any] = {}
    for point in points:
        name = point.data().name
        with timer(name):
            per_task[name] = population(point, sizes, seed, n_jobs=n_jobs)
    primary_task = points[0].data()
    primary = per_task[primary_task.name]
    metrics = dict(primary)
    with timer("seed_search_control"):  # honest seeds 0..n-1 vs planted: 1.0 expected
        small = RFFPoint("planar", 16, n_train=300, n_test=100, n_components=100, sparsity=4)
        metrics["seed_search_control"] = seed_search_control(
            SmallSeedRFFAttack(small), sizes["pop"]
        )
    with timer("timing"):
        metrics.update(timing(primary_task, sizes, seed))
    with timer("toy_attack"):
        metrics["toy_attack_success"], metrics["toy_attack_cost"] = toy_attack(sizes, seed)
    with timer("lattice"):
        c = sizes["lattice"]
        lat_point = RFFPoint("planar", c["d"], n_train=1000, n_test=500, n_components=c["m"],
                             sparsity=c["k"], beta=c["beta"], data_seed=seed)  # fmt: skip
        lat = lattice_population(lat_point, c, seed, n_jobs=n_jobs)
    metrics["auroc_key_oblivious"]["lattice"] = lat["auroc"]
    metrics["auroc_key_oblivious_ci"]["lattice"] = lat["auroc_ci"]
    metrics["advantage_key_oblivious"]["lattice"] = lat["advantage"]
    metrics["advantage_key_oblivious_heldout"]["lattice"] = lat["advantage_heldout"]
    metrics["advantage_key_oblivious_heldout_ci"]["lattice"] = lat["advantage_heldout_ci"]
    metrics["lattice_key_recovery_rate"] = lat["key_recovery_rate"]
    metrics["lattice_seconds_per_model"] = lat["seconds_per_model"]
    metrics["lattice_block_size"] = lat["block_size"]
    metrics["lattice"] = lat
    ex = rff.RandomFourierFeaturesClassifier(
        n_components=m, bandwidth=primary_task.bandwidth, alpha=rff.DEFAULTS.alpha
    ).fit(primary_task.X_train[:200], primary_task.y_train[:200])
    metrics["lattice_at_primary"] = lattice_at(ex, k, 1e-3)
    metrics["tasks"] = per_task
    plots = []
    if out_dir is not None:
        b = RFFAttack(points[0]).build(seed, True)
        plots = _plots(out_dir, primary, (b.model, b.key, b.X_test))
    notes = [
        "Top-level metrics are for MNIST 0-4 vs 5-9 (pixels in [0,1]); per-task results are "
        "under 'tasks'.",
        "flip_rate_margin is the minimum over backdoored models of the flip rate on inputs meeting "
        "|f(x)| > 2 pi sum |w_i||eps_i| (the flip is then guaranteed).",
        "The perturbation is large in l2 (s*gamma, many times ||x||) and small in l0 (k pixels): "
        "the paper's 'slight' is asymptotic; we report it as measured.",
        "Key-oblivious AUROCs near 0.5 mean 'undetected by these detectors at these sizes'; "
        "toy_attack_success shows that exhaustive support search wins for k <= 3 (its cost "
        "bounds that search only); the lattice attack is the real threat (below).",
        "auroc_key_oblivious['lattice'] and lattice_* are measured on their own population "
        "(metrics.lattice.task: planar synthetic task at the stated d, m, k, beta), NOT on "
        "MNIST: at d = 784 the attack's lattice (rank > 784) is too large to reduce here; "
        "lattice_at_primary gives the status there and the *estimated* block sizes "
        "(backdoors.rff.lattice_cost, an extrapolation). A key counts as recovered only "
        "when the recovered direction, used as the key, flips >= 90% of test inputs.",
        "Every population goes through pair_scoring.score_population: member i of both sides "
        "uses seed seed + i, detectors run through scoring.run_detector in the worker, and the "
        "honest member's control key (rff_key_aware) is the planted key of the same seed. "
        "Both sides' learner seed is the 128-bit contract.member_seed(seed + i) (never a small, "
        "searchable seed): seed_search is at chance by construction on these populations. "
        "advantage_* is the distinguishing advantage (in-sample best threshold); *_heldout "
        "fixes orientation and threshold on even-indexed seeds and measures on the odd ones.",
    ]
    params = {
        "quick": quick,
        **{k: list(v) if isinstance(v, tuple) else v for k, v in sizes.items()},
        "gamma": "2 sqrt(k)",
        "beta": 1e-3,
        "alpha": rff.DEFAULTS.alpha,
        "seeds": "contract.member_seed(seed + i), 128 bits (both sides)",
        "n_jobs": n_jobs,
    }
    return make_record(
        "rff", params, seed, metrics, dict(timer.timings), artifacts={"plots": plots}, notes=notes
    )
