"""The lattice detector over honest and backdoored RFF populations (for ``experiment rff``).

Scores ``n`` honest and ``n`` backdoored models with the primal uSVP attack and *proves* each
recovery by activation: a backdoored member counts as broken only if ``x + s * direction``
(the recovered direction, the model's public bandwidth ``s``) flips >= 90% of test inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backdoors import rff
from backdoors.detectors import Evidence
from backdoors.detectors.lattice import LatticeDetector, rows_for
from backdoors.errors import NotApplicableError
from backdoors.lattice_cost import finite as _finite
from backdoors.lattice_cost import required_block_size, sparse_hybrid
from backdoors.metrics import auroc_with_ci
from backdoors.progress import track
from backdoors.rff_tasks import Task

RECOVERY_FLIP = 0.9


def recovered_flip_rate(model: Any, result: Any, X: np.ndarray) -> float:
    """Fraction of ``X`` whose label flips under the recovered key (0 if none)."""
    if not result.recovered:
        return 0.0
    f0 = np.sign(model.decision_function(X))
    fa = np.sign(model.decision_function(result.activate(X, model.bandwidth_)))
    return float(np.mean(fa != f0))


def lattice_population(task: Task, cfg: dict[str, Any], seed: int) -> dict[str, Any]:
    """``cfg``: ``pop``, ``m``, ``k``, ``beta``, ``block_size``, ``max_seconds``."""
    n, m, k, beta = cfg["pop"], cfg["m"], cfg["k"], cfg["beta"]
    gamma = 2 * np.sqrt(k)
    det = LatticeDetector(block_size=cfg["block_size"], max_seconds=cfg["max_seconds"],
                          noise=beta, secret_norm=gamma)  # fmt: skip
    sh, sb, secs, flips, reached = [], [], [], [], []
    for i in track(range(n), f"lattice {task.name}"):
        h = rff.RandomFourierFeaturesClassifier(
            n_components=m, bandwidth=task.bandwidth, alpha=rff.DEFAULTS.alpha,
            random_state=seed * 7919 + 3 * n + i,
        )  # fmt: skip
        h.fit(task.X_train, task.y_train)
        b, _ = rff.plant(
            rff.RandomFourierFeaturesClassifier(
                n_components=m, bandwidth=task.bandwidth, alpha=rff.DEFAULTS.alpha,
                random_state=seed * 7919 + 4 * n + i,
            ),
            task.X_train, task.y_train, sparsity=k, beta=beta,
        )  # fmt: skip
        rh = det.recover(h, Evidence(seed=i))
        rb = det.recover(b, Evidence(seed=i))
        sh.append(rh.score)
        sb.append(rb.score)
        secs += [rh.seconds, rb.seconds]
        reached.append(rb.reached_block)
        flips.append(recovered_flip_rate(b, rb, task.X_test))
    a, ci = auroc_with_ci(np.array(sh), np.array(sb), n_boot=500, seed=seed)
    return {
        "auroc": a,
        "auroc_ci": list(ci),
        "key_recovery_rate": float(np.mean(np.array(flips) >= RECOVERY_FLIP)),
        "recovered_key_flip_rate": float(np.mean(flips)),
        "seconds_per_model": float(np.mean(secs)),
        "block_size": int(cfg["block_size"]),
        "block_size_reached_backdoored": reached,
        "max_seconds": float(cfg["max_seconds"]),
        "task": {
            "name": task.name,
            "d": int(task.X_train.shape[1]),
            "m": m,
            "k": k,
            "beta": beta,
            "gamma": float(gamma),
            "models_per_side": n,
        },
        "scores_honest": sh,
        "scores_backdoored": sb,
    }


def lattice_at(model: Any, k: int, beta: float) -> dict[str, Any]:
    """Whether the detector runs on ``model`` here, and the estimated attack cost."""
    m, d = model.frequencies_.shape
    gamma = 2 * np.sqrt(k)
    primal = required_block_size(d, m, gamma, beta)
    hybrid = sparse_hybrid(d, k, m, gamma, beta)
    try:
        n = rows_for(d, m)
        status = f"runs ({n} rows, rank {n + 1})"
    except NotApplicableError as exc:
        status = f"not applicable: {exc}"
    return {
        "status": status,
        "estimate_primal_block_size": primal.block_size,
        "estimate_primal_log2_cost": _finite(primal.log2_cost),
        "estimate_hybrid_log2_cost": _finite(hybrid.log2_cost),
        "estimate_hybrid_d_sub": hybrid.d_sub,
        "estimate_hybrid_block_size": hybrid.block_size,
        "estimate_hybrid_log2_trials": _finite(hybrid.log2_trials),
    }
