"""Shared, cached ingredients of the demo sections (MNIST and the demo classifier)."""

from __future__ import annotations

from backdoors import data
from backdoors.demos import DemoContext
from backdoors.torch_models import TorchClassifier, mnist_mlp_params


def mnist(ctx: DemoContext) -> data.Dataset:
    """Full MNIST (quick mode: 10k train / 2k test)."""
    if ctx.quick:
        return ctx.cached("mnist", lambda: data.mnist(n_train=10000, n_test=2000))
    return ctx.cached("mnist", data.mnist)


def mnist_classifier(ctx: DemoContext) -> TorchClassifier:
    """The honest demo classifier, trained once per demo run."""

    def make() -> TorchClassifier:
        ds = mnist(ctx)
        return TorchClassifier(**mnist_mlp_params(ctx.quick, ctx.seed)).fit(ds.X_train, ds.y_train)

    return ctx.cached("mnist_classifier", make)
