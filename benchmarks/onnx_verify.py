"""Benchmark: Ed25519 verification as ONNX operators in onnxruntime's CPU provider.

Prints, for a fixed key and message length: node count (Loop bodies included), serialized model
bytes, build and session-load time, and the median ms per signature at several batch sizes
(valid signatures, interleaved repetitions, one intra-op thread unless --threads).

Run: .venv/bin/python benchmarks/onnx_verify.py [--msg-len 850] [--batches 1 64 1000] [--reps 7]
"""

from __future__ import annotations

import argparse
import time

import nacl.signing
import numpy as np
import onnxruntime as ort

from backdoors.hazmat.onnx_crypto import ed25519_verify_model
from backdoors.hazmat.onnx_crypto.builder import count_nodes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--msg-len", type=int, default=850)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64, 1000])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    key = nacl.signing.SigningKey(bytes(range(32)))
    t0 = time.perf_counter()
    model = ed25519_verify_model(bytes(key.verify_key), args.msg_len)
    build_s = time.perf_counter() - t0
    blob = model.SerializeToString()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    t0 = time.perf_counter()
    sess = ort.InferenceSession(blob, opts, providers=["CPUExecutionProvider"])
    load_s = time.perf_counter() - t0
    print(f"msg_len={args.msg_len} opset={model.opset_import[0].version} threads={args.threads}")
    print(f"nodes (incl. Loop bodies): {count_nodes(model.graph)}")
    print(f"model bytes: {len(blob)}")
    print(f"build s: {build_s:.2f}  session load s: {load_s:.2f}")

    rng = np.random.default_rng(0)
    n_max = max(args.batches)
    msgs = rng.integers(0, 256, (n_max, args.msg_len), dtype=np.uint8)
    sigs = np.stack([np.frombuffer(key.sign(m.tobytes()).signature, np.uint8) for m in msgs])
    feeds = {n: {"msg": msgs[:n], "sig": sigs[:n]} for n in args.batches}
    (valid,) = sess.run(None, feeds[n_max])
    assert valid.all(), "a valid signature was rejected"
    times: dict[int, list[float]] = {n: [] for n in args.batches}
    for _ in range(args.reps):  # interleaved over batch sizes
        for n in args.batches:
            t0 = time.perf_counter()
            sess.run(None, feeds[n])
            times[n].append(time.perf_counter() - t0)
    for n in args.batches:
        med = float(np.median(times[n]))
        print(f"batch {n:5d}: {1e3 * med:9.2f} ms per call, {1e3 * med / n:8.3f} ms per signature")


if __name__ == "__main__":
    main()
