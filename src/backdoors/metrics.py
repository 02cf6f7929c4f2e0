"""Metrics used across experiments: agreement, attack success, perturbation norms, AUROC
with bootstrap confidence intervals, TPR at a fixed FPR and distinguishing advantage.

Undetectability is a statement about *distributions* of models (paper §4, DESIGN.md Honesty
rules), so the detection metrics here take one score per model (or per input) from two
populations and compare them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.stats import rankdata

from backdoors.errors import InvalidInputError


def _scores(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64).ravel()
    if a.size == 0:
        raise InvalidInputError(f"{name} is empty")
    if not np.all(np.isfinite(a)):
        raise InvalidInputError(f"{name} contains NaN or inf")
    return a


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise InvalidInputError(f"shape mismatch {y_true.shape} vs {y_pred.shape}")
    return float(np.mean(y_true == y_pred))


def agreement(pred_a: np.ndarray, pred_b: np.ndarray) -> float:
    """Fraction of inputs on which two models give the same prediction."""
    return accuracy(pred_a, pred_b)


def perturbation_norms(
    X: np.ndarray, X_adv: np.ndarray, scale: float = 1.0
) -> dict[str, np.ndarray]:
    """Per-input l0, l2, linf of ``(X_adv - X) / scale`` and l2 relative to ``||X||_2``.

    ``scale`` converts units (e.g. 1 for grey levels of uint8 pixels, 255 for [0,1] units).
    """
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    D = np.asarray(X_adv, dtype=np.float64).reshape(len(X), -1) - X
    D = D / scale
    l2 = np.linalg.norm(D, axis=1)
    xn = np.linalg.norm(X / scale, axis=1)
    return {
        "l0": np.count_nonzero(D, axis=1).astype(np.int64),
        "l2": l2,
        "linf": np.abs(D).max(axis=1) if D.shape[1] else np.zeros(len(D)),
        "l2_over_x": np.divide(l2, xn, out=np.full_like(l2, np.inf), where=xn > 0),
    }


def summarize(values: np.ndarray) -> dict[str, float]:
    """mean / median / min / max of a vector, as plain floats."""
    v = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(v.mean()),
        "median": float(np.median(v)),
        "min": float(v.min()),
        "max": float(v.max()),
    }


def auroc(scores_negative: np.ndarray, scores_positive: np.ndarray) -> float:
    """Area under the ROC curve = P[score(positive) > score(negative)] + ½ P[tie]
    (Mann-Whitney U / (n_neg n_pos)). Positive = backdoored."""
    neg, pos = (
        _scores(scores_negative, "negative scores"),
        _scores(scores_positive, "positive scores"),
    )
    ranks = rankdata(np.concatenate([neg, pos]))
    u = ranks[len(neg) :].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(neg) * len(pos)))


def bootstrap_ci(
    stat: Callable[..., float],
    *samples: np.ndarray,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``stat(*samples)``, resampling each sample independently
    (the resamples of :func:`bootstrap_indices`)."""
    arrays = [np.asarray(s) for s in samples]
    idx = bootstrap_indices(tuple(len(a) for a in arrays), n_boot, seed)
    vals = np.array([stat(*(a[i[b]] for a, i in zip(arrays, idx, strict=True)))
                     for b in range(n_boot)])  # fmt: skip
    return _percentiles(vals, level)


def _percentiles(vals: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    lo, hi = np.quantile(vals, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def bootstrap_indices(sizes: tuple[int, ...], n_boot: int, seed: int) -> list[np.ndarray]:
    """The resampling indices :func:`bootstrap_ci` draws, one ``(n_boot, size)`` matrix per
    sample: row ``b`` holds the indices of resample ``b`` (the same generator calls in the
    same order, so a statistic computed on these rows equals ``bootstrap_ci``'s)."""
    rng = np.random.default_rng(seed)
    out = [np.empty((n_boot, n), dtype=np.int64) for n in sizes]
    for b in range(n_boot):
        for m, n in zip(out, sizes, strict=True):
            m[b] = rng.integers(0, n, n)
    return out


def auroc_rows(neg: np.ndarray, pos: np.ndarray, chunk: int = 256) -> np.ndarray:
    """:func:`auroc` of every row pair of ``neg`` (R, n) and ``pos`` (R, p), by the same rank
    formula (ranks are half-integers, so the sums are exact and equal the scalar's)."""
    n, p = neg.shape[1], pos.shape[1]
    out = np.empty(len(neg))
    for i in range(0, len(neg), chunk):  # bounded memory for input-level populations
        ranks = rankdata(np.concatenate([neg[i : i + chunk], pos[i : i + chunk]], axis=1), axis=1)
        out[i : i + chunk] = (ranks[:, n:].sum(axis=1) - p * (p + 1) / 2) / (n * p)
    return out


def auroc_with_ci(
    scores_negative: np.ndarray, scores_positive: np.ndarray, n_boot: int = 1000, seed: int = 0
) -> tuple[float, tuple[float, float]]:
    """AUROC and its percentile-bootstrap 95% CI (populations resampled separately); the
    resamples are :func:`bootstrap_ci`'s, scored together (:func:`auroc_rows`)."""
    neg = _scores(scores_negative, "negative scores")
    pos = _scores(scores_positive, "positive scores")
    a = auroc(neg, pos)
    i_neg, i_pos = bootstrap_indices((len(neg), len(pos)), n_boot, seed)
    return a, _percentiles(auroc_rows(neg[i_neg], pos[i_pos]))


def roc_curve(
    scores_negative: np.ndarray, scores_positive: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) over all thresholds, for plots."""
    neg, pos = _scores(scores_negative, "negative"), _scores(scores_positive, "positive")
    thr = np.unique(np.concatenate([neg, pos]))[::-1]
    fpr = np.array([0.0] + [(neg >= t).mean() for t in thr])
    tpr = np.array([0.0] + [(pos >= t).mean() for t in thr])
    return fpr, tpr


def tpr_at_fpr(
    scores_negative: np.ndarray, scores_positive: np.ndarray, fpr: float = 0.05
) -> float:
    """TPR of the threshold that flags at most a fraction ``fpr`` of the negatives."""
    neg, pos = _scores(scores_negative, "negative"), _scores(scores_positive, "positive")
    thr = np.quantile(neg, 1 - fpr, method="higher")
    return float((pos > thr).mean())


def advantage(
    scores_negative: np.ndarray, scores_positive: np.ndarray, threshold: float | None = None
) -> float:
    """|P[A=1 | backdoored] - P[A=1 | honest]| for A = [score > threshold].

    Without a threshold, the best one on these samples (the two-sample KS statistic): an
    optimistic, in-sample estimate; pass a threshold fixed in advance for an unbiased one.
    """
    neg, pos = _scores(scores_negative, "negative"), _scores(scores_positive, "positive")
    if threshold is not None:
        return float(abs((pos > threshold).mean() - (neg > threshold).mean()))
    fpr, tpr = roc_curve(neg, pos)
    return float(np.max(np.abs(tpr - fpr)))


def mean_diff_ci(
    a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0
) -> tuple[float, tuple[float, float]]:
    """mean(b) - mean(a) with a percentile-bootstrap 95% CI."""
    a, b = _scores(a, "a"), _scores(b, "b")
    return float(b.mean() - a.mean()), bootstrap_ci(
        lambda x, y: y.mean() - x.mean(), a, b, n_boot=n_boot, seed=seed
    )


def heldout_advantage(neg: np.ndarray, pos: np.ndarray, n_boot: int = 1000,
                      seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """Advantage of ``A = [orientation * (score - threshold) > 0]`` with orientation (the
    side the even-indexed half's AUROC points to) and threshold (midway between the even
    half's honest and backdoored medians) fixed on the even-indexed members, measured on the
    odd-indexed ones. Not the best threshold on the tuning half: the in-sample best over
    hundreds of thresholds overfits by more than the effect at these sizes."""
    sign = 1 if auroc(neg[0::2], pos[0::2]) >= 0.5 else -1
    t = float(np.median(neg[0::2] * sign) + np.median(pos[0::2] * sign)) / 2
    ne, po = neg[1::2] * sign, pos[1::2] * sign

    i, j = bootstrap_indices((len(ne), len(po)), n_boot, seed)  # bootstrap_ci's resamples
    vals = np.mean(po[j] > t, axis=1) - np.mean(ne[i] > t, axis=1)
    return {"advantage": float(np.mean(po > t) - np.mean(ne > t)), "ci": list(_percentiles(vals)),
            "threshold": sign * t, "orientation": sign}  # fmt: skip


#: Bootstrap resamples of every population summary (AUROC CI, held-out advantage CI).
N_BOOT = 1000


def population_summary(neg: np.ndarray, pos: np.ndarray, n_boot: int = N_BOOT) -> dict[str, Any]:
    """The two-population test of paper Def. 4.5 on suspicion scores (honest = negatives,
    backdoored = positives): AUROC with percentile-bootstrap 95% CI, TPR at 5% FPR, the
    in-sample advantage and (with >= 4 per side) the held-out advantage, all with ``n_boot``
    resamples seeded 0. The one summary every table reports."""
    neg, pos = np.asarray(neg, dtype=float), np.asarray(pos, dtype=float)
    auc, ci = auroc_with_ci(neg, pos, n_boot=n_boot, seed=0)
    return {
        "auroc": auc,
        "auroc_ci": [float(ci[0]), float(ci[1])],
        "tpr_at_5fpr": tpr_at_fpr(neg, pos, 0.05),
        "advantage": advantage(neg, pos),
        "advantage_heldout": heldout_advantage(neg, pos, n_boot=n_boot)
        if min(len(neg), len(pos)) >= 4
        else None,
    }
