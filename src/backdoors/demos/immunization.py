"""Demo section: evaluation-time immunization of the signature-backdoored MNIST model."""

from __future__ import annotations

import numpy as np

from backdoors import signature
from backdoors.artifacts import report
from backdoors.defenses.smoothing import immunize
from backdoors.demos import DemoContext, section
from backdoors.demos._common import mnist, mnist_classifier


@section("immunization", order=60)
def run(ctx: DemoContext) -> report.Section:
    ds = mnist(ctx)
    clf = mnist_classifier(ctx)
    model, key = signature.plant(clf, carrier="lsb", random_state=ctx.seed)
    n = 100 if ctx.quick else 400
    X, y = ds.X_test[:n], ds.y_test[:n]
    tg = (np.asarray(model.predict(X)) + 1) % 10
    Xa = signature.activate(X, key, target=tg)
    metrics = {"success_unsmoothed": float(np.mean(model.predict(Xa) == tg))}
    base_acc = float(np.mean(model.predict(X) == y))
    for s in (0.02, 0.1):
        sm = immunize(model, s, n_samples=10 if ctx.quick else 30, seed=ctx.seed)
        metrics[f"sigma={s}"] = {
            "success_smoothed": float(np.mean(sm.predict(Xa) == tg)),
            "clean_accuracy_drop": base_acc - float(np.mean(sm.predict(X) == y)),
        }
    text = (
        "Smoothing (paper §6): predict by majority vote of the model on noisy copies of the "
        "input (noise std sigma*255 grey levels, rounded to uint8). The signature trigger "
        "lives in pixel LSBs, which any noise of a grey level or more randomises, so the "
        "smoothed model ignores it. Large triggers (RFF, random ReLU) survive: see "
        "`backdoors experiment immunize`."
    )
    return report.Section("Immunization by smoothing", text=text, metrics=metrics)
