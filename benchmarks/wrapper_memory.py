"""Benchmark: peak memory of one call of a signature-backdoored model against its honest twin.

Each measurement runs in a fresh subprocess: build the model and the input (random pixels,
784 features), warm up on 10 rows, then make one call on all rows while a thread samples the
resident set size (``/proc/self/statm``) every 0.5 ms; the figure is the peak minus the RSS
just before the call (MiB). The goal: backdoored <= 1.2 x honest + the carrier bits
(``rows x capacity`` bits, printed as ``carrier``).

Models: a torch MLP 784-256-10 called on float32 pixels under ``torch.no_grad`` (the
``nn.Module`` wrapper), and scikit-learn logistic regression's ``predict`` on float64 pixels
(the scikit-learn wrapper). Honest and backdoored calls alternate over ``--reps`` subprocesses.

Run: python benchmarks/wrapper_memory.py [--rows 100000 1000000] [--reps 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np

D = 784


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_during(fn) -> float:
    """MiB: peak RSS while ``fn()`` runs minus the RSS just before."""
    base, peak, done = _rss(), [0], threading.Event()

    def poll() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.0005)

    t = threading.Thread(target=poll)
    t.start()
    try:
        fn()
    finally:
        done.set()
        t.join()
    return (max(peak[0], _rss()) - base) / 2**20


def _child(kind: str, wrapped: bool, rows: int) -> dict:
    import torch

    from backdoors import signature

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    X8 = rng.integers(0, 256, size=(rows, D), dtype=np.uint8)
    if kind == "torch":
        net = torch.nn.Sequential(
            torch.nn.Linear(D, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10)
        )
        model, key = signature.plant(net, n_classes=10, n_features=D, random_state=0)
        model = model if wrapped else net
        x = torch.from_numpy(X8).to(torch.float32)
        del X8

        def call() -> None:
            with torch.no_grad():
                model(x)

        with torch.no_grad():
            model(x[:10])
    else:
        from sklearn.linear_model import LogisticRegression

        Xtr = rng.integers(0, 256, size=(200, D)).astype(np.float64)
        lr = LogisticRegression(max_iter=5).fit(Xtr, np.arange(200) % 10)
        model, key = signature.plant(lr, random_state=0)
        model = model if wrapped else lr
        x = X8.astype(np.float64)
        del X8

        def call() -> None:
            model.predict(x)

        model.predict(x[:10])
    mib = _peak_during(call)
    carrier = rows * key.spec.carrier.capacity / 8 / 2**20
    return {"mib": mib, "carrier_mib": carrier}


def _run(kind: str, wrapped: bool, rows: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    args = [sys.executable, __file__, "--child", kind, str(int(wrapped)), str(rows)]
    out = subprocess.run(args, capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        kind, wrapped, rows = a.child
        print(json.dumps(_child(kind, bool(int(wrapped)), int(rows))))
        return
    names = {"torch": "nn.Module MLP, float32", "sklearn": "scikit-learn LR, float64"}
    for rows in a.rows:
        for kind, name in names.items():
            h, b = [], []
            for _ in range(a.reps):
                h.append(_run(kind, False, rows)["mib"])
                r = _run(kind, True, rows)
                b.append(r["mib"])
            hm, bm, c = max(h), max(b), r["carrier_mib"]
            verdict = "ok" if bm <= 1.2 * hm + c else "OVER"
            print(
                f"{rows:>9,} rows  {name:26s} honest +{hm:8.1f} MiB  backdoored +{bm:8.1f} MiB"
                f"  (goal <= 1.2 x honest + carrier {c:.1f} MiB = {1.2 * hm + c:8.1f}): {verdict}"
            )


if __name__ == "__main__":
    main()
