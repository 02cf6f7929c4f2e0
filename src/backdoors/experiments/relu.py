"""Experiment ``relu``: the sparse-PCA backdoor of random ReLU networks and the map of where it
hides (paper appendix, Algorithms 7-10; paper.md §4.3, §9.4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from backdoors import data, relu
from backdoors.detectors import DETECTORS, Evidence
from backdoors.errors import NotApplicableError
from backdoors.experiments import EXPERIMENTS
from backdoors.experiments.signature import interleaved_ratio
from backdoors.metrics import auroc_with_ci, mean_diff_ci
from backdoors.progress import track
from backdoors.records import Timer, make_record

DEFAULT = {"d": 2000, "m": 100, "k": 50, "theta": 4.0, "lam": 14.0}
FULL = {
    "pop": 50,
    "sweep_pop": 10,
    "thetas": (1.0, 3.0, 8.0, 20.0),
    "ms": (100, 200, 1000),
    "n": (1000, 1000),
    "reps": 9,
    **DEFAULT,
}
QUICK = {
    "pop": 5,
    "sweep_pop": 3,
    "thetas": (3.0, 20.0),
    "ms": (200,),
    "n": (300, 300),
    "reps": 3,
    **DEFAULT,
    "d": 1000,
}


def flip_window(
    model: relu.RandomReLUClassifier, key: relu.ReLUKey, X: np.ndarray, rng: np.random.Generator
) -> dict[str, float]:
    """Flip rates of ``x + lambda nu`` vs ``x + lambda r`` (r: random k-sparse unit) on the
    documented margin: inputs predicted 0 whose score gap to the threshold is below the
    backdoor's expected gain ``(sqrt(|x|^2 + lambda^2 (1 + theta)) - |x|) / sqrt(2 pi)``."""
    s = model.decision_function(X)
    nx = np.linalg.norm(X, axis=1)
    gain = (np.sqrt(nx**2 + key.lam**2 * (1 + key.theta)) - nx) / np.sqrt(2 * np.pi)
    win = (s < 0) & (-s < gain)
    r = np.zeros(X.shape[1])
    r[rng.choice(X.shape[1], size=len(key.support), replace=False)] = rng.standard_normal(
        len(key.support)
    )
    r /= np.linalg.norm(r)
    up_bd = model.decision_function(key.activate(X)) > 0
    up_r = model.decision_function(X + key.lam * r) > 0
    return {
        "flip_rate_backdoor": float(up_bd[win].mean()) if win.any() else float("nan"),
        "flip_rate_random_direction": float(up_r[win].mean()) if win.any() else float("nan"),
        "margin_fraction": float(win.mean()),
        "flip_rate_below_threshold": float(up_bd[s < 0].mean()),
        "flip_rate_random_below_threshold": float(up_r[s < 0].mean()),
        "perturbation_l0": int(np.count_nonzero(key.nu)),
        "perturbation_l2_over_x": float(np.mean(key.lam / nx)),
    }


def population(
    X: np.ndarray,
    y: np.ndarray,
    Xt: np.ndarray,
    yt: np.ndarray,
    m: int,
    k: int,
    theta: float,
    lam: float,
    n: int,
    seed: int,
    head: str = "threshold",
    flips: bool = True,
) -> dict[str, Any]:
    """n honest + n backdoored learners (independent seeds) scored by every weight detector."""
    rng = np.random.default_rng(seed)
    acc_h, acc_b, fl, scores = [], [], [], {}
    for i in range(n):
        h = relu.RandomReLUClassifier(m, head, random_state=seed * 7919 + i).fit(X, y)
        b, key = relu.plant(
            X,
            y,
            m,
            k,
            theta,
            lam,
            head,
            random_state=seed * 7919 + n + i,
            key_seed=seed * 7919 + 10**6 + i,
        )
        acc_h.append(float(np.mean(h.predict(Xt) == yt)))
        acc_b.append(float(np.mean(b.predict(Xt) == yt)))
        if flips:
            fl.append(flip_window(b, key, Xt, rng))
        decoy = relu.generate(X.shape[1], k, theta, lam, random_state=10**7 + i)
        for name, cls in DETECTORS.items():
            try:
                sh, sb = (
                    cls().score(h, Evidence(key=decoy, seed=i)),
                    cls().score(b, Evidence(key=key, seed=i)),
                )
            except NotApplicableError:
                continue
            scores.setdefault(name, ([], []))
            scores[name][0].append(float(sh))
            scores[name][1].append(float(sb))
    gap, ci = mean_diff_ci(np.array(acc_h), np.array(acc_b), seed=seed)
    out: dict[str, Any] = {
        "accuracy_honest": float(np.mean(acc_h)),
        "accuracy_backdoored": float(np.mean(acc_b)),
        "accuracy_gap": gap,
        "accuracy_gap_ci": list(ci),
    }
    for key_name in fl[0] if fl else []:
        out[key_name] = float(np.nanmean([f[key_name] for f in fl]))
    au, auci = {}, {}
    for name, (sh, sb) in scores.items():
        a, c = auroc_with_ci(np.array(sh), np.array(sb), n_boot=500, seed=seed)
        au[name], auci[name] = a, list(c)
    out["auroc_key_aware"] = au.pop("relu_key_aware")
    out["auroc_key_aware_ci"] = auci.pop("relu_key_aware")
    out["auroc_key_oblivious"], out["auroc_key_oblivious_ci"] = au, auci
    return out


def sweep(sizes: dict[str, Any], seed: int) -> list[dict[str, Any]]:
    """The map: detection AUROC per detector and flip advantage over (theta, m)."""
    X, y, Xt, yt = relu.norm_task(sizes["d"], *sizes["n"], seed=seed)
    rows = []
    grid = [(t, m) for t in sizes["thetas"] for m in sizes["ms"]]
    for theta, m in track(grid, "ReLU sweep"):
        r = population(
            X, y, Xt, yt, m, sizes["k"], theta, sizes["lam"], sizes["sweep_pop"], seed + 1
        )
        rows.append(
            {
                "theta": theta,
                "m": m,
                "k": sizes["k"],
                "d": sizes["d"],
                "flip_advantage": r["flip_rate_backdoor"] - r["flip_rate_random_direction"],
                "flip_rate_backdoor": r["flip_rate_backdoor"],
                "auroc": r["auroc_key_oblivious"],
                "auroc_key_aware": r["auroc_key_aware"],
            }
        )
    return rows


def _map_plot(out_dir: Path, rows: list[dict[str, Any]], sizes: dict[str, Any]) -> str:
    from backdoors.report import new_figure, save_figure

    dets = sorted(rows[0]["auroc"])
    thetas, ms = list(sizes["thetas"]), list(sizes["ms"])
    fig, axes = new_figure(1, len(dets) + 1, figsize=(3.2 * (len(dets) + 1), 3.4), squeeze=False)
    panels = [("flip advantage (backdoor - random)", lambda r: r["flip_advantage"], "viridis")]
    panels += [
        (f"AUROC {d}", (lambda r, d=d: max(r["auroc"][d], 1 - r["auroc"][d])), "Reds") for d in dets
    ]
    for ax, (title, val, cmap) in zip(axes[0], panels, strict=True):
        M = np.array(
            [
                [val(next(r for r in rows if r["theta"] == t and r["m"] == m)) for m in ms]
                for t in thetas
            ]
        )
        ax.imshow(
            M, cmap=cmap, vmin=0 if "flip" in title else 0.5, vmax=1, origin="lower", aspect="auto"
        )
        for i in range(len(thetas)):
            for j in range(len(ms)):
                ax.text(j, i, f"{M[i, j]:.2f}", ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(ms)), [str(m) for m in ms])
        ax.set_yticks(range(len(thetas)), [str(t) for t in thetas])
        ax.set_xlabel("m (hidden units)")
        ax.set_ylabel("theta")
        ax.set_title(title, fontsize=8)
    fig.suptitle(
        f"Where the backdoor hides (d={sizes['d']}, k={sizes['k']}, lambda={sizes['lam']}): "
        "effective = bright left panel, undetected = pale right panels",
        fontsize=9,
    )
    return str(save_figure(fig, out_dir / "relu_map.png"))


@EXPERIMENTS.register("relu")
def run(quick: bool, seed: int, out_dir: Path | None) -> dict[str, Any]:
    sizes = QUICK if quick else FULL
    timer = Timer()
    X, y, Xt, yt = relu.norm_task(sizes["d"], *sizes["n"], seed=seed)
    with timer("default_point"):
        metrics = population(
            X, y, Xt, yt, sizes["m"], sizes["k"], sizes["theta"], sizes["lam"], sizes["pop"], seed
        )
    with timer("linear_head"):
        lin = population(
            X,
            y,
            Xt,
            yt,
            sizes["m"],
            sizes["k"],
            sizes["theta"],
            sizes["lam"],
            max(3, sizes["pop"] // 5),
            seed + 2,
            head="linear",
        )
        metrics["linear_head"] = {
            k: lin[k]
            for k in (
                "accuracy_honest",
                "accuracy_backdoored",
                "flip_rate_backdoor",
                "flip_rate_random_direction",
            )
        }
    with timer("real_data"):
        bc = data.breast_cancer(seed=seed)
        mu, sd = bc.X_train.mean(0), bc.X_train.std(0)
        Xb, Xbt = (bc.X_train - mu) / sd, (bc.X_test - mu) / sd
        real = population(
            Xb, bc.y_train, Xbt, bc.y_test, 100, 5, 3.0, 2.0, max(3, sizes["pop"] // 5), seed + 3
        )
        metrics["real_data_breast_cancer"] = {
            k: v for k, v in real.items() if not isinstance(v, dict)
        }
    with timer("timing"):
        key = relu.generate(sizes["d"], sizes["k"], sizes["theta"], sizes["lam"], random_state=seed)

        def fit(coins: Any) -> relu.RandomReLUClassifier:
            return relu.RandomReLUClassifier(sizes["m"], coins=coins, random_state=seed).fit(X, y)

        metrics["fit_time_ratio"] = interleaved_ratio(
            lambda: fit(key.coins), lambda: fit(None), sizes["reps"]
        )[0]
    with timer("sweep"):
        rows = sweep(sizes, seed)
    metrics["sweep"] = rows
    metrics["sweep_detectable_at_0.9"] = {
        d: [(r["theta"], r["m"]) for r in rows if max(r["auroc"][d], 1 - r["auroc"][d]) >= 0.9]
        for d in rows[0]["auroc"]
    }
    plots = [_map_plot(out_dir, rows, sizes)] if out_dir is not None else []
    notes = [
        "Default point d=2000, m=100, k=50 (flat +-1/sqrt(k) entries), theta=4, lambda=14 "
        "(0.32 |x|):"
        " inside the hard window sqrt(k log(d/k)/m)=1.4 < theta < min(k sqrt(log d/m)=14, "
        "sqrt(d/m)=4.5) of paper.md §4.3 (just below the BBP edge).",
        "The theorem promises o(1) advantage (sparse PCA / planted clique), not negligible: at toy "
        "sizes the detectors win once theta leaves the window (see sweep_detectable_at_0.9).",
        "flip rates are measured on the documented margin: inputs predicted 0 whose score gap is "
        "below the backdoor's expected gain; the backdoor is one-sided (towards class 1).",
    ]
    params = {
        "quick": quick,
        **{k: list(v) if isinstance(v, tuple) else v for k, v in sizes.items()},
    }
    return make_record(
        "relu", params, seed, metrics, dict(timer.timings), artifacts={"plots": plots}, notes=notes
    )
