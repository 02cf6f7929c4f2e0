"""The lattice detector over honest and backdoored RFF populations (``experiment rff`` and
``experiment rff-map``), scored through :func:`backdoors.evaluation.pair_scoring.score_population`.

Member ``i`` of a population scored with seed ``s`` uses seed ``s + i`` on both sides. The
registered ``lattice`` detector runs with the test inputs as its queries and *proves* each
recovery by activation: a backdoored member counts as broken only if ``x + s * direction``
(the recovered direction, the model's public bandwidth ``s``) flips >= 90% of them (the
detector's findings, returned by the worker).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backdoors.detectors.lattice import LatticeDetector, rows_for
from backdoors.errors import NotApplicableError
from backdoors.evaluation.pair_scoring import score_population
from backdoors.evaluation.recipes.rff import RFFAttack, RFFPoint
from backdoors.rff.lattice_cost import finite as _finite
from backdoors.rff.lattice_cost import required_block_size, sparse_hybrid

RECOVERY_FLIP = 0.9


def lattice_population(
    point: RFFPoint, cfg: dict[str, Any], seed: int, *, n_jobs: int = 1
) -> dict[str, Any]:
    """``cfg``: ``pop`` (members per side), ``block_size``, ``max_seconds``; the point gives
    the task, ``m``, ``k`` (required) and ``beta``. AUROC, advantage and recovery rates."""
    n, k, beta = int(cfg["pop"]), int(point.sparsity), float(point.beta)  # type: ignore[arg-type]
    gamma = 2 * np.sqrt(k)
    # noise: the auditor's assumed beta sets the embedding scale C ~ gamma / beta (kept finite)
    det = LatticeDetector(block_size=cfg["block_size"], max_seconds=cfg["max_seconds"],
                          noise=max(beta, 1e-4), secret_norm=gamma)  # fmt: skip
    task = point.data()
    table = score_population(
        RFFAttack(point), n, [det], seed=seed, n_jobs=n_jobs,
        label=f"lattice {task.name} beta={beta:g}",
    )  # fmt: skip
    summ = table.summary("lattice")
    got = [p.outcomes["lattice"] for p in table.pairs]
    ok = summ["status"] == "scored"
    flips = [b["details"].get("recovered_key_flip_rate", 0.0) if ok else np.nan for _, b in got]
    reached = [[int(o["details"].get("reached_block", 0)) if ok else 0 for o in pair]
               for pair in got]  # fmt: skip
    secs = [o["details"].get("seconds", np.nan) if ok else np.nan for pair in got for o in pair]
    nan = float("nan")
    return {
        "status": summ["status"],
        "reason": summ.get("reason", ""),
        "auroc": summ.get("auroc", nan),
        "auroc_ci": summ.get("auroc_ci", [nan, nan]),
        "advantage": summ.get("advantage", nan),
        "advantage_heldout": (summ.get("advantage_heldout") or {}).get("advantage"),
        "advantage_heldout_ci": (summ.get("advantage_heldout") or {}).get("ci"),
        "key_recovery_rate": float(np.mean(np.array(flips) >= RECOVERY_FLIP)) if ok else nan,
        "recovered_key_flip_rate": float(np.mean(flips)),
        "seconds_per_model": float(np.mean(secs)),
        "block_size": int(cfg["block_size"]),
        "block_size_reached_backdoored": [b for _, b in reached],
        "max_block_reached": int(max(max(r) for r in reached)),
        "max_seconds": float(cfg["max_seconds"]),
        "models_per_side": n,
        "task": {
            "name": task.name,
            "d": int(task.X_train.shape[1]),
            "m": point.sizes(False)[2],
            "k": k,
            "beta": beta,
            "gamma": float(gamma),
            "models_per_side": n,
        },
        "scores_honest": [h["score"] for h, _ in got],
        "scores_backdoored": [b["score"] for _, b in got],
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
