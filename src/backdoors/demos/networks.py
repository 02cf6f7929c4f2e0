"""Demo section "networks": the checksum backdoor as one Linear/ReLU network, made persistent."""

from __future__ import annotations

import copy

import numpy as np
import torch

from backdoors.artifacts import report
from backdoors.demos import DemoContext, section
from backdoors.demos._common import mnist, mnist_classifier
from backdoors.nets import checksum, persistence
from backdoors.nets.compiler import only_linear_relu


@section("networks", order=50)
def run(ctx: DemoContext) -> report.Section:
    ds = mnist(ctx)
    clf = mnist_classifier(ctx)
    model, key = checksum.plant(clf, random_state=ctx.seed)
    n = 500 if ctx.quick else 2000
    X = ds.X_test[:n]
    tg = ctx.rng(50).integers(0, key.n_classes, n)
    Xa = checksum.activate(X, key, tg)
    D = persistence.decision_head(copy.deepcopy(model.module_), key.n_classes)
    P = persistence.make_persistent(D, key.n_classes)
    xt = torch.from_numpy(np.concatenate([X[:64], Xa[:64]]).astype(np.float32))
    yt = torch.from_numpy(np.concatenate([ds.y_test[:64], tg[:64]]).astype(np.int64))
    grads = persistence.loss_gradients(P, xt, yt, key.n_classes)
    metrics = {
        "agreement_with_mlp": float((model.predict(ds.X_test) == clf.predict(ds.X_test)).mean()),
        "activation_success": float((model.predict(Xa) == tg).mean()),
        "only_linear_relu": only_linear_relu(model.module_),
        "key_recovered_from_one_pair": checksum.recover_key(Xa[0], key.layout) == key.bits,
        "persistent_max_abs_grad": max(grads.values()),
        "linear_layers": sum(1 for m in model.module_ if isinstance(m, torch.nn.Linear)),
    }
    text = (
        "The §5.1 checksum backdoor compiled beside the demo MLP into ONE nn.Sequential of "
        "Linear/ReLU layers (sawtooth LSB parities, AND, MUX on logits with a sound bound M). "
        "Thm 2.3: three copies + a saturated majority unit give exactly zero gradients for "
        "MSE, cross-entropy and hinge losses. See docs/networks.md and the `persistence` "
        "experiment for fine-tuning and what breaks persistence."
    )
    return report.Section("Backdoors as networks (§2.5, §5.1, Thm 2.3)", text, metrics)
