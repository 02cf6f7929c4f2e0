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
from backdoors.evaluation import scoring
from backdoors.evaluation.evidence_policy import policy_for
from backdoors.evaluation.pair_scoring import score_population
from backdoors.evaluation.recipes.rff import RFFAttack, RFFPoint
from backdoors.rff.lattice_cost import finite as _finite
from backdoors.rff.lattice_cost import required_block_size, sparse_hybrid

RECOVERY_FLIP = 0.9


def lattice_population(
    point: RFFPoint, cfg: dict[str, Any], seed: int, *, n_jobs: int = 1
) -> dict[str, Any]:
    """``cfg``: ``pop`` (members per side), ``block_size``, ``max_seconds`` (CPU budget per
    model); the point gives the task, ``m``, ``k`` (required) and ``beta``. AUROC, advantage
    and recovery rates."""
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
    cpu = [o["details"].get("cpu_seconds", np.nan) if ok else np.nan for pair in got for o in pair]
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
        "cpu_seconds_per_model": float(np.mean(cpu)),
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


#: The lattice-boundary points: k = 64, beta = 1e-3, m = 1000 on the planar task, as
#: ``(d, models, CPU seconds per model)``, run in this order (a repeated d adds the next
#: seeds to that d): d = 64 as the control the detector must break; d = 80, where the estimate
#: (BKZ-60) is within reach, gets the larger budget; beyond it the estimate (BKZ-85 to 130) is
#: far out of reach and one model per d shows how far a smaller budget gets (d >= 112: LLL
#: alone takes 110-140 CPU s). One BKZ tour per block size (steps of 3 from 40 on). The
#: record ``docs/results/lattice-boundary.json`` ran these points (d = 64 at 120 s).
BOUNDARY: dict[str, Any] = {
    "points": [
        (64, 1, 180.0),
        (80, 1, 720.0),
        (96, 1, 180.0),
        (112, 1, 300.0),
        (128, 1, 300.0),
    ],
    "tours": 1,
    "k": 64,
    "beta": 1e-3,
    "m": 1000,
    "n_train": 1500,
    "block_size": 90,
}


def boundary_point(
    d: int,
    models: int,
    budget: float,
    cfg: dict[str, Any],
    seed: int,
    log: Any = None,
    runs: list[dict[str, Any]] | None = None,
    first: int = 0,
) -> dict[str, Any]:
    """The lattice detector (:class:`LatticeDetector`, BKZ 2.0 with a CPU budget of ``budget``
    seconds per model) on ``models`` backdoored members ``seed + i`` (``i`` counting on from
    ``first`` after the earlier ``runs`` of this ``d``, which the point includes) of the planar
    point ``(d, k, beta, m)`` of ``cfg``, each scored through
    :func:`backdoors.evaluation.scoring.run_detector` with the full-mode evidence policy; a key
    counts as recovered when it flips >= 90% of the test inputs (as in
    :func:`lattice_population`). Honest members are not run: on them the attack finds nothing
    and would only spend the budget. Per model: block size reached, tours, CPU s, stop reason."""
    k, beta, m = int(cfg["k"]), float(cfg["beta"]), int(cfg["m"])
    gamma = 2 * np.sqrt(k)
    point = RFFPoint("planar", d, n_train=cfg["n_train"], n_test=500, n_components=m,
                     sparsity=k, beta=beta, data_seed=seed)  # fmt: skip
    det = LatticeDetector(block_size=cfg["block_size"], max_seconds=budget, noise=beta,
                          secret_norm=gamma, tours=int(cfg.get("tours", 1)))  # fmt: skip
    att, runs = RFFAttack(point), list(runs or [])
    i0 = len(runs) + int(first)
    for i in range(i0, i0 + models):
        member = att.build(seed + i, True)
        out = scoring.run_detector(det, member.model, policy_for(False).member_evidence(
            det, member, None, None))  # fmt: skip
        f = out.details if out.status == "scored" else {}
        run = {"seed": seed + i, "status": out.status, "reason": out.reason or "",
               "max_cpu_seconds": float(budget),
               "score": out.score, **{k: f.get(k) for k in (
                   "recovered", "recovered_key_flip_rate", "reached_block", "tours",
                   "cpu_seconds", "seconds", "rows", "stopped", "strategies")}}  # fmt: skip
        run["key_recovered"] = bool((f.get("recovered_key_flip_rate") or 0.0) >= RECOVERY_FLIP)
        runs.append(run)
        if log is not None:
            log(f"d={d} model {i + 1}: {run}")
    return point_summary(d, k, beta, m, runs)


def point_summary(
    d: int, k: int, beta: float, m: int, runs: list[dict[str, Any]]
) -> dict[str, Any]:
    """One boundary point from its per-model ``runs``: keys recovered, largest block size
    reached, CPU seconds and budgets per model, and ``lattice_cost``'s primal estimate."""
    est = required_block_size(d, m, 2 * np.sqrt(k), beta, held_out=max(32, m // 5))
    return {
        "d": d, "k": k, "beta": beta, "m": m, "models": len(runs),
        "keys_recovered": sum(r["key_recovered"] for r in runs),
        "block_size_reached": max((r["reached_block"] or 0) for r in runs),
        "cpu_seconds": [r["cpu_seconds"] for r in runs],
        "max_cpu_seconds_per_model": [r["max_cpu_seconds"] for r in runs],
        "estimate_primal_block_size": est.block_size, "estimate_primal_rows": est.rows,
        "estimate_log2_cost": _finite(est.log2_cost),
        "runs": runs,
    }  # fmt: skip


def boundary_metrics(points: list[dict[str, Any]]) -> dict[str, Any]:
    """The record's metrics over ``points``: ``measured_boundary_d``
    (:func:`measured_boundary`) and ``estimated_boundary_d``, the largest ``d`` whose
    estimated block size is at most the largest block size the runs reached in budget."""
    pts = sorted(points, key=lambda p: p["d"])
    reached = max(p["block_size_reached"] for p in pts)
    est = [p["d"] for p in pts if (p["estimate_primal_block_size"] or 10**9) <= reached]
    return {"points": pts, "measured_boundary_d": measured_boundary(pts),
            "estimated_boundary_d": max(est) if est else None,
            "block_size_reached_max": reached}  # fmt: skip


def merge_points(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Metrics of several boundary records taken together (runs made in separate processes,
    e.g. one model per core): the runs of each ``(d, k, beta, m)`` joined, a seed run twice
    counted once (the first record's run kept)."""
    runs: dict[tuple, dict[int, dict[str, Any]]] = {}
    for rec in records:
        for p in rec["metrics"]["points"]:
            key = (int(p["d"]), int(p["k"]), float(p["beta"]), int(p["m"]))
            for r in p["runs"]:
                runs.setdefault(key, {}).setdefault(int(r["seed"]), r)
    pts = [point_summary(*key, [by_seed[s] for s in sorted(by_seed)])
           for key, by_seed in runs.items()]  # fmt: skip
    return boundary_metrics(pts)


def measured_boundary(points: list[dict[str, Any]]) -> int | None:
    """Largest ``d`` at which a key was recovered (``None``: none)."""
    got = [p["d"] for p in points if p["keys_recovered"] > 0]
    return max(got) if got else None


def boundary_record(
    cfg: dict[str, Any], seed: int, log: Any = None, on_point: Any = None
) -> dict[str, Any]:
    """:func:`boundary_point` at every ``(d, models, budget)`` of ``cfg['points']``, members
    counted from ``cfg['first_member']`` (default 0)
    (``on_point(metrics so far)`` after each), with ``measured_boundary_d``
    (:func:`measured_boundary`) and ``estimated_boundary_d``: the largest ``d`` whose
    estimated block size is at most the largest block size the runs reached in budget."""
    by_d: dict[int, dict[str, Any]] = {}
    out: dict[str, Any] = {}
    for d, models, budget in cfg["points"]:
        prev = by_d.get(int(d), {}).get("runs")
        by_d[int(d)] = boundary_point(int(d), int(models), float(budget), cfg, seed, log, prev,
                                      first=int(cfg.get("first_member", 0)))  # fmt: skip
        out = boundary_metrics(list(by_d.values()))
        if on_point is not None:
            on_point(out)
    return out
