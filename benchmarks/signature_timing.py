"""Benchmark: the signature backdoor's timing side channel and activation throughput.

Prints, measured in one process with interleaved repetitions (ratios, since machines are noisy):
  predict overhead ratio (backdoored / honest predict on 10,000 natural MNIST inputs) for the
  demo MLP and for logistic regression, the same for the constant-time mode (every input
  verified) on 10,000 inputs and on single rows, and activations/s against bare Ed25519 signs/s.

Run: .venv/bin/python benchmarks/signature_timing.py [--reps 31]
"""

from __future__ import annotations

import argparse
import warnings

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from backdoors import signature
from backdoors.demos._common import demo_classifier_params
from backdoors.experiments.signature import interleaved_ratio, sign_throughput
from backdoors.models import data
from backdoors.models.torch_models import TorchClassifier


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=31)
    args = ap.parse_args()
    ds = data.mnist()
    X = ds.X_test
    mlp = TorchClassifier(**demo_classifier_params(quick=True)).fit(
        ds.X_train[:20000], ds.y_train[:20000]
    )
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
