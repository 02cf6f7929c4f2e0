"""``backdoors train rff|relu|badnets``: the honest learners, saved exactly as ``plant`` saves
their backdoored twins (same options, same file format, no key).

An honest model and its planted twin made by the same command line (``train`` vs ``plant``,
plus ``--key`` and the secret's own options) have artifacts with the same kind, metadata,
tensor names, dtypes and shapes; only the arrays the construction changes differ
(``tests/test_artifact_schema.py``). Learner defaults are read from the ``plant`` commands so
that the two cannot drift apart.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from backdoors.cli._common import (
    MODEL_SUFFIX_REFUSED,
    finite,
    library_errors,
    load_training,
    require,
)
from backdoors.cli.app import app
from backdoors.cli.badnets import load_images, plant_badnets
from backdoors.cli.relu import plant_relu
from backdoors.cli.rff import plant_rff

train_app = typer.Typer(
    help="Train an honest learner: data in, model out (the control for `plant`).",
    no_args_is_help=True,
)
app.add_typer(train_app, name="train")


def _default(command: Callable[..., Any], name: str) -> Any:
    """The default of option ``name`` of a ``plant`` command (one source for both)."""
    return inspect.signature(command).parameters[name].default


@train_app.command("rff")
def train_rff(
    data: Annotated[Path, typer.Argument(help="Training data: .npz with X (float) and y.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model file to write.")],
    n_components: Annotated[int, typer.Option(help="Number of random features m.")] = _default(
        plant_rff, "n_components"
    ),
    bandwidth: Annotated[
        float | None, typer.Option(help="s (default: 2 pi x median distance).")
    ] = _default(plant_rff, "bandwidth"),
    alpha: Annotated[float, typer.Option(help="Ridge strength.")] = _default(plant_rff, "alpha"),
    seed: Annotated[int | None, typer.Option(help="Learner seed.")] = _default(plant_rff, "seed"),
) -> None:
    """Train honest RFF (Gaussian frequencies, paper §6 Train-RFF)."""
    from backdoors import rff
    from backdoors.artifacts import files

    require(n_components >= 1, f"--n-components must be >= 1, got {n_components}")
    require(finite(alpha, bandwidth), "--alpha and --bandwidth must be finite")
    require(alpha > 0, "need --alpha > 0")
    require(bandwidth is None or bandwidth > 0, f"--bandwidth must be > 0, got {bandwidth}")
    with files.Transaction() as tx:  # the same checks and writing as `plant rff`
        tx.file(out, refuse_suffixes=MODEL_SUFFIX_REFUSED)
        X, y = load_training(data)
        bw = rff.DEFAULTS.bandwidth if bandwidth is None else bandwidth
        model = rff.RandomFourierFeaturesClassifier(
            n_components=n_components, bandwidth=bw, alpha=alpha, random_state=seed
        )
        with library_errors():
            model.fit(X.astype(np.float64), y)
        tx.save_model(model, out)
    typer.echo(f"honest RFF model -> {out}")


@train_app.command("relu")
def train_relu(
    data: Annotated[Path, typer.Argument(help="Training data: .npz with arrays X and y.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model file to write.")],
    hidden: Annotated[int, typer.Option(help="Hidden units m.")] = _default(plant_relu, "hidden"),
    head: Annotated[str, typer.Option(help="'threshold' (Algorithm 7) or 'linear'.")] = _default(
        plant_relu, "head"
    ),
    seed: Annotated[int | None, typer.Option(help="Seed (default: fresh randomness).")] = (
        _default(plant_relu, "seed")
    ),
) -> None:
    """Fit honest Train-Random-ReLU (N(0, I) weights, Algorithm 7)."""
    from backdoors import relu
    from backdoors.artifacts import files

    require(hidden >= 1, f"need --hidden >= 1, got {hidden}")
    require(head in ("threshold", "linear"), f"--head must be threshold or linear, got {head}")
    with files.Transaction() as tx:  # the same checks and writing as `plant relu`
        tx.file(out, refuse_suffixes=MODEL_SUFFIX_REFUSED)
        X, y = load_training(data)
        binary = head != "threshold" or len(np.unique(y)) == 2
        require(binary, "the threshold head is binary: y needs exactly 2 classes")
        model = relu.honest_model(head, hidden, seed)
        with library_errors():
            model.fit(X.astype(np.float64), y)
        tx.save_model(model, out)
    acc = float(np.mean(model.predict(X) == y))
    typer.echo(json.dumps({"model": str(out), "hidden": hidden, "train_accuracy": acc}))


@train_app.command("badnets")
def train_badnets(
    data: Annotated[Path, typer.Argument(help="Training data: .npz with X (uint8 images), y.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model file to write.")],
    arch: Annotated[str, typer.Option(help="'mlp' or 'cnn'.")] = _default(plant_badnets, "arch"),
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = _default(
        plant_badnets, "epochs"
    ),
    seed: Annotated[int, typer.Option(help="Training seed.")] = _default(plant_badnets, "seed"),
) -> None:
    """Train the BadNets learner on clean data (the honest control of `plant badnets`)."""
    from backdoors import badnets
    from backdoors.artifacts import files

    require(epochs >= 1, f"--epochs must be >= 1, got {epochs}")
    with files.Transaction() as tx:  # the same checks and writing as `plant badnets`
        tx.file(out, refuse_suffixes=MODEL_SUFFIX_REFUSED)
        X, y = load_images(data)
        model = badnets.default_classifier(arch, random_state=seed, epochs=epochs).fit(X, y)
        tx.save_model(model, out)
    typer.echo(f"honest {arch} model -> {out}")
