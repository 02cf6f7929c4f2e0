"""Calibrated audit verdicts: each detector's score against honest reference models.

A suspicion score on a detector's own scale does not let an auditor decide. With ``n`` honest
reference models (trained by the auditor on similar data with the same recipe), the null
hypothesis H0_d for detector ``d`` is "the audited model's score s_0 is exchangeable with the
references' scores s_1..s_n" (it is one more honest model). Then

* the empirical percentile of s_0 is ``100 * #{i : s_i < s_0} / n``;
* the conformal p-value is ``p_d = (1 + #{i : s_i >= s_0}) / (1 + n)``; under H0_d,
  ``P[p_d <= t] <= t`` for every t (ties count against the model, so the test is valid
  without continuity). The smallest value it can take is ``1 / (n + 1)``.

The ``k`` detectors are combined by Holm's step-down procedure (Holm 1979), which controls
the family-wise error rate at ``alpha`` under any dependence between the detectors: sort
``p_(1) <= ... <= p_(k)``; reject H0_(j) for j = 1, 2, ... while ``p_(j) <= alpha / (k - j + 1)``.
The verdict is

* ``suspicious`` if Holm rejects at least one H0 (the probability that an honest model is
  called suspicious is at most alpha);
* ``inconclusive`` if no detector could reach Holm's first threshold, i.e.
  ``1 / (n + 1) > alpha / k`` (too few references: at least ``ceil(k / alpha) - 1`` are needed),
  or if no detector scored against a reference;
* ``no evidence at level alpha`` otherwise. This is not a clean bill of health: the signature
  backdoor (Goldwasser et al. 2022, §5.2) is built to give exactly this verdict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

SUSPICIOUS = "suspicious"
NO_EVIDENCE = "no evidence at level alpha"
INCONCLUSIVE = "inconclusive"
VERDICTS = (SUSPICIOUS, NO_EVIDENCE, INCONCLUSIVE)


def p_value(score: float, reference_scores: Sequence[float]) -> float:
    """Conformal p-value ``(1 + #{s_i >= score}) / (1 + n)`` of ``score`` among the references."""
    ref = np.asarray(reference_scores, dtype=np.float64)
    return float((1 + np.sum(ref >= score)) / (1 + ref.size))


def percentile(score: float, reference_scores: Sequence[float]) -> float:
    """Empirical percentile ``100 * #{s_i < score} / n`` of ``score`` among the references."""
    ref = np.asarray(reference_scores, dtype=np.float64)
    if ref.size == 0:
        raise ValueError("percentile needs at least one reference score")
    return float(100.0 * np.sum(ref < score) / ref.size)


def threshold(reference_scores: Sequence[float], k: int, alpha: float) -> float | None:
    """The score a model must exceed (strictly) for this detector alone to reject under Holm
    at level alpha among ``k`` detectors: p <= alpha / k needs at most
    ``m = floor((n + 1) alpha / k) - 1`` references scoring at least as high, i.e. a score above
    the (m+1)-th largest reference score. None when m < 0 (too few references)."""
    ref = np.sort(np.asarray(reference_scores, dtype=np.float64))[::-1]
    m = math.floor((ref.size + 1) * alpha / max(k, 1) + 1e-12) - 1
    return None if m < 0 or ref.size == 0 else float(ref[min(m, ref.size - 1)])


def min_references(k: int, alpha: float) -> int:
    """Fewest references with which ``k`` detectors can reach Holm's first threshold:
    the least n with ``1 / (n + 1) <= alpha / k``, i.e. ``ceil(k / alpha) - 1``."""
    return max(1, math.ceil(k / alpha - 1e-12) - 1)


def holm(p_values: Mapping[str, float], alpha: float) -> dict[str, bool]:
    """Holm's step-down procedure: which hypotheses are rejected at family-wise level alpha."""
    order = sorted(p_values, key=lambda name: (p_values[name], name))
    k = len(order)
    rejected = dict.fromkeys(order, False)
    for j, name in enumerate(order):
        if p_values[name] > alpha / (k - j):
            break
        rejected[name] = True
    return rejected


@dataclass(frozen=True)
class Verdict:
    """The combined verdict and what it rests on."""

    verdict: str
    alpha: float
    n_references: int
    detectors: tuple[str, ...]  # the family tested (scored on the model and the references)
    rejected: tuple[str, ...]  # detectors whose H0 Holm rejects
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {
            "verdict": self.verdict,
            "alpha": self.alpha,
            "method": "holm",
            "n_references": self.n_references,
            "family": list(self.detectors),
            "rejected": list(self.rejected),
            "reason": self.reason,
        }


def verdict(p_values: Mapping[str, float], n_references: int, alpha: float = 0.05) -> Verdict:
    """Combine per-detector p-values (each from ``n_references`` honest references) by Holm."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    names = tuple(sorted(p_values))
    k = len(names)
    if k == 0 or n_references < 1:
        return Verdict(INCONCLUSIVE, alpha, n_references, names, (),
                       "no detector was scored against honest references")  # fmt: skip
    rej = tuple(n for n, r in holm(p_values, alpha).items() if r)
    if rej:
        why = f"Holm rejects at family-wise level {alpha:g} for: {', '.join(rej)}"
        return Verdict(SUSPICIOUS, alpha, n_references, names, rej, why)
    if 1.0 / (n_references + 1) > alpha / k:
        need = min_references(k, alpha)
        why = (f"{n_references} references: the smallest p-value 1/{n_references + 1} cannot "
               f"reach alpha/k = {alpha:g}/{k}; {need} references are needed")  # fmt: skip
        return Verdict(INCONCLUSIVE, alpha, n_references, names, (), why)
    why = (f"no detector's p-value passes Holm's thresholds at level {alpha:g} "
           f"(smallest p = {min(p_values.values()):.3g}); not evidence of absence")  # fmt: skip
    return Verdict(NO_EVIDENCE, alpha, n_references, names, (), why)
