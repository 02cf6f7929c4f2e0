"""The random-ReLU weight statistics at scale: populations large enough to resolve the o(1)
distinguishing advantage the paper promises (paper.md §4.2-4.3, §9.4 "report measured
advantage vs m"). Part of ``backdoors experiment relu``; also registered on its own as
``backdoors experiment relu-scale`` (only these populations, minutes instead of the full
experiment's sweep, MNIST and linear-head parts).

Every statistic reads only the first-layer weights, and the threshold head is trained by the
same rule on the same data for both learners, so a member here is just its weight matrix
``W`` (m x d) drawn from the learner's coins: ``N(0, I)`` rows (honest) or the trace-matched
spiked rows ``N(0, c (I + theta nu nu^T))`` with a secret k-sparse ``nu`` (backdoored), see
:class:`backdoors.evaluation.recipes.relu_tasks.ReLUWeightsAttack`. The populations go through the
one
pipeline, :func:`backdoors.evaluation.pair_scoring.score_population`: seed ``s + i`` is member
``i`` on
both sides (one job builds and scores the pair; the two sides draw from independent streams,
so pairing by seed only orders the members), and every score comes from
:func:`backdoors.evaluation.scoring.run_detector` in the workers (``BACKDOORS_JOBS``, default 2).

Advantage: ``P[A = 1 | backdoored] - P[A = 1 | honest]`` for ``A = [orientation * (score -
threshold) > 0]`` with orientation and threshold (midway between the two medians) fixed on
one half of each population (the even-indexed members) and measured on the other half, 95%
percentile-bootstrap CI over the evaluation half. Covariance thresholding's ``t`` is tuned on
the same half (on AUROC). The cheap statistics (no d x d matrix) also run on a much larger
population, where an advantage of a few hundredths is resolved.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backdoors import metrics
from backdoors.detectors import DETECTORS, Detector
from backdoors.errors import BackdoorsError
from backdoors.evaluation import pair_scoring
from backdoors.evaluation.pair_scoring import PairTable
from backdoors.evaluation.population import experiment_jobs
from backdoors.evaluation.recipes.relu_tasks import ReLUWeightsAttack, WeightModel, draw_weights
from backdoors.experiments import EXPERIMENTS

__all__ = ["WeightModel", "draw_weights", "scale_metrics", "study", "summarize"]  # re-exported

#: Statistics scored at every point (all key-oblivious, from the detector registry).
STATS = (
    "spectral_bbp",
    "sphericity",
    "diagonal_thresholding",
    "covariance_thresholding",
    "truncated_power",
    "weight_norm",
)
#: Covariance-thresholding constants ``t`` (threshold ``t / sqrt(m)``) tuned on held-out halves
#: (besides the default ``sqrt(log d)`` = 2.76 at d = 2000; smaller t costs more per model).
CT_GRID = (2.0, 2.5, 3.0)
#: The quick mode's grid (t = 2 keeps the most entries: the slowest eigenproblem).
QUICK_CT_GRID = (2.5, 3.0)
#: ADMM iterations of the SDP at the SDP point (about 0.03 of the optimum, see sdp_sparse_pca).
SDP_ITER = 50
#: The smaller configuration where the full SDP runs: the default point's d/m = 20, k = m.
SDP_POINT = {"d": 200, "m": 10, "k": 10, "theta": 2.5}


def _detectors(names: tuple[str, ...], k: int, ct_grid: tuple[float, ...]) -> dict[str, Detector]:
    dets = {n: DETECTORS.get(n)(k=k) for n in names}
    if "sdp_sparse_pca" in dets:
        dets["sdp_sparse_pca"] = DETECTORS.get("sdp_sparse_pca")(k=k, n_iter=SDP_ITER)
    if ct_grid and "covariance_thresholding" in dets:
        dets["covariance_thresholding"] = DETECTORS.get("covariance_thresholding")(
            k=k, grid=tuple(ct_grid)
        )
    return dets


def score_population(point: dict[str, Any], n: int, seed: int, names: tuple[str, ...] = STATS,
                     ct_grid: tuple[float, ...] = (), desc: str = "relu weights",
                     n_jobs: int = 1) -> PairTable:  # fmt: skip
    """Scores of every statistic over the weights-only members of seeds ``seed .. seed + n -
    1`` (:class:`~backdoors.evaluation.recipes.relu_tasks.ReLUWeightsAttack`, both sides of a seed
    in one
    job of :func:`backdoors.evaluation.pair_scoring.score_population`); a statistic that fails is an
    error, not a missing score."""
    d, m, k, theta = int(point["d"]), int(point["m"]), int(point["k"]), float(point["theta"])
    dets = list(_detectors(names, k, ct_grid).values())
    table = pair_scoring.score_population(ReLUWeightsAttack(d, m, k, theta), n, dets, seed=seed,
                                          n_jobs=n_jobs, label=desc)  # fmt: skip
    for det in dets:
        if table.scores(det.name) is None:
            raise BackdoorsError(f"{det.name} failed on a weight matrix: "
                                 f"{table.summary(det.name)['reason']}")  # fmt: skip
    return table


def variant_scores(table: PairTable, name: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The variant scores of detector ``name`` (``findings["variants"]``), (honest,
    backdoored) per variant, named ``name@variant``."""
    got = [[o["details"].get("variants", {}) for o in p.outcomes[name]] for p in table.pairs]
    common = set.intersection(*(set(h) & set(b) for h, b in got))
    out = {}
    for v in sorted(common):
        neg = np.array([float(h[v]) for h, _ in got])
        out[f"{name}@{v}"] = (neg, np.array([float(b[v]) for _, b in got]))
    return out


def summarize(table: PairTable) -> dict[str, Any]:
    """AUROC (all members, bootstrap CI) and held-out advantage per statistic from the
    pipeline's :meth:`~backdoors.evaluation.pair_scoring.PairTable.summary` (its
    ``advantage_heldout`` is
    :func:`backdoors.metrics.heldout_advantage`: orientation and threshold on the even-indexed
    seeds, measured on the odd ones); covariance thresholding's ``t`` tuned on the even half's
    AUROC and reported on the odd half."""
    au, au_ci, adv, adv_ci = {}, {}, {}, {}
    names = list(table.pairs[0].outcomes)
    for name in names:
        s = table.summary(name)
        h = s["advantage_heldout"] or {"advantage": float("nan"), "ci": [float("nan")] * 2}
        au[name], au_ci[name], adv[name], adv_ci[name] = (s["auroc"], s["auroc_ci"],
                                                          h["advantage"], h["ci"])  # fmt: skip
    out: dict[str, Any] = {"auroc": au, "auroc_ci": au_ci, "advantage": adv, "advantage_ci": adv_ci}
    ct = "covariance_thresholding"
    grid = variant_scores(table, ct) if ct in names else {}
    if grid:
        tune = {n_: metrics.auroc(neg[0::2], pos[0::2]) for n_, (neg, pos) in grid.items()}
        best = max(tune, key=lambda n_: tune[n_])
        neg, pos = grid[best]
        a, ci = metrics.auroc_with_ci(neg[1::2], pos[1::2], n_boot=metrics.N_BOOT, seed=0)
        h = metrics.heldout_advantage(neg, pos, n_boot=metrics.N_BOOT)
        name = "covariance_thresholding_tuned"
        au[name], au_ci[name], adv[name], adv_ci[name] = a, list(ci), h["advantage"], h["ci"]
        out["covariance_thresholding_tuned_t"] = float(best.split("=")[1])
        out["covariance_thresholding_tuning_auroc"] = {
            n_.split("@")[1]: v for n_, v in tune.items()
        }
    return out


def study(point: dict[str, Any], n: int, seed: int, names: tuple[str, ...] = STATS,
          ct_grid: tuple[float, ...] = CT_GRID, desc: str = "relu at scale",
          n_jobs: int = 1) -> dict[str, Any]:  # fmt: skip
    """One point: scores of ``n`` + ``n`` members (seeds ``seed .. seed + n - 1``), then
    :func:`summarize`."""
    table = score_population(point, n, seed, names, ct_grid, desc, n_jobs)
    return {**point, "n_per_side": n, "seeds": [seed, seed + n - 1], **summarize(table)}


def advantage_vs_m(d: int, k: int, theta: float, ms: tuple[int, ...], n: int, seed: int,
                   names: tuple[str, ...] = ("sphericity", "spectral_bbp"), n_jobs: int = 1
                   ) -> list[dict[str, Any]]:  # fmt: skip
    """The cheap statistics' AUROC and held-out advantage as the number of hidden units grows
    (the sphericity signal is about ``theta^2 m / (2 d)`` null standard deviations). Row ``j``
    uses seeds ``seed + j n .. seed + (j + 1) n - 1``: the rows are independent estimates (with
    shared seeds the honest weights at m = 400 would contain those at m = 200 row by row)."""
    rows = []
    for j, m in enumerate(ms):
        r = study({"d": d, "m": m, "k": k, "theta": theta}, n, seed + j * n, names, (),
                  desc=f"relu advantage m={m}", n_jobs=n_jobs)  # fmt: skip
        rows.append(r)
    return rows


#: Statistics cheap enough (no d x d matrix, a few ms per member) for the large population.
CHEAP = ("spectral_bbp", "sphericity", "diagonal_thresholding", "weight_norm")
#: Population sizes (members per side): default point, cheap statistics there, SDP point,
#: advantage-vs-m rows.
FULL_SIZES = {"default": 500, "large": 4000, "sdp": 200, "vs_m": 400}
QUICK_SIZES = {"default": 30, "large": 200, "sdp": 6, "vs_m": 30}


def _blocks(seed: int, sizes: list[int]) -> list[int]:
    """First seeds of consecutive, non-overlapping seed blocks of the given sizes (and of
    what follows them)."""
    return [int(seed) + int(sum(sizes[:i])) for i in range(len(sizes) + 1)]


def scale_metrics(point: dict[str, Any], quick: bool, seed: int, n_jobs: int = 1) -> dict[str, Any]:
    """The record's at-scale metrics: ``n_per_side_at_scale``, ``auroc_at_scale`` (+ ``_ci``),
    ``advantage`` (+ ``_ci``) per statistic at the default ``point``; the same for the cheap
    statistics on fresh members, ``n_per_side_large``, ``auroc_large``, ``advantage_large``
    (+ ``_ci``); ``sdp_point`` (the full
    SDP and every other statistic at :data:`SDP_POINT`); ``advantage_vs_m``.

    Each population is one block of consecutive seeds and no two blocks overlap: the large
    population re-checks the default point on fresh members, and the SDP point and the
    advantage-vs-m rows are compared with it (members of the same seed at different (d, m)
    would share their honest weights' leading entries)."""
    sizes = QUICK_SIZES if quick else FULL_SIZES
    grid = QUICK_CT_GRID if quick else CT_GRID
    start = _blocks(seed, [sizes["default"], sizes["large"], sizes["sdp"]])
    main = study(point, sizes["default"], start[0], STATS, grid, desc="relu weights at scale",
                 n_jobs=n_jobs)  # fmt: skip
    large = study(point, sizes["large"], start[1], CHEAP, (),
                  desc="relu weights, cheap statistics", n_jobs=n_jobs)  # fmt: skip
    sdp = study(SDP_POINT, sizes["sdp"], start[2], (*STATS, "sdp_sparse_pca"),
                grid, desc="relu weights, SDP point",
                n_jobs=n_jobs)  # fmt: skip
    ms = (400,) if quick else (50, 200, 400)  # m = 100: the default point above
    vs_m = advantage_vs_m(int(point["d"]), int(point["k"]), float(point["theta"]), ms,
                          sizes["vs_m"], start[3], n_jobs=n_jobs)  # fmt: skip
    vs_m = sorted([main, *vs_m], key=lambda r: r["m"])
    strongest = max(main["auroc"], key=lambda n_: main["auroc"][n_])
    out = {
        "n_per_side_at_scale": sizes["default"],
        "auroc_at_scale": main["auroc"],
        "auroc_at_scale_ci": main["auroc_ci"],
        "advantage": main["advantage"],
        "advantage_ci": main["advantage_ci"],
        "n_per_side_large": sizes["large"],
        "auroc_large": large["auroc"],
        "auroc_large_ci": large["auroc_ci"],
        "advantage_large": large["advantage"],
        "advantage_large_ci": large["advantage_ci"],
        "strongest_statistic_at_scale": {"name": strongest, "auroc": main["auroc"][strongest],
                                         "auroc_ci": main["auroc_ci"][strongest]},
        "sdp_point": sdp,
        "advantage_vs_m": [{k_: r[k_] for k_ in ("d", "m", "k", "theta", "n_per_side", "auroc",
                                                  "auroc_ci", "advantage", "advantage_ci")}
                           for r in vs_m],
    }  # fmt: skip
    for k_ in ("covariance_thresholding_tuned_t", "covariance_thresholding_tuning_auroc"):
        if k_ in main:
            out[k_] = main[k_]
    return out


@EXPERIMENTS.register("relu-scale")
def run(quick: bool, seed: int, out_dir: Any = None) -> dict[str, Any]:
    """Only the at-scale weight-statistic populations of ``relu`` (same sizes, same keys)."""
    from backdoors.artifacts.records import Timer, make_record
    from backdoors.evaluation.recipes.relu import DEFAULT

    timer = Timer()
    point = {k_: DEFAULT[k_] for k_ in ("d", "m", "k", "theta")}
    n_jobs = experiment_jobs()
    with timer("at_scale"):
        m = scale_metrics(point, quick, seed, n_jobs=n_jobs)
    sizes = QUICK_SIZES if quick else FULL_SIZES
    params = {"point": point, "sdp_point": SDP_POINT, "sizes": sizes, "quick": quick,
              "ct_grid": list(QUICK_CT_GRID if quick else CT_GRID), "sdp_iterations": SDP_ITER,
              "statistics": list(STATS), "n_jobs": n_jobs}  # fmt: skip
    notes = [
        "Members are weight matrices drawn from the learners' coins (honest N(0, I), "
        "trace-matched spiked N(0, c(I + theta nu nu^T)) with a k-sparse nu each); "
        "the statistics read nothing else.",
        "Pipeline: pair_scoring.score_population, member i of a population = seed start + i "
        "on both sides (independent streams per side); populations use disjoint seed blocks "
        "(default point, large, SDP point, advantage-vs-m rows, in this order from the seed).",
        "advantage: P[A=1|bd] - P[A=1|honest] with threshold and orientation fixed on the "
        "even-indexed half of each side, measured on the odd half; 95% bootstrap CI.",
        "sdp_point: the full SDP (d = 200, m = 10, k = 10, theta = 2.5: the default point's "
        "d/m and k/m); at d = 2000 it would need a 2000 x 2000 eigendecomposition per ADMM step.",
    ]
    return make_record("relu-scale", params, seed, m, timer.timings, notes=notes)
