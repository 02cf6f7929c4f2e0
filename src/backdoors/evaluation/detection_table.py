"""Detectors x attacks: score populations, then AUROC with bootstrap CI and TPR at 5% FPR.

Model-level detectors (one score per model) are evaluated as a two-population test (paper
Def. 4.5, DESIGN.md Honesty rules): negatives are the honest members' scores, positives the
backdoored members' scores. Input filters (``per_input``, e.g. STRIP, Gao et al. 2019) are
evaluated where they are used, at inference time: negatives are clean inputs, positives the
same inputs activated with the key, pooled over backdoored members.

The key-aware positive control receives, for the honest member of seed ``s``, the key of the
backdoored member of seed ``s``: it must tell whether *this* key works on *this* model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backdoors import metrics
from backdoors.contract import evaluation_targets
from backdoors.detectors import Detector
from backdoors.evaluation.population import Population
from backdoors.evaluation.recipes import Built
from backdoors.evaluation.scoring import Outcome, evidence_for, run_detector
from backdoors.progress import track

MIN_ALLOWANCE = 2.0  # seconds a pair may always take, however little budget is left


@dataclass
class Budget:
    """Wall-clock allowance for scoring (``None``: unlimited), shared by the remaining pairs."""

    seconds: float | None
    spent: float = 0.0

    def allowance(self, pairs_left: int) -> float:
        if self.seconds is None:
            return float("inf")
        return max(0.0, self.seconds - self.spent) / max(1, pairs_left)


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


def target_of(member: Built) -> int | None:
    """The attack's one target class, when the recipe or an all-to-one key names one."""
    t = member.info.get("target")
    if t is None and member.key is not None and len(member.key.targets) == 1:
        t = member.key.targets[0]
    return None if t is None else int(t)


def triggered(
    member: Built, X: np.ndarray, y: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(clean inputs not already of their target class, their activated versions, targets).

    Targets come from the key's contract (:func:`backdoors.contract.evaluation_targets`):
    ``None`` for untargeted keys, else one class per kept input.
    """
    t = evaluation_targets(member.key, y, len(X))
    if t is None:
        return X, member.activate(X), None
    keep = np.ones(len(X), dtype=bool) if y is None else np.asarray(y)[: len(X)] != t
    return X[keep], member.activate(X[keep], target=t[keep]), t[keep]


def _train_subset(member: Built, n_train: int | None, seed: int) -> tuple[Any, Any]:
    if member.X_train is None or n_train is None or len(member.X_train) <= n_train:
        return member.X_train, member.y_train
    idx = np.sort(np.random.default_rng(seed).choice(len(member.X_train), n_train, replace=False))
    y = None if member.y_train is None else member.y_train[idx]
    return member.X_train[idx], y


def member_evidence(
    det: Detector,
    member: Built,
    key: Any,
    reference: Any,
    n_queries: int,
    n_train: int | None,
) -> Any:
    """The evidence ``det`` gets for one population member."""
    X_train, y_train = _train_subset(member, n_train, member.seed)
    return evidence_for(
        det,
        X=member.X_test[:n_queries],
        y=member.y_test[:n_queries],
        X_train=X_train,
        y_train=y_train,
        key=key,
        reference=reference,
        seed=member.seed,
    )


def _score_chunk(det: Detector, jobs: list[tuple[Any, Any]]) -> list[Outcome]:
    """Score (model, evidence) jobs in order with one detector instance (a worker's task)."""
    out = []
    for model, ev in jobs:
        out.append(run_detector(det, model, ev))
        if not out[-1].ok:
            break
    return out


def _finish(res: PairResult) -> PairResult:
    if res.status == "scored":
        res.auroc, ci = metrics.auroc_with_ci(res.neg, res.pos, n_boot=1000, seed=0)
        res.ci = (float(ci[0]), float(ci[1]))
        res.tpr5 = metrics.tpr_at_fpr(res.neg, res.pos, 0.05)
        res.advantage = metrics.advantage(res.neg, res.pos)
        if min(len(res.neg), len(res.pos)) >= 4:
            res.advantage_heldout = metrics.heldout_advantage(res.neg, res.pos, n_boot=500)
    return res


def score_models(
    det: Detector,
    pop: Population,
    references: dict[int, Any],
    n_queries: int,
    n_train: int | None,
    allowance: float = float("inf"),
    n_jobs: int = 1,
) -> PairResult:
    """Model-level AUROC of ``det`` on one population (honest = negative). The first member
    is scored in-process (applicability, cost estimate, any state the detector builds once,
    such as shadow models); the rest in ``n_jobs`` joblib chunks."""
    res = PairResult(det.name, pop.attack, "model")
    keys = {b.seed: b.key for b in pop.backdoored}
    members = [(m, False) for m in pop.honest] + [(m, True) for m in pop.backdoored]
    t0 = time.perf_counter()
    jobs = [
        (
            m.model,
            member_evidence(det, m, keys.get(m.seed), references.get(m.seed), n_queries, n_train),
        )
        for m, _ in members
    ]
    outs = _score_chunk(det, jobs[:1])
    cost = outs[0].seconds * len(members) / max(1, n_jobs) if outs else 0.0
    if outs and outs[0].ok and cost > max(1.5 * allowance, MIN_ALLOWANCE):
        res.status = "skipped"
        res.reason = f"too slow for this run's budget ({outs[0].seconds:.1f} s per model)"
    elif outs and outs[0].ok and len(jobs) > 1:
        rest = jobs[1:]
        if n_jobs > 1 and len(rest) > 1:
            from joblib import Parallel, delayed

            chunks = [c for c in (rest[i::n_jobs] for i in range(n_jobs)) if c]
            parts = Parallel(n_jobs=n_jobs)(delayed(_score_chunk)(det, c) for c in chunks)
            scored = {1 + i + k * n_jobs: o for i, p in enumerate(parts) for k, o in enumerate(p)}
            bad = [o for o in scored.values() if not o.ok]
            outs += [scored[j] for j in sorted(scored)] if not bad else [bad[0]]
        else:
            outs += _score_chunk(det, rest)
    neg, pos = [], []
    for (m, bd), out in zip(members, outs, strict=False):
        if not out.ok:
            res.status, res.reason = out.status, out.reason
            break
        (pos if bd else neg).append(out.score)
        res.details.append({"seed": m.seed, "backdoored": bd, **out.details})
    res.seconds = time.perf_counter() - t0
    if res.status == "scored" and (len(neg) < len(pop.honest) or len(pos) < len(pop.backdoored)):
        res.status, res.reason = "error", "scores missing for some members"
    if res.status == "scored" and (not neg or not pos):
        res.status, res.reason = "not_applicable", "needs both honest and backdoored members"
    res.neg, res.pos = np.asarray(neg), np.asarray(pos)
    return _finish(res)


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


def score_inputs(
    det: Detector,
    pop: Population,
    n_inputs: int,
    max_members: int,
    allowance: float = float("inf"),
) -> PairResult:
    """Input-level AUROC of a per-input filter: clean vs activated inputs on backdoored models."""
    res = PairResult(det.name, pop.attack, "input")
    members = [m for m in pop.backdoored if m.key is not None][:max_members]
    if not members:
        res.status, res.reason = "not_applicable", "no backdoored members with a key"
        return res
    neg, pos = [], []
    t0 = time.perf_counter()
    for j, m in enumerate(members):
        Xc, Xa, _ = triggered(m, m.X_test[:n_inputs], m.y_test[:n_inputs])
        ev = evidence_for(
            det, X=np.concatenate([Xc, Xa]), X_train=m.X_train, y_train=m.y_train, seed=m.seed
        )
        out = run_detector(det, m.model, ev)
        if not out.ok:
            res.status, res.reason = out.status, out.reason
            break
        neg.append(out.per_input[: len(Xc)])
        pos.append(out.per_input[len(Xc) :])
        if j == 0 and out.seconds * len(members) > max(1.5 * allowance, MIN_ALLOWANCE):
            res.status = "skipped"
            res.reason = f"too slow for this run's budget ({out.seconds:.1f} s per model)"
            break
    res.seconds = time.perf_counter() - t0
    if neg:
        res.neg, res.pos = np.concatenate(neg), np.concatenate(pos)
    return _finish(res)


def evaluate(
    detectors: list[Detector],
    pops: dict[str, Population],
    *,
    n_queries: int = 200,
    n_train: int | None = 2000,
    max_input_members: int = 5,
    budget: Budget | None = None,
    n_jobs: int = 1,
) -> dict[tuple[str, str], PairResult]:
    """Every detector on every population. The reference model for the members of seed ``s``
    is the honest member of the next seed (an honest model of the same recipe, other coins)."""
    budget = budget or Budget(None)
    out: dict[tuple[str, str], PairResult] = {}
    refs: dict[str, dict[int, Any]] = {}
    for name, pop in pops.items():
        seeds = [h.seed for h in pop.honest]
        refs[name] = {
            s: pop.honest[(i + 1) % len(seeds)].model for i, s in enumerate(seeds) if len(seeds) > 1
        }
    pairs = [(name, pop, det) for name, pop in pops.items() for det in detectors]
    for name, pop, det in track(pairs, "scoring detectors x attacks"):
        allowance = budget.allowance(len(pairs) - len(out))
        if det.per_input:
            res = score_inputs(det, pop, n_queries, max_input_members, allowance)
        else:
            res = score_models(det, pop, refs[name], n_queries, n_train, allowance, n_jobs)
        budget.spent += res.seconds
        out[(det.name, name)] = res
        for v in variant_results(res):
            out[(v.detector, name)] = v
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


def backdoor_quality(pop: Population, n_eval: int = 1000) -> dict[str, float]:
    """Clean-accuracy drop (honest minus backdoored, same seed, averaged) and attack success
    (fraction of activated non-target inputs classified as the target; without a known target,
    the fraction whose label changes)."""
    drops, success = [], []
    for h, b in pop.pairs():
        X, y = b.X_test[:n_eval], b.y_test[:n_eval]
        acc_h = metrics.accuracy(y, np.asarray(h.model.predict(h.X_test[:n_eval])))
        acc_b = metrics.accuracy(y, np.asarray(b.model.predict(X)))
        drops.append(acc_h - acc_b)
        if b.key is None:
            continue
        Xc, Xa, t = triggered(b, X, y)
        pred = np.asarray(b.model.predict(Xa))
        success.append(
            float(np.mean(pred == t))
            if t is not None
            else float(np.mean(pred != b.model.predict(Xc)))
        )
    return {
        "clean_accuracy_drop": float(np.mean(drops)) if drops else float("nan"),
        "attack_success": float(np.mean(success)) if success else float("nan"),
    }
