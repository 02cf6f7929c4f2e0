"""The evaluation engine: one worker per seed, behind every table this package publishes.

:func:`score_pair` (the one worker, like scikit-learn's single ``_fit_and_score``) builds the
honest and the backdoored member of one seed with the attack recipe (and, for detectors that
declare it, an honest reference model from
:func:`backdoors.evaluation.evidence_policy.reference_seed`),
shows every detector the evidence of :class:`backdoors.evaluation.evidence_policy.EvidencePolicy`,
runs
it through :func:`backdoors.evaluation.scoring.run_detector`, measures the backdoor's quality once
(:func:`backdoor_quality`) and returns only scores and small records, never the models.
:func:`score_population` schedules one such job per seed
(:func:`backdoors.evaluation.population.run_jobs`:
joblib workers or a Dask cluster) and gathers a :class:`PairTable`; the ``detectors``
experiment, the RFF/ReLU experiments, the demos and the speed benchmark all call it.

Why in the workers: a member can be large (an RFF member holds its training set and an m x d
frequency matrix, ~45 MB); shipping whole members to the parent serialised the work. The
two-population test of paper Def. 4.5 (honest scores = negatives, backdoored = positives) is
summarised by :func:`backdoors.metrics.population_summary`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from backdoors import metrics
from backdoors.detectors import DETECTORS, Detector
from backdoors.errors import InvalidInputError
from backdoors.evaluation.evidence_policy import (
    DEFAULT_POLICY,
    EvidencePolicy,
    policy_for,
    reference_seed,
    target_of,
    triggered,
)
from backdoors.evaluation.population import as_attack, run_jobs
from backdoors.evaluation.recipes import Attack, Built
from backdoors.evaluation.scoring import Outcome, run_detector

#: Test inputs on which clean accuracy and attack success are measured.
N_EVAL = 1000
MIN_ALLOWANCE = 2.0  # seconds a detector may always take, however little budget is left

#: What an experiment measures on one pair besides detector scores: a module-level function
#: ``measure(honest, backdoored) -> dict`` run in the worker (flip rates, norms, ...); it must
#: return small values (numbers, short arrays), never models.
Measure = Callable[[Built, Built], dict[str, Any]]


@dataclass
class Budget:
    """Allowance of detector CPU seconds for scoring (``None``: unlimited), shared by the
    ``pairs_left`` (detector, attack) cells still to score. CPU time, not wall time, so which
    detectors a run keeps does not depend on how loaded the machine is."""

    seconds: float | None
    spent: float = 0.0
    pairs_left: int = 1

    def allowance(self) -> float:
        if self.seconds is None:
            return float("inf")
        return max(0.0, self.seconds - self.spent) / max(1, self.pairs_left)


@dataclass(frozen=True)
class PairJob:
    """What one worker does: build seed ``seed`` of ``attack`` on both sides and score it."""

    attack: Attack
    seed: int
    quick: bool
    detectors: tuple[Detector, ...]  # model-level
    input_detectors: tuple[Detector, ...] = ()  # input filters, on the backdoored member
    policy: EvidencePolicy = DEFAULT_POLICY
    measure: Measure | None = None
    cache_dir: str | None = None  # load members from a population cache when there
    form: str | None = None  # score this deployment form of each member (None: the model)
    also_forms: tuple[str, ...] = ()  # more forms, scored under "<detector>@<form>"


@dataclass
class PairScores:
    """What one worker returns: per model-level detector (honest outcome, backdoored outcome)
    as small dicts (status, score, reason, seconds, the detector's details), per input filter
    its clean (``neg``) and activated (``pos``) per-input scores, clean accuracies (honest,
    backdoored), the backdoor's success, the target class, build seconds per member and what
    the job's ``measure`` returned."""

    seed: int
    outcomes: dict[str, tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=dict)
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    accuracy: tuple[float, float] = (float("nan"), float("nan"))
    attack_success: float = float("nan")
    target: int | None = None
    member_seconds: tuple[float, float] = (float("nan"), float("nan"))
    build_seconds: float = 0.0
    score_seconds: float = 0.0
    measured: dict[str, Any] = field(default_factory=dict)


def backdoor_quality(honest: Built, planted: Built, n: int = N_EVAL) -> tuple[float, float, float]:
    """(honest clean accuracy, backdoored clean accuracy, attack success) on the first ``n``
    test inputs. Attack success: the fraction of activated non-target inputs classified as the
    target or, for untargeted keys, the fraction whose label changes (NaN without a key)."""
    n = min(n, len(planted.X_test))
    X, y = planted.X_test[:n], planted.y_test[:n]
    acc = tuple(float(np.mean(np.asarray(m.model.predict(X)) == y)) for m in (honest, planted))
    if planted.key is None:
        return acc[0], acc[1], float("nan")
    Xc, Xa, t = triggered(planted, X, y)
    pred = np.asarray(planted.model.predict(Xa))
    if t is not None:
        return acc[0], acc[1], float(np.mean(pred == t))
    return acc[0], acc[1], float(np.mean(pred != np.asarray(planted.model.predict(Xc))))


def _small(o: Outcome) -> dict[str, Any]:
    return {"status": o.status, "score": o.score, "reason": o.reason, "seconds": o.seconds,
            "cpu_seconds": o.cpu_seconds,
            "details": o.details}  # fmt: skip


def _member(job: PairJob, seed: int, backdoored: bool) -> tuple[Built, float]:
    """One member, from the population cache when it is there, else built; its build time."""
    t0 = time.perf_counter()
    if job.cache_dir is not None:
        from backdoors.evaluation.model_cache import ArrayPool, import_model_kinds, load_member
        from backdoors.evaluation.population import member_hash

        import_model_kinds()  # a fresh worker process may not know the cached kinds yet
        h = member_hash(job.attack, seed, backdoored, job.quick)
        got = load_member(Path(job.cache_dir), h, ArrayPool(Path(job.cache_dir)))
        if got is not None:
            return got, float(got.info.get("build_seconds", np.nan))
    built = job.attack.build(seed, backdoored, job.quick)
    if not isinstance(built, Built):
        raise InvalidInputError(f"attack {job.attack.name} returned {type(built).__name__}")
    return built, float(built.info.get("build_seconds", time.perf_counter() - t0))


def scoring_target(member: Built, form: str | None) -> Any:
    """What a detector scores of ``member``: its model (``form=None``), or the model as
    deployed in ``form`` (:func:`backdoors.conditional.deployed.deployed_view`: queries run the
    deployed ONNX graph, weights are the deployed weights); ``form="deployed"`` takes the form
    the member's recipe names in ``info["fires_in"]``. Honest and backdoored members, and the
    reference model, all go through this one function."""
    if form is None:
        return member.model
    from backdoors.conditional.deployed import deployed_view

    name = member.info.get("fires_in") if form == "deployed" else form
    if name is None:
        raise InvalidInputError(f"attack member of seed {member.seed} names no deployment form")
    return deployed_view(member.model, str(name), member.X_test[:64])


def score_pair(job: PairJob) -> PairScores:
    """Run in a worker: build both members of ``job.seed`` (and the reference model when a
    detector declares it), score them (or their deployment form ``job.form``, see
    :func:`scoring_target`) under ``job.policy``, drop the models."""
    t0 = time.perf_counter()
    honest, s_h = _member(job, job.seed, False)
    planted, s_b = _member(job, job.seed, True)
    ref_member = None
    if job.policy.wants_reference(job.detectors):
        ref_member = _member(job, reference_seed(job.seed), False)[0]
    t1 = time.perf_counter()
    out = PairScores(job.seed, build_seconds=t1 - t0, member_seconds=(s_h, s_b))
    out.target = target_of(planted)
    planted_target = None  # the planted member in job.form, built once for both loops
    for form in (job.form, *job.also_forms):
        if not job.detectors and form != job.form:
            break
        targets = [scoring_target(m, form) for m in (honest, planted)]
        if form == job.form:
            planted_target = targets[1]
        ref = None if ref_member is None else scoring_target(ref_member, form)
        for det in job.detectors:
            pair = [
                _small(run_detector(det, t, job.policy.member_evidence(det, m, planted.key, ref)))
                for m, t in zip((honest, planted), targets, strict=True)
            ]
            name = det.name if form == job.form else f"{det.name}@{form}"
            out.outcomes[name] = (pair[0], pair[1])
    for det in job.input_detectors:
        if planted.key is None:
            out.inputs[det.name] = {"status": "not_applicable", "reason": "no key", "seconds": 0.0}
            continue
        ev, n_clean = job.policy.input_evidence(det, planted)
        o = run_detector(det, planted_target, ev)
        rec: dict[str, Any] = {"status": o.status, "reason": o.reason, "seconds": o.seconds,
                               "cpu_seconds": o.cpu_seconds}  # fmt: skip
        if o.ok:
            rec["neg"], rec["pos"] = o.per_input[:n_clean], o.per_input[n_clean:]
        out.inputs[det.name] = rec
    if len(planted.X_test):  # weights-only members have no accuracy to report
        acc_h, acc_b, out.attack_success = backdoor_quality(honest, planted)
        out.accuracy = (acc_h, acc_b)
    if job.measure is not None:
        out.measured = dict(job.measure(honest, planted))
    out.score_seconds = time.perf_counter() - t1
    return out


@dataclass
class PairTable:
    """Scores of every detector over ``len(pairs)`` seeds, with AUROC, CI and advantage.
    ``skipped``: detectors left out after the first seed (budget), with the reason."""

    attack: str
    pairs: list[PairScores]
    wall_seconds: float
    skipped: dict[str, str] = field(default_factory=dict)

    def status(self, detector: str) -> tuple[str, str]:
        """("scored", "") or why not: skipped, the first member's not_applicable / error."""
        if detector in self.skipped:
            return "skipped", self.skipped[detector]
        got = [p.inputs.get(detector) for p in self.pairs if detector in p.inputs]
        got += [o for p in self.pairs for o in p.outcomes.get(detector, ())]
        for o in got:
            if o["status"] != "scored":
                return o["status"], o["reason"]
        model = all(detector in p.outcomes for p in self.pairs)
        if not got or not (model or any(detector in p.inputs for p in self.pairs)):
            return "error", "scores missing for some members"
        return "scored", ""

    def scores(self, detector: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(honest scores, backdoored scores), or None if any member was not scored. For an
        input filter: (clean inputs' scores, activated inputs' scores), pooled."""
        if self.status(detector)[0] != "scored":
            return None
        if all(detector in p.outcomes for p in self.pairs):
            got = [p.outcomes[detector] for p in self.pairs]
            return np.array([h["score"] for h, _ in got]), np.array([b["score"] for _, b in got])
        ins = [p.inputs[detector] for p in self.pairs if detector in p.inputs]
        return np.concatenate([i["neg"] for i in ins]), np.concatenate([i["pos"] for i in ins])

    def seconds(self, detector: str) -> float:
        """Summed scoring seconds of ``detector`` over every member it ran on."""
        s = sum(o["seconds"] for p in self.pairs for o in p.outcomes.get(detector, ()))
        return s + sum(p.inputs[detector]["seconds"] for p in self.pairs if detector in p.inputs)

    def measured(self, name: str) -> list[Any]:
        """The ``measure`` entry ``name`` of every pair, in seed order."""
        return [p.measured[name] for p in self.pairs]

    def accuracies(self) -> tuple[np.ndarray, np.ndarray]:
        """(honest, backdoored) clean accuracies, one per seed."""
        acc = np.array([p.accuracy for p in self.pairs], dtype=float).reshape(-1, 2)
        return acc[:, 0], acc[:, 1]

    def extend(self, other: PairTable) -> PairTable:
        """This table followed by ``other`` (more seeds of the same attack)."""
        return PairTable(self.attack, self.pairs + other.pairs,
                         self.wall_seconds + other.wall_seconds,
                         {**self.skipped, **other.skipped})  # fmt: skip

    def summary(self, detector: str) -> dict[str, Any]:
        """:func:`backdoors.metrics.population_summary` of ``detector``, or why not scored."""
        sc = self.scores(detector)
        if sc is None:
            reasons = {o["reason"] for p in self.pairs for o in p.outcomes.get(detector, ())
                       if o["reason"]}  # fmt: skip
            reasons |= {p.inputs[detector]["reason"] for p in self.pairs if detector in p.inputs
                        and p.inputs[detector]["reason"]}  # fmt: skip
            reasons |= {self.skipped[detector]} if detector in self.skipped else set()
            return {"status": "not_scored", "reason": "; ".join(sorted(reasons))[:300]}
        return {"status": "scored", **metrics.population_summary(*sc)}


def _keep(probe: PairScores, dets: tuple[Detector, ...], n: int, n_inputs: int, n_jobs: int,
          budget: Budget | None) -> tuple[list[Detector], dict[str, str]]:  # fmt: skip
    """Detectors worth scoring on the remaining seeds after the first: those that scored it
    and whose estimated cost fits the budget; the others with the reason."""
    keep, skipped = [], {}
    for det in dets:
        recs = list(probe.outcomes.get(det.name, ())) or [probe.inputs.get(det.name, {})]
        if any(r.get("status") != "scored" for r in recs):
            if budget is not None:
                budget.pairs_left -= 1
            continue
        secs = sum(r.get("cpu_seconds", r["seconds"]) for r in recs)  # CPU: load-independent
        if budget is not None:
            cost = secs * (min(n, n_inputs) if det.per_input else n) / max(1, n_jobs)
            if cost > max(1.5 * budget.allowance(), MIN_ALLOWANCE):
                skipped[det.name] = f"too slow for this run's budget ({secs:.1f} CPU s per seed)"
            else:
                budget.spent += cost
            budget.pairs_left -= 1
        if det.name not in skipped:
            keep.append(det)
    return keep, skipped


def seed_search_control(attack: Attack, n: int) -> dict[str, Any]:
    """AUROC of the ``seed_search`` detector on ``n`` members per side of ``attack`` with
    member seeds ``0 .. n - 1`` (inside its search budget): its positive control when the
    honest side is seeded with small seeds (``SmallSeed*Attack``), 1.0 expected."""
    table = score_population(attack, n, ["seed_search"], label="seed_search control")
    s = table.summary("seed_search")
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
    policy: EvidencePolicy | None = None,
    measure: Measure | None = None,
    label: str | None = None,
    input_members: int = 0,
    budget: Budget | None = None,
    cache_dir: str | Path | None = None,
    form: str | None = None,
    also_forms: tuple[str, ...] = (),
) -> PairTable:
    """Score ``n`` seeds (``seed .. seed + n - 1``) of ``attack`` with ``detectors``
    (registered names or instances), one :func:`score_pair` job per seed; only
    :class:`PairScores` travel back from the workers. Input filters score the backdoored
    member of the first ``input_members`` seeds (clean vs activated inputs). ``measure``
    (module-level, see :data:`Measure`) adds per-pair figures. With a ``budget``, the first
    seed is scored alone, and detectors that failed on it or would overrun the budget are not
    run on the others (``PairTable.skipped``). ``policy``: the evidence policy, by default
    :func:`backdoors.evaluation.evidence_policy.policy_for` ``(quick)`` (every caller uses the
    default). ``form``: score each member's deployment form instead of the model as built
    (:func:`scoring_target`; clean accuracy and attack success stay the built model's);
    ``also_forms``: more forms scored on the same members, each detector's outcome stored
    as ``"<detector>@<form>"`` (read it with :meth:`PairTable.summary` under that name)."""
    if int(n) < 1:
        raise InvalidInputError(f"population size must be >= 1, got {n}")
    dets = tuple(DETECTORS.get(d)() if isinstance(d, str) else d for d in detectors)
    for det in dets:
        if det.per_input and input_members < 1:
            raise InvalidInputError(f"{det.name} scores inputs, not models: pass input_members")
    att = as_attack(attack)
    policy = policy_for(bool(quick)) if policy is None else policy
    cache = None if cache_dir is None else str(cache_dir)

    def job(i: int, ds: tuple[Detector, ...]) -> PairJob:
        model = tuple(d for d in ds if not d.per_input)
        inp = tuple(d for d in ds if d.per_input) if i < input_members else ()
        return PairJob(att, int(seed) + i, bool(quick), model, inp, policy, measure, cache, form,
                       tuple(also_forms))  # fmt: skip

    t0 = time.perf_counter()
    first, skipped, start, rest_dets = [], {}, 0, dets
    if budget is not None:
        first = [score_pair(job(0, dets))]
        kept, skipped = _keep(first[0], dets, int(n), input_members, n_jobs, budget)
        for name in skipped:
            first[0].outcomes.pop(name, None)
            first[0].inputs.pop(name, None)
        start, rest_dets = 1, tuple(kept)
    jobs = [job(i, rest_dets) for i in range(start, int(n))]
    slots: dict[int, PairScores] = {}
    desc = label or f"scoring {len(jobs)} seeds of {att.name}"
    for i, res in run_jobs(score_pair, jobs, n_jobs, scheduler, desc):
        slots[i] = res
    pairs = first + [slots[i] for i in range(len(jobs))]
    return PairTable(att.name, pairs, time.perf_counter() - t0, skipped)
