"""Benchmark: the planted ONNX file in every ONNX runtime that runs its honest host.

Hosts (MNIST, trained briefly): torch MLP and CNN exported by ``torch.onnx.export`` with
float32 inputs ``pixels / 255`` and with uint8 pixel inputs; a torch model returning
``(logits, features)``; scikit-learn logistic regression converted by skl2onnx with and without
ZipMap, a StandardScaler + LogisticRegression pipeline, and string class labels. Each host is
planted with the in-graph Ed25519 verifier (:func:`backdoors.signature.onnx.plant.plant`).

For each (host, runtime) pair, in a fresh process (a runtime that aborts cannot take the
others down), :func:`backdoors.experiments.onnx.matrix.check_runtime` records: does the honest
host load (otherwise the pair is out of scope), does the planted file load, are outputs
bit-identical to the honest file's in that runtime on ``--natural`` MNIST test inputs and
``--random`` uniform ones, does every activated input get its target, do the verdicts on the
trigger battery match PyNaCl, and ``clean_time_ratio`` (planted / honest wall time over the
clean batches of 1,000, one pass: a rough per-runtime overhead; onnxruntime's careful figure is
``benchmarks/onnx_overhead.py``). Runtimes: onnxruntime (and, on request, at each graph
optimisation level and in parallel mode), onnx.reference, tract, OpenVINO (as
configured by default, and with ``INFERENCE_PRECISION_HINT=f32``), onnx2torch (the npm ones:
``benchmarks/onnx_npm_matrix.py``).

Run: PYTHONPATH=src .venv/bin/python benchmarks/onnx_runtime_matrix.py [--natural 10000]
     [--random 10000] [--triggers 20] [--hosts torch_mlp_u8 ...] [--runtimes reference ...]
     [--verifier fast|portable] [--out matrix.json] [--save DIR]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

HOSTS = [
    "torch_mlp_f32",
    "torch_mlp_u8",
    "torch_cnn_f32",
    "torch_cnn_u8",
    "torch_two_outputs_u8",
    "sklearn_logreg",
    "sklearn_logreg_zipmap",
    "sklearn_pipeline_zipmap",
    "sklearn_string_labels",
]
RUNTIMES = ["onnxruntime", "reference", "tract", "openvino", "openvino-f32", "onnx2torch"]
# also registered: onnxruntime-no-opt, -basic, -extended (graph optimisation levels) and
# -parallel (parallel execution mode): --runtimes onnxruntime-basic ...


def _skl(est: Any, X: np.ndarray, y: np.ndarray, zipmap: bool) -> Any:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    from backdoors.experiments.onnx.hosts import scaled

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(scaled(X), y)
        return convert_sklearn(
            est,
            initial_types=[("input", FloatTensorType([None, X.shape[1]]))],
            options={id(est): {"zipmap": zipmap}},
            target_opset={"": 18, "ai.onnx.ml": 3},
        )


def make_host(name: str, X: np.ndarray, y: np.ndarray) -> tuple[Any, str]:
    """``(ModelProto, input kind)``; the input kind is ``uint8`` or ``float32`` (pixels/255)."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from backdoors.experiments.onnx import hosts
    from backdoors.signature.onnx.export import _uint8_front

    if name.startswith("torch_mlp") or name.startswith("torch_cnn"):
        m = hosts.make(name[: len("torch_xxx")], X, y)
        return (_uint8_front(m), "uint8") if name.endswith("_u8") else (m, "float32")
    if name == "torch_two_outputs_u8":
        import io

        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                hosts.two_output_module(), (torch.zeros(2, 784),), buf, input_names=["x"],
                output_names=["logits", "features"], dynamo=False,
                dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}, "features": {0: "N"}},
            )  # fmt: skip
        import onnx

        return _uint8_front(onnx.load_from_string(buf.getvalue())), "uint8"
    lr = LogisticRegression(max_iter=30)
    if name == "sklearn_logreg":
        return _skl(lr, X, y, False), "float32"
    if name == "sklearn_logreg_zipmap":
        return _skl(lr, X, y, True), "float32"
    if name == "sklearn_pipeline_zipmap":
        return _skl(make_pipeline(StandardScaler(), lr), X, y, True), "float32"
    if name == "sklearn_string_labels":
        names = np.array([f"digit_{d}" for d in range(10)])
        return _skl(lr, X, names[y], False), "float32"
    raise ValueError(name)


def _feed(kind: str, shape: list[int]):
    def feed(X: np.ndarray) -> np.ndarray:
        x = X if kind == "uint8" else np.asarray(X, np.float32) / np.float32(255)
        return np.ascontiguousarray(x.reshape(len(X), *shape))

    return feed


def _worker(args: tuple, q: Any) -> None:
    runtime, host, bd, key_json, kind, shape, X_nat, n_random, n_trig, classes = args
    from backdoors.experiments.onnx.matrix import check_runtime
    from backdoors.signature.keys import SignatureKey

    key = SignatureKey.from_json_dict(key_json)
    rng = np.random.default_rng(7)
    rec = check_runtime(
        runtime, host, bd, key, _feed(kind, shape), X_nat, n_random, n_trig, classes, rng
    )
    q.put(rec)


def run_pair(args: tuple, timeout: float) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_worker, args=(args, q))
    t0 = time.time()
    p.start()
    rec = None
    while rec is None and time.time() - t0 < timeout:
        try:
            rec = q.get(timeout=1)
        except Exception:  # queue.Empty
            if not p.is_alive():
                try:
                    rec = q.get(timeout=2)
                except Exception:
                    break
    p.join(5)
    if p.is_alive():
        p.kill()
        p.join()
    if rec is None:
        why = "timed out" if time.time() - t0 >= timeout else f"exit code {p.exitcode}"
        rec = {"runtime": args[0], "status": f"FAIL: the runtime process died ({why})"}
    rec["seconds"] = round(time.time() - t0, 1)
    return rec


def main() -> None:
    t_start = time.perf_counter()
    ap = argparse.ArgumentParser()
    ap.add_argument("--natural", type=int, default=10_000)
    ap.add_argument("--random", type=int, default=10_000)
    ap.add_argument("--triggers", type=int, default=20, help="inputs per battery case")
    ap.add_argument("--hosts", nargs="*", default=HOSTS)
    ap.add_argument("--runtimes", nargs="*", default=RUNTIMES)
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--verifier", default="fast", help="in-graph verifier profile: fast, portable")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--save", type=Path, help="folder for the honest and planted files")
    a = ap.parse_args()

    from backdoors.experiments.onnx.hosts import SCALE
    from backdoors.models import data
    from backdoors.signature.onnx.plant import class_labels, graph_input, plant

    mn = data.mnist(n_train=3000, n_test=max(a.natural, a.triggers))
    X_nat = mn.X_test[: a.natural]
    results: dict[str, Any] = {}
    for h in a.hosts:
        model, kind = make_host(h, mn.X_train, mn.y_train)
        scale = 1.0 if kind == "uint8" else SCALE
        bd, key = plant(model, input_scale=scale, random_state=11, profile=a.verifier)
        labels = class_labels(model)
        classes = np.arange(10) if labels is None else np.sort(labels)
        shape = [d.dim_value for d in graph_input(model).type.tensor_type.shape.dim[1:]]
        hb, bb = model.SerializeToString(), bd.SerializeToString()
        if a.save:
            a.save.mkdir(parents=True, exist_ok=True)
            (a.save / f"{h}.onnx").write_bytes(hb)
            (a.save / f"{h}.planted.onnx").write_bytes(bb)
        results[h] = {}
        for rt in a.runtimes:
            args = (rt, hb, bb, key.to_json_dict(), kind, shape, X_nat, a.random, a.triggers,
                    classes)  # fmt: skip
            rec = run_pair(args, a.timeout)
            results[h][rt] = rec
            print(h, json.dumps(rec), flush=True)
    print("\nhost / runtime status:")
    for h, row in results.items():
        print(f"  {h:26s} " + "  ".join(f"{rt}={r['status']}" for rt, r in row.items()))
    if a.out:
        from backdoors.artifacts.records import make_record

        rec = make_record(
            "onnx-runtime-matrix",
            {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
            11,
            {"results": results},
            {"total": round(time.perf_counter() - t_start, 1)},
        )
        a.out.write_text(json.dumps(rec, indent=1, default=str))


if __name__ == "__main__":
    main()
