"""Measurement helpers for the random-ReLU experiment: one population at one grid point, the
(theta, k, m, d) sweep, and the "where does it hide" picture. No registration here.

Every population goes through the one evaluation pipeline,
:func:`backdoors.evaluation.pair_scoring.score_population`: member ``i`` of a population scored
with seed
``s`` is seed ``s + i`` (honest and backdoored member of a seed share data and estimator), the
detectors run through :func:`backdoors.evaluation.scoring.run_detector` inside the workers, and the
flip
rates are the pipeline's per-pair measure (:func:`measure_flips`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from backdoors import metrics, relu
from backdoors.detectors import DETECTORS
from backdoors.detectors.sparse_pca import KEY_OBLIVIOUS
from backdoors.errors import BackdoorsError
from backdoors.evaluation.pair_scoring import score_population
from backdoors.evaluation.population import experiment_jobs
from backdoors.evaluation.recipes import Built
from backdoors.evaluation.recipes.relu import ReLUAttack, ReLUPoint
from backdoors.evaluation.recipes.relu_tasks import ReLUMnistAttack

#: Documented margin: flip rates are measured on inputs with ``tau (1 - MARGIN) <= s(x) < tau``
#: (score at most 20% below the threshold, on the side the backdoor pushes away from). At the
#: default point the nominal backdoor gain sqrt(1 + (1 + theta) 0.4^2) - 1 = 0.25 exceeds it.
MARGIN = 0.2
#: A detector "detects" at a grid point when its AUROC reaches this.
DETECT = 0.9
#: Stream tag of the random-direction control: member seed ``s`` draws its random unit vectors
#: from ``default_rng([s, CONTROL_STREAM])``, apart from its data (``[s, 2]``) and its honest
#: weights (``[s, 0]``, which is also ``default_rng(s)``: numpy pads seeds with zeros).
CONTROL_STREAM = 99


def flip_rates(model: Any, key: relu.ReLUKey, X: np.ndarray, rng: np.random.Generator,
               margin: float = MARGIN) -> dict[str, Any]:  # fmt: skip
    """Flip rates of ``x + lambda nu`` and of ``x + lambda r`` (r uniform unit, fresh per
    input) over inputs whose score lies within ``margin`` (relative) below ``tau``; also of
    ``x +- lambda v`` with ``v`` the top right singular vector of the public weights (a
    key-less white-box perturbation; either sign counts)."""
    tau = model.threshold_
    s = model.score_relu(X)
    sel = (s < tau) & (s >= tau * (1 - margin))
    Xs = X[sel]
    if len(Xs) == 0:
        return {"n": 0, "backdoor": np.nan, "random": np.nan}
    R = rng.standard_normal(Xs.shape)
    R /= np.linalg.norm(R, axis=1, keepdims=True)
    base = model.predict(Xs)
    fb = model.predict(key.activate(Xs)) != base
    fr = model.predict(Xs + key.lam * R) != base
    W = model.weights_
    A, u = W @ W.T, np.ones(len(W))
    for _ in range(100):  # power iteration: (near-)top left singular vector of W
        u = A @ u
        u /= np.linalg.norm(u)
    v = W.T @ u
    v /= np.linalg.norm(v)
    fs = (model.predict(Xs + key.lam * v) != base) | (model.predict(Xs - key.lam * v) != base)
    return {"n": int(sel.sum()), "backdoor": float(fb.mean()), "random": float(fr.mean()),
            "gap": (tau - s[sel]) / tau, "fb": fb, "fr": fr, "fs": fs}  # fmt: skip


def jobs() -> int:
    """Workers of the relu experiments' population scoring: ``BACKDOORS_JOBS`` (default 2),
    as in the detectors experiment."""
    return experiment_jobs()


def measure_flips(honest: Built, backdoored: Built) -> dict[str, Any]:
    """Per pair, in the worker (:data:`backdoors.evaluation.pair_scoring.Measure`): the backdoored
    member's :func:`flip_rates` on its test inputs (per-input booleans of the margin set) and
    the perturbation's median l0 and mean ``||lambda nu|| / ||x||``. The random directions of
    member seed ``s`` come from ``default_rng([s, CONTROL_STREAM])``."""
    b = backdoored
    f = flip_rates(b.model, b.key, b.X_test, np.random.default_rng([b.seed, CONTROL_STREAM]))
    norms = metrics.perturbation_norms(b.X_test, b.activate(b.X_test))
    none = np.zeros(0, dtype=bool)
    return {"n_margin": f["n"], "fb": f.get("fb", none), "fr": f.get("fr", none),
            "fs": f.get("fs", none), "gap": f.get("gap", np.zeros(0)),
            "l0": float(np.median(norms["l0"])),
            "l2x": float(np.mean(norms["l2_over_x"]))}  # fmt: skip


#: Detectors of the learner's coins (not told ``k``) scored on every population: the seed
#: search, at chance on fair populations (both sides seeded by ``contract.member_seed``).
COIN_DETECTORS = ("seed_search",)


def population(point: ReLUPoint | ReLUMnistAttack, n: int, seed: int,
               detectors: tuple[str, ...] = KEY_OBLIVIOUS, desc: str = "relu population", *,
               n_jobs: int = 1) -> dict[str, Any]:  # fmt: skip
    """``n`` honest + ``n`` backdoored members, seeds ``seed .. seed + n - 1``, through
    :func:`backdoors.evaluation.pair_scoring.score_population`: one job per seed builds both members
    (:class:`ReLUAttack` at ``point``, or the MNIST recipe), scores ``detectors`` and the
    key-aware control (told ``k``) and the :data:`COIN_DETECTORS` through
    :func:`backdoors.evaluation.scoring.run_detector` (the honest
    member of seed ``s`` with the key of the backdoored member of seed ``s``) and runs
    :func:`measure_flips`. Returns accuracies, scores, flip rates, norms and per detector the
    pipeline's summary (AUROC, CI, TPR at 5% FPR, advantage in-sample and held-out)."""
    attack = ReLUAttack(point) if isinstance(point, ReLUPoint) else point
    dets = [DETECTORS.get(name)(k=point.k) for name in (*detectors, "relu_key_aware")]
    dets += [DETECTORS.get(name)() for name in COIN_DETECTORS]
    table = score_population(attack, n, dets, seed=seed, n_jobs=n_jobs, measure=measure_flips,
                             label=desc)  # fmt: skip
    summary, scores = {}, {}
    for det in dets:
        summary[det.name] = table.summary(det.name)
        if summary[det.name]["status"] != "scored":
            raise BackdoorsError(f"{det.name} did not score every member: "
                                 f"{summary[det.name]['reason']}")  # fmt: skip
        scores[det.name] = table.scores(det.name)
    acc_h, acc_b = table.accuracies()
    cat = {name: np.concatenate(table.measured(name)) for name in ("fb", "fr", "fs", "gap")}
    return {"acc_h": acc_h, "acc_b": acc_b, "scores": scores, "summary": summary, **cat,
            "n_margin": table.measured("n_margin"), "l0": np.array(table.measured("l0")),
            "l2x": np.array(table.measured("l2x")), "seeds": [p.seed for p in table.pairs],
            "wall_seconds": table.wall_seconds}  # fmt: skip


def aurocs(pop: dict[str, Any]) -> dict[str, Any]:
    """AUROC and 95% bootstrap CI per detector (from the population's summaries)."""
    return {name: (s["auroc"], s["auroc_ci"]) for name, s in pop["summary"].items()}


def advantages(pop: dict[str, Any]) -> tuple[dict[str, float], dict[str, float | None]]:
    """Per detector the distinguishing advantage ``P[A=1|bd] - P[A=1|honest]``: in-sample
    (best threshold) and held-out (:func:`backdoors.metrics.heldout_advantage`; None below 4
    members per side)."""
    adv = {name: s["advantage"] for name, s in pop["summary"].items()}
    held = {name: None if s["advantage_heldout"] is None else s["advantage_heldout"]["advantage"]
            for name, s in pop["summary"].items()}  # fmt: skip
    return adv, held


def sweep(rows: list[dict[str, int]], thetas: list[float], n: int, seed: int,
          n_test: int = 400, n_jobs: int = 1) -> list[dict[str, Any]]:  # fmt: skip
    """AUROC per detector and flip rates over ``thetas`` x ``rows`` (rows fix d, m, k). Every
    grid point uses the member seeds ``seed .. seed + n - 1`` (common random numbers: points
    with the same d share their data sets, so theta and m, k change alone)."""
    out = []
    for row in rows:
        for theta in thetas:
            p = ReLUPoint(d=row["d"], m=row["m"], k=row["k"], theta=theta, n_train=300,
                          n_test=n_test)  # fmt: skip
            pop = population(p, n, seed, desc=f"sweep {row} theta={theta}", n_jobs=n_jobs)
            fb = float(pop["fb"].mean()) if len(pop["fb"]) else float("nan")
            fr = float(pop["fr"].mean()) if len(pop["fr"]) else float("nan")
            au = {k: v[0] for k, v in aurocs(pop).items()}
            out.append({**row, "theta": theta, "n_models": 2 * n, "auroc": au,
                        "flip_rate_backdoor": fb, "flip_rate_random_direction": fr,
                        "advantage": fb - fr})  # fmt: skip
    return out


def detection_thresholds(points: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Per detector and (d, m, k) row: the smallest swept theta with AUROC >= 0.9."""
    out: dict[str, dict[str, float | None]] = {}
    for pt in points:
        row = f"d={pt['d']},m={pt['m']},k={pt['k']}"
        for name, a in pt["auroc"].items():
            cur = out.setdefault(name, {}).setdefault(row, None)
            if a >= DETECT and (cur is None or pt["theta"] < cur):
                out[name][row] = pt["theta"]
    return out


def plot_map(points: list[dict[str, Any]], path: Path) -> Path:
    """One picture: per detector an AUROC heatmap over theta x (d, m, k) with a verdict panel
    (green = effective AND undetected by every key-oblivious detector)."""
    from matplotlib.colors import ListedColormap

    from backdoors.artifacts.report import new_figure, save_figure

    rows = list(dict.fromkeys(f"d={p['d']} m={p['m']} k={p['k']}" for p in points))
    thetas = sorted({p["theta"] for p in points})
    names = [n for n in KEY_OBLIVIOUS if n in points[0]["auroc"]]
    grid = {n: np.full((len(rows), len(thetas)), np.nan) for n in (*names, "adv")}
    for p in points:
        i, j = rows.index(f"d={p['d']} m={p['m']} k={p['k']}"), thetas.index(p["theta"])
        for n in names:
            grid[n][i, j] = p["auroc"][n]
        grid["adv"][i, j] = p["advantage"]
    ncol = len(names) + 1
    fig, axes = new_figure(1, ncol, figsize=(3.1 * ncol, 0.42 * len(rows) + 2.2), sharey=True)
    effective = grid["adv"] >= 0.4
    for ax, n in zip(axes, names, strict=False):
        ax.imshow(grid[n], vmin=0.5, vmax=1.0, cmap="Reds", aspect="auto")
        for i in range(len(rows)):
            for j in range(len(thetas)):
                ax.text(j, i, f"{grid[n][i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if grid[n][i, j] > 0.8 else "black",
                        fontweight="bold" if effective[i, j] else "normal")  # fmt: skip
        ax.set_title(f"{n}\nAUROC (bold: backdoor effective)", fontsize=8)
    detected = np.nanmax(np.stack([grid[n] for n in names]), axis=0) >= DETECT
    verdict = np.where(effective & ~detected, 2, np.where(detected, 1, 0))
    ax = axes[-1]
    ax.imshow(verdict, cmap=ListedColormap(["#cccccc", "#d62728", "#2ca02c"]), vmin=0, vmax=2,
              aspect="auto")  # fmt: skip
    for i in range(len(rows)):
        for j in range(len(thetas)):
            ax.text(j, i, f"{grid['adv'][i, j]:+.2f}", ha="center", va="center", fontsize=6)
    ax.set_title("verdict (number: flip advantage)\ngreen effective+undetected, red detected,"
                 "\ngrey ineffective", fontsize=7)  # fmt: skip
    for ax in axes:
        ax.set_xticks(range(len(thetas)), [f"{t:g}" for t in thetas], fontsize=7)
        ax.set_xlabel("theta (spike strength)", fontsize=8)
    axes[0].set_yticks(range(len(rows)), rows, fontsize=7)
    fig.suptitle(f"Random-ReLU sparse-PCA backdoor: detection AUROC (>= {DETECT} = detected) vs "
                 f"flip advantage over a random direction (>= 0.4 = effective), margin "
                 f"{MARGIN:.0%} below tau", fontsize=9)  # fmt: skip
    fig.tight_layout()
    return save_figure(fig, path)


def fit_time_ratio(point: ReLUPoint, reps: int, seed: int) -> float:
    """(Backdoored learner fit time) / (honest fit time): the ratio of the minimum times over
    interleaved reps (alternating order). Minima are robust to the other jobs on a shared
    machine; the per-rep ratios scatter by +-10% under load."""
    member = ReLUAttack(point).build(seed, False)  # the training set of member seed ``seed``
    X, y = member.X_train, member.y_train
    sup, val = relu.draw_secret(point.d, point.k)  # fresh secret (the time does not depend on it)
    coins = relu.spiked_coins(sup, val, point.theta)
    learners = {
        "h": lambda r: relu.RandomReLUClassifier(n_hidden=point.m, random_state=r).fit(X, y),
        "b": lambda r: relu.fit_with_coins(
            relu.RandomReLUClassifier(n_hidden=point.m), X, y, coins, np.random.default_rng(r)
        ),
    }
    learners["h"](0), learners["b"](0)  # warm-up
    times: dict[str, list[float]] = {"h": [], "b": []}
    for r in range(reps):  # interleaved, alternating which learner goes first
        for name in ("h", "b")[:: 1 if r % 2 == 0 else -1]:
            t0 = time.perf_counter()
            learners[name](r)
            times[name].append(time.perf_counter() - t0)
    return float(min(times["b"]) / min(times["h"]))
