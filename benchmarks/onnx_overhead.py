"""Benchmark: predict overhead of the backdoored ONNX graph over its host, and where it goes.

Builds the host of ``backdoors experiment onnx --quick`` (MNIST 784-256-10 MLP exported by
``torch.onnx.export``, float32 inputs ``pixels / 255``), plants it with the current code (the
real in-graph Ed25519; one model per ``--screen-bits`` value, default the plant default), and
times host and backdoored sessions (``runtime.session``: CPU provider, one intra-op thread,
onnxruntime's default ``ORT_ENABLE_ALL`` graph optimizations) on natural MNIST test inputs at
batch 1,000 and 1: interleaved repetitions in alternating order after a warm-up, medians of
wall-clock and thread-CPU time, and the median of per-repetition ratios. ``--compare F.onnx``
adds models built elsewhere from the same host (``--save-host`` writes it), e.g. by another
commit. ``--profile`` prints onnxruntime's per-node kernel times of the added nodes
(``SessionOptions.enable_profiling``; the profiler adds ~1-2 us per node).

Run: PYTHONPATH=src .venv/bin/python benchmarks/onnx_overhead.py [--reps 300] [--profile]
     [--screen-bits 16 48] [--save-host host.onnx] [--host host.onnx] [--compare other.onnx]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from backdoors import signature
from backdoors.experiments.onnx import hosts
from backdoors.experiments.onnx.hosts import SCALE, scaled
from backdoors.models import data
from backdoors.signature.onnx.plant import plant_spec
from backdoors.signature.onnx.runtime import session


def _interleaved(sessions: dict, X: np.ndarray, reps: int, inner: int) -> dict:
    feeds = {k: {s.get_inputs()[0].name: X} for k, s in sessions.items()}
    wall, cpu = defaultdict(list), defaultdict(list)
    names = list(sessions)
    for r in range(reps + 5):
        for k in names if r % 2 == 0 else names[::-1]:
            s, f = sessions[k], feeds[k]
            w, c = time.perf_counter(), time.thread_time()
            for _ in range(inner):
                s.run(None, f)
            if r >= 5:  # warm-up
                cpu[k].append((time.thread_time() - c) / inner)
                wall[k].append((time.perf_counter() - w) / inner)
    return {"wall": {k: np.array(v) for k, v in wall.items()},
            "cpu": {k: np.array(v) for k, v in cpu.items()}}  # fmt: skip


def _profile(model: onnx.ModelProto, X: np.ndarray, runs: int) -> dict[str, float]:
    """Mean kernel time per run (us) of every node, from onnxruntime's profiler."""
    o = ort.SessionOptions()
    o.intra_op_num_threads, o.inter_op_num_threads, o.log_severity_level = 1, 1, 3
    o.enable_profiling = True
    o.profile_file_prefix = str(Path(tempfile.gettempdir()) / "onnx-overhead-prof")
    s = ort.InferenceSession(model.SerializeToString(), o, providers=["CPUExecutionProvider"])
    feed = {s.get_inputs()[0].name: X}
    for _ in range(runs):
        s.run(None, feed)
    path = Path(s.end_profiling())
    events = json.loads(path.read_text())
    path.unlink()
    n = sum(e.get("name") == "model_run" for e in events)
    per: dict[str, float] = defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per[f"{e['args'].get('op_name')} {e['name'][: -len('_kernel_time')]}"] += e["dur"]
    return {k: v / n for k, v in sorted(per.items(), key=lambda kv: -kv[1])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--reps", type=int, default=300)
    ap.add_argument("--screen-bits", type=int, nargs="*", default=[None])
    ap.add_argument("--host", help="an ONNX host file instead of training the quick host")
    ap.add_argument("--save-host", help="write the host to this file")
    ap.add_argument("--compare", nargs="*", default=[], help="more backdoored ONNX files")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument(
        "--verifiers", nargs="*", default=["fast", "portable"], help="in-graph verifier profiles"
    )
    args = ap.parse_args()

    ds = data.mnist(n_train=2000, n_test=1000)
    if args.host:
        host = onnx.load(args.host)
    else:  # the host of `backdoors experiment onnx --quick`
        host = hosts.make("torch_mlp", ds.X_train, ds.y_train, seed=0, epochs=1)
    if args.save_host:
        onnx.save(host, args.save_host)
    key = signature.generate(784, 10, "lsb", random_state=0)
    models = {"host": host}
    for sb in args.screen_bits:
        for vp in args.verifiers:
            models[f"{vp}, screen={sb if sb is not None else 'default'}"] = plant_spec(
                host, key.spec, input_scale=SCALE, screen_bits=sb, profile=vp
            )
    for f in args.compare:
        models[os.path.basename(f)] = onnx.load(f)
    X = scaled(ds.X_test)
    sessions = {k: session(m) for k, m in models.items()}
    ref = sessions["host"].run(None, {sessions["host"].get_inputs()[0].name: X})
    for k, s in sessions.items():  # clean outputs bit-identical
        out = s.run(None, {s.get_inputs()[0].name: X})
        assert all(a.tobytes() == b.tobytes() for a, b in zip(out, ref, strict=True)), k
    print(f"onnxruntime {ort.__version__}, load average {os.getloadavg()[0]:.2f}, "
          f"{args.reps} interleaved repetitions")  # fmt: skip
    for batch, inner in ((1000, 1), (1, 50)):
        t = _interleaved(sessions, X[:batch], args.reps, inner)
        hw, hc = np.median(t["wall"]["host"]), np.median(t["cpu"]["host"])
        print(f"batch {batch}: host {1e6 * hw:.1f} us wall, {1e6 * hc:.1f} us CPU")
        for k in list(sessions)[1:]:
            w, c = t["wall"][k], t["cpu"][k]
            pair = np.median(w / t["wall"]["host"])
            print(f"  {k:24s} ratio wall {np.median(w) / hw:.3f}  CPU {np.median(c) / hc:.3f}  "
                  f"per-rep {pair:.3f}  (+{1e6 * (np.median(w) - hw):.1f} us)")  # fmt: skip
    if args.profile:
        for k, m in list(models.items())[1:]:
            prof = _profile(m, X, 200)
            added = {n: v for n, v in prof.items() if "sigcheck" in n}
            print(f"profile {k} (batch 1000, us per run): host nodes "
                  f"{sum(v for n, v in prof.items() if n not in added):.1f}, added "
                  f"{sum(added.values()):.1f}")  # fmt: skip
            for n, v in added.items():
                print(f"  {v:8.1f}  {n}")


if __name__ == "__main__":
    main()
