"""Detectors x attacks tables: AUROC with bootstrap CI and TPR at 5% FPR per cell.

The scores come from the one engine, :func:`backdoors.evaluation.pair_scoring.score_population`;
this
module only turns its tables into cells (:func:`pair_results`) and summary tables.

Model-level detectors (one score per model) are evaluated as a two-population test (paper
Def. 4.5, DESIGN.md Honesty rules): negatives are the honest members' scores, positives the
backdoored members' scores. Input filters (``per_input``, e.g. STRIP, Gao et al. 2019) are
evaluated where they are used, at inference time: negatives are clean inputs, positives the
same inputs activated with the key, pooled over backdoored members.

The key-aware positive control receives, for the honest member of seed ``s``, the key of the
backdoored member of seed ``s``: it must tell whether *this* key works on *this* model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backdoors import metrics
from backdoors.detectors import Detector
from backdoors.evaluation.pair_scoring import PairTable


@dataclass
class PairResult:
    """One cell of the table."""

    detector: str
    attack: str
    level: str  # "model" or "input"
    status: str = "scored"  # scored | not_applicable | error | skipped
    reason: str = ""
    neg: np.ndarray = field(default_factory=lambda: np.zeros(0))
    pos: np.ndarray = field(default_factory=lambda: np.zeros(0))
    auroc: float | None = None
    ci: tuple[float, float] | None = None
    tpr5: float | None = None
    advantage: float | None = None  # in-sample best threshold (optimistic)
    advantage_heldout: dict[str, Any] | None = None  # threshold fixed on the other half
    details: list[dict[str, Any]] = field(default_factory=list)  # per scored model
    seconds: float = 0.0
    variant_of: str = ""  # a configuration row of this detector (see variant_results)


def _finish(res: PairResult) -> PairResult:
    if res.status == "scored":
        summ = metrics.population_summary(res.neg, res.pos)
        res.auroc, res.ci = summ["auroc"], tuple(summ["auroc_ci"])
        res.tpr5, res.advantage = summ["tpr_at_5fpr"], summ["advantage"]
        res.advantage_heldout = summ["advantage_heldout"]
    return res


def pair_results(table: PairTable, detectors: list[Detector]) -> list[PairResult]:
    """One cell per detector (and per configuration row it reports) from the engine's
    :class:`~backdoors.evaluation.pair_scoring.PairTable` of one attack."""
    out = []
    for det in detectors:
        res = PairResult(det.name, table.attack, "input" if det.per_input else "model")
        res.status, res.reason = table.status(det.name)
        res.seconds = table.seconds(det.name)
        sc = table.scores(det.name)
        if sc is not None:
            res.neg, res.pos = sc
        if not det.per_input and res.status == "scored":
            res.details = [
                {"seed": p.seed, "backdoored": bd, **o["details"]}
                for p in table.pairs
                for bd, o in zip((False, True), p.outcomes[det.name], strict=True)
            ]
        if res.status == "scored" and (not len(res.neg) or not len(res.pos)):
            res.status, res.reason = "not_applicable", "needs both negatives and positives"
        out.append(_finish(res))
        out += variant_results(res)
    return out


def variant_results(res: PairResult) -> list[PairResult]:
    """Extra table rows a detector reports beside its score (``findings["variants"]``, e.g.
    Neural Cleanse's median/min norm ratio), named ``<detector>_<variant>``; no re-scoring."""
    if res.status != "scored" or not res.details:
        return []
    names = set.intersection(*(set(d.get("variants", {})) for d in res.details))
    out = []
    for v in sorted(names):
        r = PairResult(f"{res.detector}_{v}", res.attack, res.level, seconds=0.0,
                       variant_of=res.detector)  # fmt: skip
        vals = [(float(d["variants"][v]), bool(d["backdoored"])) for d in res.details]
        r.neg = np.array([x for x, bd in vals if not bd])
        r.pos = np.array([x for x, bd in vals if bd])
        out.append(_finish(r))
    return out


def best_configurations(results: dict[tuple[str, str], PairResult]) -> dict[str, Any]:
    """Per detector and attack, its best configuration (the Trojan Detection Challenge's
    rule: a detector is judged at its best): the highest AUROC over the detector's own row and
    its configuration rows (``variant_of``). ``best_config_auroc_heldout`` removes the
    selection bias: the configuration is chosen on the even-indexed members of each side and
    its AUROC measured on the odd-indexed ones."""
    groups: dict[tuple[str, str], list[PairResult]] = {}
    for (d, a), r in sorted(results.items()):
        if r.status == "scored" and r.level == "model":
            groups.setdefault((r.variant_of or d, a), []).append(r)
    best: dict[str, dict[str, float]] = {}
    ci: dict[str, dict[str, list[float]]] = {}
    name: dict[str, dict[str, str]] = {}
    held: dict[str, dict[str, float]] = {}
    n_cfg: dict[str, dict[str, int]] = {}
    for (d, a), rows in groups.items():
        top = max(rows, key=lambda r: r.auroc)
        best.setdefault(d, {})[a] = top.auroc
        ci.setdefault(d, {})[a] = list(top.ci)
        name.setdefault(d, {})[a] = top.detector
        n_cfg.setdefault(d, {})[a] = len(rows)
        if all(len(r.neg) >= 4 and len(r.pos) >= 4 for r in rows):
            pick = max(rows, key=lambda r: metrics.auroc(r.neg[0::2], r.pos[0::2]))
            held.setdefault(d, {})[a] = metrics.auroc(pick.neg[1::2], pick.pos[1::2])
    return {
        "best_config_auroc": best,
        "best_config_auroc_ci": ci,
        "best_config": name,
        "best_config_auroc_heldout": held,
        "n_configs": n_cfg,
    }


def tables(results: dict[tuple[str, str], PairResult]) -> dict[str, Any]:
    """The nested metric tables: detector -> attack -> value (scored cells only). ``advantage``
    is |P[A=1|bd] - P[A=1|honest]| at the best threshold on the same samples (optimistic);
    ``advantage_heldout`` is [advantage, CI low, CI high] with the threshold and orientation
    fixed on the even-indexed half and measured on the odd half (unbiased)."""
    auroc: dict[str, dict[str, float]] = {}
    ci: dict[str, dict[str, list[float]]] = {}
    tpr: dict[str, dict[str, float]] = {}
    missing: dict[str, dict[str, str]] = {}
    seconds: dict[str, dict[str, float]] = {}
    adv: dict[str, dict[str, float]] = {}
    adv_ho: dict[str, dict[str, list[float]]] = {}
    for (d, a), r in sorted(results.items()):
        seconds.setdefault(d, {})[a] = round(r.seconds, 3)
        if r.status == "scored":
            auroc.setdefault(d, {})[a] = r.auroc
            ci.setdefault(d, {})[a] = list(r.ci)
            tpr.setdefault(d, {})[a] = r.tpr5
            adv.setdefault(d, {})[a] = r.advantage
            if r.advantage_heldout is not None:
                h = r.advantage_heldout
                adv_ho.setdefault(d, {})[a] = [h["advantage"], *h["ci"]]
        else:
            missing.setdefault(d, {})[a] = f"{r.status}: {r.reason}"
    return {
        "auroc": auroc,
        "auroc_ci": ci,
        "tpr_at_5fpr": tpr,
        "advantage": adv,
        "advantage_heldout": adv_ho,
        "not_scored": missing,
        "seconds": seconds,
    }
