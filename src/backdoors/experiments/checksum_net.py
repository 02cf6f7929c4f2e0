"""Experiment "checksum-net": the §5.1 checksum backdoor compiled into one Linear/ReLU network."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from backdoors.artifacts.records import Timer, make_record
from backdoors.experiments import EXPERIMENTS
from backdoors.nets import checksum
from backdoors.nets.compiler import only_linear_relu
from backdoors.nets.mnist import planted, random_inputs


@EXPERIMENTS.register("checksum-net")
def run(quick: bool, seed: int, out_dir: Path | None) -> dict:
    timer = Timer()
    with timer("train_and_plant"):
        ds, clf, model, key = planted(quick, seed)
    n_random = 100_000
    with timer("agreement"):
        agree_test = float((clf.predict(ds.X_test) == model.predict(ds.X_test)).mean())
        R = random_inputs(n_random, seed)
        agree_rand = float((clf.predict(R) == model.predict(R)).mean())
        del R
    rng = np.random.default_rng([seed, 1])
    with timer("activation"):
        tg = rng.integers(0, key.n_classes, len(ds.X_test))
        Xa = checksum.activate(ds.X_test, key, tg)
        success = float((model.predict(Xa) == tg).mean())
        d = Xa.astype(np.int64) - ds.X_test.astype(np.int64)
        # near misses: an activated input with one block's parity broken again must not fire
        Xn = Xa.copy()
        Xn[:, key.layout.blocks[0][1]] ^= 1
        near_agree = float((model.predict(Xn) == clf.predict(Xn)).mean())
    with timer("replication"):
        s_hat = checksum.recover_key(Xa[0], key.layout)
        forged = checksum.ChecksumKey(s_hat, key.layout, key.n_classes)
        Xf = checksum.activate(ds.X_test[:500], forged, 3)
        replicated = float((model.predict(Xf) == 3).mean())
    lin = [m for m in model.module_ if type(m).__name__ == "Linear"]
    metrics = {
        "agreement": min(agree_test, agree_rand),
        "agreement_test": agree_test,
        "agreement_random": agree_rand,
        "n_random": n_random,
        "activation_success": success,
        "only_linear_relu": only_linear_relu(model.module_),
        "key_recovered_from_one_pair": s_hat == key.bits,
        "replicated_success_with_recovered_key": replicated,
        "near_miss_agreement": near_agree,
        "l0_max": int((d != 0).sum(axis=1).max()),
        "linf_max": int(np.abs(d).max()),
        "mux_bound_M": model.bound,
        "depth_linear_layers": len(lin),
        "n_parameters": int(sum(p.numel() for p in model.module_.parameters())),
        "clean_accuracy": float((model.predict(ds.X_test) == ds.y_test).mean()),
    }
    params = {"quick": quick, "n_blocks": key.layout.n_blocks, "n_target_bits": 4}
    notes = [
        "Replicable by design (paper §5.1): one activated input reveals the key s.",
        "M soundly bounds |logits| on [0,255]^784: activation works on every input.",
    ]
    return make_record("checksum-net", params, seed, metrics, timer.timings, notes=notes)
