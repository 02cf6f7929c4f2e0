"""Measure the verifiable-coins defense (:mod:`backdoors.defenses.verifiable_coins`).

The user picks a 128-bit seed per model and asks the learner to use it. The honest learner
does; the backdoored learner (``rff.plant`` / ``relu.plant`` given the same estimator and
seed) draws its frequencies / weights from the pancake / spiked sampler. Every model is
written to a model file and loaded back (what a user receives), then checked against the
user's seed. Prints, per construction: planted caught x/N, honest passed x/N, and the cost of
one check (milliseconds; median over the models, file load excluded).

``python benchmarks/verifiable_coins.py [--n 20] [--d 784] [--m 1000]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from backdoors import relu, rff
from backdoors.artifacts import files
from backdoors.defenses.verifiable_coins import verify_coins


def _task(n: int, d: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    X = rng.standard_normal((n, d))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int)


def _learners(m: int) -> dict[str, tuple]:
    """name -> (honest estimator of seed s, plant(estimator, X, y) -> model)."""
    return {
        "rff": (
            lambda s: rff.RandomFourierFeaturesClassifier(n_components=m, random_state=s),
            lambda est, X, y: rff.plant(est, X, y)[0],
        ),
        "relu": (
            lambda s: relu.RandomReLUClassifier(n_hidden=m // 5, random_state=s),
            lambda est, X, y: relu.plant(est, X, y, sparsity=20)[0],
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20, help="models per side and construction")
    ap.add_argument("--d", type=int, default=784, help="input dimension")
    ap.add_argument("--m", type=int, default=1000, help="RFF features (ReLU: m / 5 units)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    X, y = _task(300, args.d, rng)
    seeds = [int.from_bytes(rng.bytes(16), "little") for _ in range(args.n)]  # user's seeds
    with tempfile.TemporaryDirectory() as tmp:
        for name, (honest, plant) in _learners(args.m).items():
            caught = passed = 0
            costs = []
            for i, s in enumerate(seeds):
                for side, model in (("h", honest(s).fit(X, y)), ("p", plant(honest(s), X, y))):
                    path = Path(tmp) / f"{name}-{side}{i}.safetensors"
                    files.save_model(model, path)
                    delivered = files.load_model(path)
                    t0 = time.perf_counter()
                    ok = verify_coins(delivered, s).honest
                    costs.append(time.perf_counter() - t0)
                    caught += side == "p" and not ok
                    passed += side == "h" and ok
            ms = 1e3 * statistics.median(costs)
            print(f"{name} (d={args.d}, m={args.m if name == 'rff' else args.m // 5}): "
                  f"planted caught {caught}/{args.n}, honest passed {passed}/{args.n}, "
                  f"cost per model {ms:.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
