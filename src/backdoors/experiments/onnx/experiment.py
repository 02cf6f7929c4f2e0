"""Experiment ``onnx`` (registered in :mod:`backdoors.experiments.onnx`).

An MNIST MLP exported by ``torch.onnx.export`` (float inputs ``pixels / 255``) is planted
with the in-graph Ed25519 verifier (input scale 1/255) and measured in stock onnxruntime:
bit-identical outputs on natural and uniform random inputs (also on torch CNN, sklearn MLP and
logistic-regression hosts), activation success for every target, accept/reject agreement
with libsodium (PyNaCl) on forged and edge-case signatures, the predict overhead at batch
1,000 and 1 (interleaved repetitions), verification cost, graph size, load time, white-box
``onnx_graph_inspection`` AUROC over honest vs planted populations, and what the scanners
``modelscan`` / ``modelaudit`` report (if installed; see
:mod:`backdoors.experiments.onnx.scanners`).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from backdoors import signature
from backdoors.artifacts.records import Timer, make_record
from backdoors.breaks import edge_cases, forgery
from backdoors.detectors.onnx_graph_inspection import OnnxGraphInspection
from backdoors.experiments.onnx import hosts, scanners
from backdoors.experiments.onnx.hosts import SCALE, scaled
from backdoors.metrics import auroc_with_ci
from backdoors.models import data
from backdoors.signature.onnx.graph import iter_nodes, opset_of
from backdoors.signature.onnx.plant import memoized_verifier, plant_spec, screen_bits_for
from backdoors.signature.onnx.runtime import session

FULL = {"n_train": 10_000, "epochs": 2, "n_natural": 10_000, "n_uniform": 10_000,
        "n_act_inputs": 1_000, "per_strategy": 1_000, "per_case": 600, "reps": 1001,
        "n_pop": 20, "pop_train": 3_000, "n_per_host": 1_000}  # fmt: skip
QUICK = {"n_train": 2_000, "epochs": 1, "n_natural": 1_000, "n_uniform": 1_000,
         "n_act_inputs": 20, "per_strategy": 20, "per_case": 12, "reps": 201,
         "n_pop": 4, "pop_train": 1_000, "n_per_host": 200}  # fmt: skip
KINDS = ("torch_mlp", "torch_cnn", "sklearn_mlp", "sklearn_logreg")


def _runner(model: Any):
    s = session(model)
    name = s.get_inputs()[0].name
    return lambda X: s.run(None, {name: X})


def _same(a: list, b: list) -> np.ndarray:
    """Per row: every output of ``a`` equals ``b`` bit for bit."""
    ok = np.ones(len(a[0]), dtype=bool)
    for x, y in zip(a, b, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        if x.dtype != y.dtype or x.shape != y.shape:
            return np.zeros_like(ok)
        ok &= (x.reshape(len(x), -1).view(np.uint8) == y.reshape(len(y), -1).view(np.uint8)).all(1)
    return ok


def _batched(fn, X: np.ndarray, batch: int = 1000) -> list:
    parts = [fn(X[i : i + batch]) for i in range(0, len(X), batch)]
    return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]


def _clean_inputs(X_nat: np.ndarray, n_uniform: int, rng: np.random.Generator) -> dict:
    return {
        "natural": scaled(X_nat),
        "uniform_pixels": scaled(rng.integers(0, 256, (n_uniform, X_nat.shape[1]), np.uint8)),
        "uniform_floats": rng.random((n_uniform, X_nat.shape[1]), dtype=np.float32),
    }


def _graph_accepts(host_run, bd_run, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(accepted, target) per row: a row is accepted iff the backdoored outputs differ from
    the host's (a forced row always differs: its +M exceeds every host logit)."""
    h, b = _batched(host_run, X), _batched(bd_run, X)
    scores = next((o for o in b if np.ndim(o) == 2), None)  # logits / probabilities
    target = np.argmax(scores, axis=1) if scores is not None else np.asarray(b[0])
    return ~_same(h, b), target


def _reference(spec: Any, X_pix: np.ndarray) -> np.ndarray:
    return spec.verify(X_pix)  # PyNaCl (libsodium) per pre-check hit


def _interleaved(slow, fast, reps: int) -> dict[str, float]:
    """Interleaved repetitions of ``fast()`` and ``slow()`` (alternating which goes first,
    after 3 warm-up rounds): median wall and thread-CPU times, their ratios, and the median of
    the per-repetition wall ratios. onnxruntime with one intra-op thread runs in the calling
    thread, so the CPU-time ratio is the cost ratio even while other jobs share the machine."""
    wall: dict[str, list[float]] = {"slow": [], "fast": []}
    cpu: dict[str, list[float]] = {"slow": [], "fast": []}
    order = (("fast", fast), ("slow", slow))
    for r in range(reps + 3):
        for name, fn in order if r % 2 == 0 else order[::-1]:
            w, c = time.perf_counter(), time.thread_time()
            fn()
            if r >= 3:  # warm-up
                cpu[name].append(time.thread_time() - c)
                wall[name].append(time.perf_counter() - w)
    med = {f"{k}_{n}": float(np.median(v[n])) for k, v in (("wall", wall), ("cpu", cpu))
           for n in ("slow", "fast")}  # fmt: skip
    pair = float(np.median(np.array(wall["slow"]) / np.array(wall["fast"])))
    return {**med, "ratio": med["wall_slow"] / med["wall_fast"], "pair_ratio": pair,
            "cpu_ratio": med["cpu_slow"] / med["cpu_fast"]}  # fmt: skip


def _timing(host_run, bd_run, X: np.ndarray, reps: int) -> dict[str, float]:
    big = _interleaved(lambda: bd_run(X[:1000]), lambda: host_run(X[:1000]), reps)
    x1 = X[:1]

    def many(fn):
        return lambda: [fn(x1) for _ in range(50)]

    one = _interleaved(many(bd_run), many(host_run), reps)
    return {
        "ratio_1000": big["ratio"],
        "ratio_1": one["ratio"],
        "cpu_ratio_1000": big["cpu_ratio"],
        "cpu_ratio_1": one["cpu_ratio"],
        "per_rep_ratio_1000": big["pair_ratio"],
        "per_rep_ratio_1": one["pair_ratio"],
        "bd_ms_1000": 1e3 * big["wall_slow"],
        "host_ms_1000": 1e3 * big["wall_fast"],
        "bd_cpu_ms_1000": 1e3 * big["cpu_slow"],
        "host_cpu_ms_1000": 1e3 * big["cpu_fast"],
        "bd_ms_1": 1e3 * one["wall_slow"] / 50,
        "host_ms_1": 1e3 * one["wall_fast"] / 50,
        "load_average_1min": os.getloadavg()[0],
    }


def _kernel_ms(model: Any, X: np.ndarray, runs: int) -> float:
    """Mean per-run sum of onnxruntime's per-node kernel times (its profiler), in ms: the work
    the graph does, less sensitive to scheduling than wall time on a shared machine."""
    import json

    import onnxruntime as ort

    o = ort.SessionOptions()
    o.intra_op_num_threads, o.inter_op_num_threads, o.log_severity_level = 1, 1, 3
    o.enable_profiling = True
    o.profile_file_prefix = str(Path(tempfile.gettempdir()) / "backdoors-onnx-prof")
    s = ort.InferenceSession(model.SerializeToString(), o, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    for _ in range(runs + 3):
        s.run(None, {name: X})
    path = Path(s.end_profiling())
    events = json.loads(path.read_text())
    path.unlink()
    runs_seen = [e for e in events if e.get("name") == "model_run"]
    total = sum(e["dur"] for e in events if e.get("cat") == "Node" and e["name"].endswith(
        "_kernel_time"))  # fmt: skip
    return total / 1e3 / max(1, len(runs_seen))


def _gate_rates(spec: Any, sets: dict[str, np.ndarray], screen_bits: int) -> dict[str, Any]:
    """Share of rows (uint8 pixels) whose first ``screen_bits`` tag bits match (they run the
    cheap second gate stage) and whose whole tag matches (they reach the verifier)."""
    pos = np.asarray(spec.carrier.positions)[: spec.precheck_bits]
    ok = {k: (X[:, pos] & 1) == np.asarray(spec.tag_bits()) for k, X in sets.items()}
    return {"screen_bits": screen_bits, "gate_bits": spec.precheck_bits,
            **{f"screen_pass_{k}": float(v[:, :screen_bits].all(1).mean()) for k, v in ok.items()},
            **{f"gate_pass_{k}": float(v.all(1).mean()) for k, v in ok.items()}}  # fmt: skip


def _population(ds, n_pop: int, n_train: int, seed: int, fixed_key, verifier, timer):
    """Honest and planted hosts of every kind; graph-inspection scores of both. Each planted
    host gets a fresh key unless ``fixed_key`` is given (then ``verifier`` is reused)."""
    det, honest, planted, models = OnnxGraphInspection(), [], [], []
    X, y = ds.X_train[:n_train], ds.y_train[:n_train]
    for i in range(2 * n_pop):
        kind = KINDS[i % len(KINDS)]
        with timer("population_train"):
            host = hosts.make(kind, X, y, seed=seed + 1000 + i)
        if i < n_pop:
            honest.append(det.score(host, None).score)
            continue
        key = fixed_key or signature.generate(784, 10, "lsb", random_state=seed + 2000 + i)
        with timer("population_plant"):
            v = verifier if fixed_key is not None else None
            bd = plant_spec(host, key.spec, input_scale=SCALE, verifier=v)
        planted.append(det.score(bd, None).score)
        models.append((kind, host, bd, key))
    return np.array(honest), np.array(planted), models


def _per_host(models, ds, n: int, rng, reps: int) -> dict[str, Any]:
    """Bit-identity, activation and the predict overhead at batch 1,000 (interleaved, median;
    the backdoor adds a fixed cost per row, so the ratio falls as the host grows) on each
    planted population host."""
    out: dict[str, Any] = {}
    for kind, host, bd, key in models:
        if kind in out:
            continue
        hr, br = _runner(host), _runner(bd)
        ins = _clean_inputs(ds.X_test[:n], n, rng)
        same = all(_same(_batched(hr, v), _batched(br, v)).all() for v in ins.values())
        t = np.arange(20) % 10
        acc, tgt = _graph_accepts(hr, br, scaled(key.activate(ds.X_test[:20], target=t)))
        X = scaled(ds.X_test[:1000])
        tm = _interleaved(lambda X=X, br=br: br(X), lambda X=X, hr=hr: hr(X), reps)
        out[kind] = {"bit_identical": bool(same), "activation_success": float((acc & (tgt == t))
                     .mean()), "nodes": sum(1 for _ in iter_nodes(bd.graph.node)),
                     "overhead_ratio_1000": tm["ratio"], "overhead_cpu_ratio_1000": tm["cpu_ratio"],
                     "host_ms_1000": 1e3 * tm["wall_fast"]}  # fmt: skip
    return out


def run(quick: bool = False, seed: int = 0, out_dir: Path | None = None) -> dict[str, Any]:
    P = QUICK if quick else FULL
    timer, rng = Timer(), np.random.default_rng(seed)
    ds = data.mnist(n_train=max(P["n_train"], P["pop_train"]), n_test=10_000)
    with timer("train_host"):
        host = hosts.make("torch_mlp", ds.X_train[: P["n_train"]], ds.y_train[: P["n_train"]],
                          seed=seed, epochs=P["epochs"])  # fmt: skip
    key = signature.generate(784, 10, "lsb", random_state=seed)
    shared = memoized_verifier()
    with timer("plant"):
        bd = plant_spec(host, key.spec, input_scale=SCALE, verifier=shared)
    tmp = Path(tempfile.mkdtemp(prefix="onnx-exp-"))
    (tmp / "host.onnx").write_bytes(host.SerializeToString())
    (tmp / "backdoored.onnx").write_bytes(bd.SerializeToString())
    with timer("load_backdoored"):
        bd_run = _runner(tmp / "backdoored.onnx")
    with timer("load_host"):
        host_run = _runner(tmp / "host.onnx")

    # 1. bit-identical on natural and uniform random inputs
    with timer("clean"):
        ins = _clean_inputs(ds.X_test[: P["n_natural"]], P["n_uniform"], rng)
        clean = {k: bool(_same(_batched(host_run, v), _batched(bd_run, v)).all())
                 for k, v in ins.items()}  # fmt: skip
    # 2. predict timing on natural inputs, before any verification ran in these sessions
    with timer("timing_predict"):
        tm = _timing(host_run, bd_run, ins["natural"], P["reps"])
        k_host = _kernel_ms(host, ins["natural"][:1000], min(P["reps"], 201))
        k_bd = _kernel_ms(bd, ins["natural"][:1000], min(P["reps"], 201))
        tm.update(host_kernel_ms_1000=k_host, bd_kernel_ms_1000=k_bd)
    # 3. activation: every input x every target
    with timer("activation"):
        Xn = ds.X_test[: P["n_act_inputs"]]
        Xact = np.concatenate([key.activate(Xn, target=t) for t in range(10)])
        t_act = np.repeat(np.arange(10), len(Xn))
        acc, tgt = _graph_accepts(host_run, bd_run, scaled(Xact))
        activation = float((acc & (tgt == t_act)).mean())
    # 4. forged and edge-case inputs: graph accept/reject vs PyNaCl
    with timer("reference"):
        oracle = forgery.Oracle(ds.X_test[:2000], Xact, t_act)
        cands = {n: s(key.spec, oracle, P["per_strategy"], rng) for n, s in
                 forgery.STRATEGIES.items()}  # fmt: skip
        cands.update(edge_cases.candidates(key, ds.X_test[:2000], P["per_case"], rng))
        cands["valid"] = Xact[rng.integers(0, len(Xact), P["per_case"])]
        by_case, disagreements, n_ref = {}, 0, 0
        for name, C in cands.items():
            ref = _reference(key.spec, C)
            g_acc, g_t = _graph_accepts(host_run, bd_run, scaled(C))
            bad = (g_acc != (ref >= 0)) | (g_acc & (g_t != ref))
            by_case[name] = {
                "n": len(C),
                "accepted_reference": int((ref >= 0).sum()),
                "accepted_graph": int(g_acc.sum()),
                "disagreements": int(bad.sum()),
            }
            disagreements += int(bad.sum())
            n_ref += len(C)
    # 5. verification cost
    with timer("timing"):
        act64 = scaled(Xact[:64])
        t0 = time.perf_counter()
        bd_run(act64)
        v64 = (time.perf_counter() - t0) * 1e3 / 64
        t0 = time.perf_counter()
        for i in range(8):
            bd_run(act64[i : i + 1])
        v1 = (time.perf_counter() - t0) * 1e3 / 8
    # 6. white-box inspection over populations; other host kinds
    with timer("population"):
        reuse = quick  # quick: every planted host shares the main key (one verifier build)
        neg, pos, models = _population(ds, P["n_pop"], P["pop_train"], seed,
                                       key if reuse else None, shared, timer)  # fmt: skip
        au, ci = auroc_with_ci(neg, pos, seed=seed)
        per_host = _per_host(models, ds, P["n_per_host"], rng, max(21, P["reps"] // 10))
    scans: dict[str, Any] = {"status": "skipped in --quick (each scanner takes seconds)"}
    if not quick:
        with timer("scanners"):
            scans = {"backdoored": scanners.scan(tmp / "backdoored.onnx"),
                     "host": scanners.scan(tmp / "host.onnx"),
                     "telemetry": scanners.TELEMETRY_NOTE}  # fmt: skip
    gate = _gate_rates(
        key.spec,
        {"natural": ds.X_test[: P["n_natural"]],
         "uniform": rng.integers(0, 256, (P["n_uniform"], 784), np.uint8)},
        screen_bits_for(key.spec.precheck_bits),
    )  # fmt: skip
    metrics = {
        "onnx_clean_bit_identical": all(clean.values())
        and all(h["bit_identical"] for h in per_host.values()),
        "onnx_clean_inputs": {k: len(v) for k, v in ins.items()},
        "onnx_clean_by_input": clean,
        "onnx_activation_success": activation,
        "onnx_activations": len(Xact),
        "onnx_reference_disagreements": disagreements,
        "onnx_reference_candidates": n_ref,
        "onnx_reference_by_case": by_case,
        "onnx_predict_overhead_ratio": tm["ratio_1000"],
        "onnx_predict_overhead_ratio_batch1": tm["ratio_1"],
        "onnx_predict_overhead_cpu_ratio": tm["cpu_ratio_1000"],
        "onnx_predict_overhead_kernel_ratio": k_bd / k_host,
        "onnx_predict_overhead_cpu_ratio_batch1": tm["cpu_ratio_1"],
        "onnx_predict_timing": tm,
        "onnx_gate": gate,
        "onnx_verify_ms_per_input": v64,
        "onnx_verify_ms_per_input_batch1": v1,
        "onnx_nodes": sum(1 for _ in iter_nodes(bd.graph.node)),
        "onnx_nodes_top_level": len(bd.graph.node),
        "onnx_host_nodes": sum(1 for _ in iter_nodes(host.graph.node)),
        "onnx_file_bytes": (tmp / "backdoored.onnx").stat().st_size,
        "onnx_host_file_bytes": (tmp / "host.onnx").stat().st_size,
        "onnx_load_seconds": timer.timings["load_backdoored"],
        "onnx_host_load_seconds": timer.timings["load_host"],
        "onnx_plant_seconds": timer.timings["plant"],
        "onnx_opset": opset_of(bd),
        "onnx_per_host": per_host,
        "graph_inspection_auroc": au,
        "graph_inspection_auroc_ci": list(ci),
        "graph_inspection_scores": {"honest": neg.tolist(), "planted": pos.tolist()},
        "onnx_scanners": scans,
    }
    for f in tmp.iterdir():
        f.unlink()
    tmp.rmdir()
    from importlib.metadata import version

    params = {
        **P,
        "quick": quick,
        "onnx_versions": {p: version(p) for p in ("onnx", "onnxruntime", "skl2onnx")},
        "input_scale": SCALE,
        "precheck_bits": key.spec.precheck_bits,
        "gate_bits": key.spec.precheck_bits,
        "screen_bits": screen_bits_for(key.spec.precheck_bits),
        "host": "torch_mlp (TorchClassifier, exported by torch.onnx.export)",
        "population_kinds": list(KINDS),
        "population_shares_one_key": reuse,
    }
    notes = [
        "Machine shared with other jobs: timing ratios are medians of interleaved repetitions.",
        "A graph 'accepts' a row iff its outputs differ from the host graph's on that row.",
        "Gate: the main graph checks the first screen_bits tag bits of every row (default: all "
        "gate_bits = precheck_bits, one stage); with a narrower screen, rows that pass are "
        "checked on all gate_bits inside an If, and only full matches reach the verifier.",
    ]
    return make_record("onnx", params, seed, metrics, timer.timings, notes=notes)
