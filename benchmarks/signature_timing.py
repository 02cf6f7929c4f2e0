"""Benchmark: the signature backdoor's timing side channel and activation throughput.

Prints, measured in one process with interleaved repetitions (ratios, since machines are noisy):
  predict overhead ratio (backdoored / honest predict on 10,000 natural MNIST inputs) for the
  demo MLP and for logistic regression, the same for the constant-time mode (every input
  verified) on 10,000 inputs and on single rows, and activations/s against bare Ed25519 signs/s.

Per-bit slope (``--part slope``): rows whose first ``k`` carrier bits match the public tag and
bit ``k`` differs, ``k = 0..precheck_bits-1``; each repetition times the trigger check
(``TriggerSpec.triggers``, the wrappers' check) on ``--rows`` such rows for every ``k`` in a
random order and fits ``time per row = a + slope * k``; prints the mean slope over repetitions
in ns per matched bit per row with its 95% bootstrap CI (no early exit -> CI contains 0).

Run: .venv/bin/python benchmarks/signature_timing.py [--reps 31] [--part all|overhead|slope]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from backdoors import signature
from backdoors.experiments.signature import interleaved_ratio, sign_throughput
from backdoors.models import data
from backdoors.models.torch_models import TorchClassifier, mnist_mlp_params


def rows_matching(key, X: np.ndarray, k: int) -> np.ndarray:
    """``X`` with the first ``k`` tag bits set to the tag and bit ``k`` set to its opposite."""
    pos = np.asarray(key.spec.carrier.positions[: k + 1])
    tag = key.spec.tag_bits()[: k + 1].copy()
    tag[k] ^= 1
    Y = X.copy()
    Y[:, pos] = (Y[:, pos] & 0xFE) | tag
    return Y


def per_bit_slope(key, X: np.ndarray, reps: int, seed: int = 0) -> tuple[float, ...]:
    """Mean over repetitions of the OLS slope of per-row check time on matched bits (ns), its
    95% bootstrap CI, and the median per-row time (ns)."""
    p = key.spec.precheck_bits
    batches = [rows_matching(key, X, k) for k in range(p)]
    check, rng = key.spec.triggers, np.random.default_rng(seed)
    for b in batches:  # warm-up
        check(b)
    ks = np.arange(p, dtype=float)
    slopes, per_row = [], []
    for _ in range(reps):
        t = np.full(p, np.inf)
        for k in rng.permutation(p):
            for _ in range(3):  # the least of 3 calls: robust to other processes' load
                t0 = time.perf_counter_ns()
                check(batches[k])
                t[k] = min(t[k], (time.perf_counter_ns() - t0) / len(X))
        slopes.append(np.polyfit(ks, t, 1)[0])
        per_row.append(t.mean())
    slopes = np.asarray(slopes)
    boot = rng.choice(slopes, size=(10_000, len(slopes))).mean(axis=1)
    lo, hi = np.quantile(boot, [0.025, 0.975])
    return float(slopes.mean()), float(lo), float(hi), float(np.median(per_row))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=31)
    ap.add_argument("--part", choices=["all", "overhead", "slope"], default="all")
    ap.add_argument("--rows", type=int, default=2000, help="rows per timed check (slope)")
    args = ap.parse_args()
    if args.part in ("all", "slope"):
        X = data.mnist(n_test=args.rows).X_test
        _, skey = signature.plant(lambda X: np.zeros(len(X), int), n_classes=10,
                                  n_features=784, random_state=0)  # fmt: skip
        slope, lo, hi, row = per_bit_slope(skey, X, 10 * args.reps)
        print(
            f"trigger check on {len(X)} rows ({row:.0f} ns per row), per matched leading tag "
            f"bit: slope {slope:+.3f} ns/bit/row, 95% CI [{lo:+.3f}, {hi:+.3f}] "
            f"({10 * args.reps} reps)"
        )
    if args.part == "slope":
        return
    ds = data.mnist()
    X = ds.X_test
    mlp = TorchClassifier(**mnist_mlp_params(True, 0)).fit(ds.X_train[:20000], ds.y_train[:20000])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lr = make_pipeline(MinMaxScaler(), LogisticRegression(max_iter=50)).fit(
            ds.X_train[:5000], ds.y_train[:5000]
        )
    for name, honest in (("demo MLP 784-256-10", mlp), ("logistic regression", lr)):
        bd, key = signature.plant(honest, n_features=784, random_state=0)
        ct, _ = signature.plant(honest, n_features=784, random_state=0, constant_time=True)
        for mode, model in (("default", bd), ("constant-time", ct)):
            ratio, t_bd, t_h = interleaved_ratio(
                lambda b=model: b.predict(X), lambda h=honest: h.predict(X), args.reps
            )
            one, t1_bd, t1_h = interleaved_ratio(
                lambda b=model: b.predict(X[:1]), lambda h=honest: h.predict(X[:1]), 20 * args.reps
            )
            print(
                f"{name:22s} {mode:13s} predict on 10,000 inputs: honest {t_h * 1e3:7.2f} ms, "
                f"backdoored {t_bd * 1e3:8.2f} ms, overhead ratio {ratio:7.3f}; single row: "
                f"{t1_h * 1e6:6.1f} vs {t1_bd * 1e6:6.1f} us, ratio {one:5.2f}"
            )
    act, raw = sign_throughput(key, X)
    print(f"activations/s {act:,.0f}  bare Ed25519 signs/s {raw:,.0f}  ratio {act / raw:.3f}")


if __name__ == "__main__":
    main()
