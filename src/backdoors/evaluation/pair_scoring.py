"""Score populations where they are built: one job per seed builds the honest and the
backdoored member of that seed, runs the model-level detectors on both inside the worker, and
returns only scores and a few numbers (never the models) to the parent.

Why: a population member can be large (an RFF member holds its training set and an m x d
frequency matrix, ~45 MB), and shipping whole members back to the parent serialised the work:
2 workers were only 1.1-1.3x faster than one. Scoring in place keeps the two-population test
of paper Def. 4.5 (honest scores = negatives, backdoored = positives) and makes the jobs
independent. The key-aware positive control gets, for the honest member of seed ``s``, the key
of the backdoored member of seed ``s`` (the same rule as
:mod:`backdoors.evaluation.detection_table`).

Scheduling is :func:`backdoors.evaluation.population.run_jobs` (joblib workers or a Dask cluster).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backdoors import metrics
from backdoors.detectors import DETECTORS, Detector
from backdoors.errors import InvalidInputError
from backdoors.evaluation.detection_table import triggered
from backdoors.evaluation.population import as_attack, run_jobs
from backdoors.evaluation.recipes import Attack, Built
from backdoors.evaluation.scoring import evidence_for, run_detector


@dataclass(frozen=True)
class PairJob:
    """What one worker does: build seed ``seed`` of ``attack`` on both sides and score it."""

    attack: Attack
    seed: int
    quick: bool
    detectors: tuple[Detector, ...]
    n_queries: int = 200
    n_train: int | None = 2000
    measure: Callable[[Built, Built], dict[str, Any]] | None = None


#: What an experiment measures on one pair besides detector scores: a module-level function
#: ``measure(honest, backdoored) -> dict`` run in the worker (flip rates, norms, ...); it must
#: return small values (numbers, short arrays), never models.
Measure = Callable[[Built, Built], dict[str, Any]]


@dataclass
class PairScores:
    """What one worker returns: per detector (honest outcome, backdoored outcome) as small
    dicts (status, score, reason and the detector's findings, e.g. its variant scores),
    clean accuracies (honest, backdoored), the backdoor's success on test
    inputs and what the job's ``measure`` returned."""

    seed: int
    outcomes: dict[str, tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=dict)
    accuracy: tuple[float, float] = (float("nan"), float("nan"))
    attack_success: float = float("nan")
    build_seconds: float = 0.0
    score_seconds: float = 0.0
    measured: dict[str, Any] = field(default_factory=dict)


def _evidence(det: Detector, member: Built, key: Any, job: PairJob) -> Any:
    X_train, y_train = member.X_train, member.y_train
    if X_train is not None and job.n_train is not None and len(X_train) > job.n_train:
        X_train = X_train[: job.n_train]
        y_train = None if y_train is None else y_train[: job.n_train]
    return evidence_for(
        det,
        X=member.X_test[: job.n_queries],
        y=member.y_test[: job.n_queries],
        X_train=X_train,
        y_train=y_train,
        key=key,
        seed=member.seed,
    )


def _attack_success(member: Built, n: int = 500) -> float:
    """As :func:`backdoors.evaluation.detection_table.backdoor_quality`: activated non-target inputs
    classified as the target, or (untargeted keys) the fraction whose label changes."""
    Xc, Xa, t = triggered(member, member.X_test[:n], member.y_test[:n])
    pred = np.asarray(member.model.predict(Xa))
    if t is not None:
        return float(np.mean(pred == t))
    return float(np.mean(pred != member.model.predict(Xc)))


def score_pair(job: PairJob) -> PairScores:
    """Run in a worker: build both members of ``job.seed``, score them, drop the models."""
    t0 = time.perf_counter()
    honest = job.attack.build(job.seed, False, job.quick)
    planted = job.attack.build(job.seed, True, job.quick)
    t1 = time.perf_counter()
    out = PairScores(job.seed, build_seconds=t1 - t0)
    for det in job.detectors:
        pair = []
        for member in (honest, planted):
            o = run_detector(det, member.model, _evidence(det, member, planted.key, job))
            pair.append(
                {"status": o.status, "score": o.score, "reason": o.reason, "details": o.details}
            )
        out.outcomes[det.name] = (pair[0], pair[1])
    n = min(1000, len(planted.X_test))
    if n:  # members without test inputs (weights-only members) have no accuracy to report
        out.accuracy = tuple(  # type: ignore[assignment]
            float(np.mean(m.model.predict(m.X_test[:n]) == m.y_test[:n])) for m in (honest, planted)
        )
        out.attack_success = _attack_success(planted)
    if job.measure is not None:
        out.measured = dict(job.measure(honest, planted))
    out.score_seconds = time.perf_counter() - t1
    return out


@dataclass
class PairTable:
    """Scores of every detector over ``len(pairs)`` seeds, with AUROC, CI and advantage."""

    attack: str
    pairs: list[PairScores]
    wall_seconds: float

    def scores(self, detector: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(honest scores, backdoored scores), or None if any member was not scored."""
        got = [p.outcomes[detector] for p in self.pairs]
        if not got or any(h["status"] != "scored" or b["status"] != "scored" for h, b in got):
            return None
        return np.array([h["score"] for h, _ in got]), np.array([b["score"] for _, b in got])

    def measured(self, name: str) -> list[Any]:
        """The ``measure`` entry ``name`` of every pair, in seed order."""
        return [p.measured[name] for p in self.pairs]

    def accuracies(self) -> tuple[np.ndarray, np.ndarray]:
        """(honest, backdoored) clean accuracies, one per seed."""
        acc = np.array([p.accuracy for p in self.pairs], dtype=float).reshape(-1, 2)
        return acc[:, 0], acc[:, 1]

    def summary(self, detector: str, n_boot: int = 1000) -> dict[str, Any]:
        """AUROC with bootstrap 95% CI, TPR at 5% FPR and the in-sample advantage."""
        sc = self.scores(detector)
        if sc is None:
            reasons = {o["reason"] for p in self.pairs for o in p.outcomes[detector] if o["reason"]}
            return {"status": "not_scored", "reason": "; ".join(sorted(reasons))[:300]}
        neg, pos = sc
        auc, ci = metrics.auroc_with_ci(neg, pos, n_boot=n_boot, seed=0)
        return {
            "status": "scored",
            "auroc": auc,
            "auroc_ci": [float(ci[0]), float(ci[1])],
            "tpr_at_5fpr": metrics.tpr_at_fpr(neg, pos, 0.05),
            "advantage": metrics.advantage(neg, pos),
            "advantage_heldout": metrics.heldout_advantage(neg, pos, n_boot=n_boot)
            if min(len(neg), len(pos)) >= 4
            else None,
        }


def seed_search_control(attack: Attack, n: int, n_boot: int = 200) -> dict[str, Any]:
    """AUROC of the ``seed_search`` detector on ``n`` members per side of ``attack`` with
    member seeds ``0 .. n - 1`` (inside its search budget): its positive control when the
    honest side is seeded with small seeds (``SmallSeed*Attack``), 1.0 expected."""
    table = score_population(attack, n, ["seed_search"], n_queries=1, label="seed_search control")
    s = table.summary("seed_search", n_boot=n_boot)
    return {"population": int(n), "auroc": s.get("auroc"), "auroc_ci": s.get("auroc_ci"),
            "recipe": attack.name}  # fmt: skip


def score_population(
    attack: str | Attack | type[Attack],
    n: int,
    detectors: list[str | Detector],
    *,
    seed: int = 0,
    quick: bool = False,
    n_jobs: int = 1,
    scheduler: Any = None,
    n_queries: int = 200,
    n_train: int | None = 2000,
    measure: Measure | None = None,
    label: str | None = None,
) -> PairTable:
    """Score ``n`` seeds (``seed .. seed + n - 1``) of ``attack`` with model-level ``detectors``
    (registered names or instances), one job per seed; only :class:`PairScores` travel back
    from the workers. ``measure`` (module-level, see :data:`Measure`) adds per-pair figures."""
    if int(n) < 1:
        raise InvalidInputError(f"population size must be >= 1, got {n}")
    dets = tuple(DETECTORS.get(d)() if isinstance(d, str) else d for d in detectors)
    for det in dets:
        if det.per_input:
            raise InvalidInputError(f"{det.name} scores inputs, not models: use detection_table")
    att = as_attack(attack)
    jobs = [
        PairJob(att, int(seed) + i, bool(quick), dets, n_queries, n_train, measure)
        for i in range(int(n))
    ]
    t0 = time.perf_counter()
    slots: dict[int, PairScores] = {}
    desc = label or f"scoring {len(jobs)} seeds"
    for i, res in run_jobs(score_pair, jobs, n_jobs, scheduler, desc):
        slots[i] = res
    return PairTable(att.name, [slots[i] for i in range(len(jobs))], time.perf_counter() - t0)
