"""The random-ReLU weight statistics at scale: populations large enough to resolve the o(1)
distinguishing advantage the paper promises (paper.md §4.2-4.3, §9.4 "report measured
advantage vs m"). Part of ``backdoors experiment relu``; also registered on its own as
``backdoors experiment relu-scale`` (only these populations, minutes instead of the full
experiment's sweep, MNIST and linear-head parts).

Every statistic reads only the first-layer weights, and the threshold head is trained by the
same rule on the same data for both learners, so a member here is just its weight matrix
``W`` (m x d) drawn from the learner's coins: ``N(0, I)`` rows (honest) or the trace-matched
spiked rows ``N(0, c (I + theta nu nu^T))`` with a fresh secret k-sparse ``nu`` (backdoored).
Members are independent (fresh streams per member and side, no honest/backdoored pairing).
Scores go through :func:`backdoors.scoring.run_detector`, like every other experiment.

Advantage: ``P[A = 1 | backdoored] - P[A = 1 | honest]`` for ``A = [orientation * (score -
threshold) > 0]`` with orientation and threshold (midway between the two medians) fixed on
one half of each population (the even-indexed members) and measured on the other half, 95%
percentile-bootstrap CI over the evaluation half. Covariance thresholding's ``t`` is tuned on
the same half (on AUROC). The cheap statistics (no d x d matrix) also run on a much larger
population, where an advantage of a few hundredths is resolved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backdoors import metrics, relu
from backdoors.detectors import DETECTORS, Detector, Evidence
from backdoors.errors import BackdoorsError
from backdoors.experiments import EXPERIMENTS
from backdoors.progress import track
from backdoors.sampling import GaussianCoins, random_unit, sparse_support
from backdoors.scoring import run_detector

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
#: ADMM iterations of the SDP at the SDP point (about 0.03 of the optimum, see sdp_sparse_pca).
SDP_ITER = 50
#: The smaller configuration where the full SDP runs: the default point's d/m = 20, k = m.
SDP_POINT = {"d": 200, "m": 10, "k": 10, "theta": 2.5}


@dataclass
class WeightModel:
    """A population member as the weight statistics see it: only ``weights_``."""

    weights_: np.ndarray = field(repr=False)


def draw_weights(d: int, m: int, k: int, theta: float, backdoored: bool,
                 rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """The learner's weights: honest ``N(0, I)`` coins or, with a fresh secret ``nu`` from
    ``rng``, the trace-matched spiked coins :func:`backdoors.relu.spiked_coins`."""
    if not backdoored:
        return GaussianCoins().sample(m, d, rng)
    coins = relu.spiked_coins(sparse_support(d, k, rng), random_unit(k, rng), theta)
    return coins.sample(m, d, rng)


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
                     ct_grid: tuple[float, ...] = (), desc: str = "relu weights"
                     ) -> dict[str, tuple[np.ndarray, np.ndarray]]:  # fmt: skip
    """Scores (honest, backdoored) of every statistic over ``n`` members per side."""
    d, m, k, theta = int(point["d"]), int(point["m"]), int(point["k"]), float(point["theta"])
    dets = _detectors(names, k, ct_grid)
    out: dict[str, tuple[list[float], list[float]]] = {n_: ([], []) for n_ in dets}
    out.update({f"covariance_thresholding@t={t:g}": ([], []) for t in ct_grid})
    for i in track(range(n), desc, total=n):
        for side in (0, 1):
            rng = np.random.default_rng([seed, 7, d, m, k, i, side])
            model = WeightModel(draw_weights(d, m, k, theta, bool(side), rng))
            for name, det in dets.items():
                res = run_detector(det, model, Evidence(seed=seed))
                if not res.ok:
                    raise BackdoorsError(f"{name} failed on a weight matrix: {res.reason}")
                out[name][side].append(res.score)
                for v, val in res.details.get("variants", {}).items():
                    out[f"{name}@{v}"][side].append(val)
    return {n_: (np.asarray(a), np.asarray(b)) for n_, (a, b) in out.items()}


def summarize(scores: dict[str, tuple[np.ndarray, np.ndarray]], n_boot: int = 1000,
              seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """AUROC (all members) and held-out advantage per statistic; covariance thresholding's
    ``t`` tuned on the even half's AUROC and reported on the odd half."""
    au, au_ci, adv, adv_ci = {}, {}, {}, {}
    for name, (neg, pos) in scores.items():
        if "@" in name:
            continue
        a, ci = metrics.auroc_with_ci(neg, pos, n_boot=n_boot, seed=seed)
        h = metrics.heldout_advantage(neg, pos, n_boot=n_boot, seed=seed)
        au[name], au_ci[name], adv[name], adv_ci[name] = a, list(ci), h["advantage"], h["ci"]
    out: dict[str, Any] = {"auroc": au, "auroc_ci": au_ci, "advantage": adv, "advantage_ci": adv_ci}
    grid = {n_: v for n_, v in scores.items() if n_.startswith("covariance_thresholding@")}
    if grid:
        tune = {n_: metrics.auroc(neg[0::2], pos[0::2]) for n_, (neg, pos) in grid.items()}
        best = max(tune, key=lambda n_: tune[n_])
        neg, pos = grid[best]
        a, ci = metrics.auroc_with_ci(neg[1::2], pos[1::2], n_boot=n_boot, seed=seed)
        h = metrics.heldout_advantage(neg, pos, n_boot=n_boot, seed=seed)
        name = "covariance_thresholding_tuned"
        au[name], au_ci[name], adv[name], adv_ci[name] = a, list(ci), h["advantage"], h["ci"]
        out["covariance_thresholding_tuned_t"] = float(best.split("=")[1])
        out["covariance_thresholding_tuning_auroc"] = {
            n_.split("@")[1]: v for n_, v in tune.items()
        }
    return out


def study(point: dict[str, Any], n: int, seed: int, names: tuple[str, ...] = STATS,
          ct_grid: tuple[float, ...] = CT_GRID, n_boot: int = 1000, desc: str = "relu at scale"
          ) -> dict[str, Any]:  # fmt: skip
    """One point: scores of ``n`` + ``n`` members, then :func:`summarize`."""
    scores = score_population(point, n, seed, names, ct_grid, desc)
    return {**point, "n_per_side": n, **summarize(scores, n_boot, seed)}


def advantage_vs_m(d: int, k: int, theta: float, ms: tuple[int, ...], n: int, seed: int,
                   names: tuple[str, ...] = ("sphericity", "spectral_bbp")
                   ) -> list[dict[str, Any]]:  # fmt: skip
    """The cheap statistics' AUROC and held-out advantage as the number of hidden units grows
    (the sphericity signal is about ``theta^2 m / (2 d)`` null standard deviations)."""
    rows = []
    for m in ms:
        r = study({"d": d, "m": m, "k": k, "theta": theta}, n, seed, names, (), 500,
                  desc=f"relu advantage m={m}")  # fmt: skip
        rows.append(r)
    return rows


#: Statistics cheap enough (no d x d matrix, a few ms per member) for the large population.
CHEAP = ("spectral_bbp", "sphericity", "diagonal_thresholding", "weight_norm")
#: Population sizes (members per side): default point, cheap statistics there, SDP point,
#: advantage-vs-m rows.
FULL_SIZES = {"default": 500, "large": 4000, "sdp": 200, "vs_m": 400}
QUICK_SIZES = {"default": 30, "large": 200, "sdp": 6, "vs_m": 30}


def scale_metrics(point: dict[str, Any], quick: bool, seed: int) -> dict[str, Any]:
    """The record's at-scale metrics: ``n_per_side_at_scale``, ``auroc_at_scale`` (+ ``_ci``),
    ``advantage`` (+ ``_ci``) per statistic at the default ``point``; the same for the cheap
    statistics on fresh members, ``n_per_side_large``, ``auroc_large``, ``advantage_large``
    (+ ``_ci``); ``sdp_point`` (the full
    SDP and every other statistic at :data:`SDP_POINT`); ``advantage_vs_m``."""
    sizes = QUICK_SIZES if quick else FULL_SIZES
    main = study(point, sizes["default"], seed, STATS, () if quick else CT_GRID,
                 200 if quick else 1000, desc="relu weights at scale")  # fmt: skip
    large = study(point, sizes["large"], seed + 1, CHEAP, (), 500 if not quick else 200,
                  desc="relu weights, cheap statistics")  # fmt: skip
    sdp = study(SDP_POINT, sizes["sdp"], seed, (*STATS, "sdp_sparse_pca"), () if quick else CT_GRID,
                200 if quick else 1000, desc="relu weights, SDP point")  # fmt: skip
    ms = (400,) if quick else (50, 200, 400)  # m = 100: the default point above
    vs_m = advantage_vs_m(int(point["d"]), int(point["k"]), float(point["theta"]), ms,
                          sizes["vs_m"], seed)  # fmt: skip
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
    from backdoors.attacks.relu import DEFAULT
    from backdoors.records import Timer, make_record

    timer = Timer()
    point = {k_: DEFAULT[k_] for k_ in ("d", "m", "k", "theta")}
    with timer("at_scale"):
        m = scale_metrics(point, quick, seed)
    sizes = QUICK_SIZES if quick else FULL_SIZES
    params = {"point": point, "sdp_point": SDP_POINT, "sizes": sizes, "quick": quick,
              "ct_grid": [] if quick else list(CT_GRID), "sdp_iterations": SDP_ITER,
              "statistics": list(STATS)}  # fmt: skip
    notes = [
        "Members are weight matrices drawn from the learners' coins (honest N(0, I), "
        "trace-matched spiked N(0, c(I + theta nu nu^T)) with a fresh k-sparse nu each); "
        "the statistics read nothing else.",
        "advantage: P[A=1|bd] - P[A=1|honest] with threshold and orientation fixed on the "
        "even-indexed half of each side, measured on the odd half; 95% bootstrap CI.",
        "sdp_point: the full SDP (d = 200, m = 10, k = 10, theta = 2.5: the default point's "
        "d/m and k/m); at d = 2000 it would need a 2000 x 2000 eigendecomposition per ADMM step.",
    ]
    return make_record("relu-scale", params, seed, m, timer.timings, notes=notes)
