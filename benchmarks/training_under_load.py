"""Benchmark: the same MNIST training alone and beside a CPU hog, per torch thread policy.

Each run is a fresh subprocess training the package's MNIST MLP (784-256-10, ``--rows``
images, one epoch). "beside a hog": as many busy-looping processes as the cores this process
may use (``os.sched_getaffinity``), each stopping by itself after ``--hog-seconds`` at most
and killed when the training ends. Policies: ``package`` (what ``TorchClassifier.fit`` does:
:func:`backdoors.threads.torch_threads`), and torch's own default (``torch-default``, the
thread count torch picks at start-up). ``OMP_NUM_THREADS`` is unset in both.

Prints the wall time of each (policy, alone / beside the hog) pair and the slowdown ratio.

Run: python benchmarks/training_under_load.py [--rows 10000] [--hog-seconds 120]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HOG = (
    "import time, sys\nt = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < t: pass"
)


def _child(policy: str, rows: int) -> dict:
    import torch

    from backdoors.models import data
    from backdoors.models.torch_models import TorchClassifier, mnist_mlp_params

    ds = data.mnist(n_train=rows, n_test=10)
    params = {**mnist_mlp_params(True, 0), "epochs": 1}
    clf = TorchClassifier(**params)
    seen = []
    clf._loss = lambda m, xb, yb: (  # record the thread count training runs with
        seen.append(torch.get_num_threads()) or TorchClassifier._loss(clf, m, xb, yb)
    )
    t0 = time.perf_counter()
    clf.fit(ds.X_train, ds.y_train)
    return {"seconds": time.perf_counter() - t0, "threads": seen[0]}


def _run(policy: str, rows: int, hog_seconds: float, hog: bool) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(var, None)
    if policy == "torch-default":
        env["BACKDOORS_TORCH_THREADS"] = "torch"
    hogs = []
    if hog:
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        hogs = [subprocess.Popen([sys.executable, "-c", HOG, str(hog_seconds)]) for _ in range(n)]
    try:
        args = [sys.executable, __file__, "--child", policy, str(rows)]
        out = subprocess.run(args, capture_output=True, text=True, env=env, check=True)
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--hog-seconds", type=float, default=120.0)
    ap.add_argument("--policies", nargs="+", default=["package", "torch-default"])
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(_child(a.child[0], int(a.child[1]))))
        return
    load = os.getloadavg()[0]
    print(f"load average at start {load:.1f}; cores available {len(os.sched_getaffinity(0))}")
    for policy in a.policies:
        alone = _run(policy, a.rows, a.hog_seconds, hog=False)
        hogged = _run(policy, a.rows, a.hog_seconds, hog=True)
        print(
            f"{policy:14s} ({alone['threads']} torch threads): alone {alone['seconds']:6.1f} s, "
            f"beside the hog {hogged['seconds']:6.1f} s, slowdown "
            f"{hogged['seconds'] / alone['seconds']:.2f}x"
        )


if __name__ == "__main__":
    main()
