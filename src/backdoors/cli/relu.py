"""``backdoors plant relu``: train a backdoored random-ReLU network (paper Algorithm 8)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from backdoors.cli._common import (
    MODEL_SUFFIX_REFUSED,
    finite,
    library_errors,
    load_training,
    require,
)
from backdoors.cli.app import EPILOG, plant_app
from backdoors.relu import DEFAULTS

_D = DEFAULTS  # every default below comes from the library


@plant_app.command("relu", epilog=EPILOG)
def plant_relu(
    data: Annotated[Path, typer.Argument(help="Training data: .npz with arrays X and y.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model file to write.")],
    key_out: Annotated[Path, typer.Option("--key", "-k", help="Secret key file (mode 0600).")],
    hidden: Annotated[int, typer.Option(help="Hidden units m.")] = _D.n_hidden,
    sparsity: Annotated[int, typer.Option(help="Sparsity k of the secret nu (1 <= k <= d).")] = (
        _D.sparsity
    ),
    theta: Annotated[float, typer.Option(help="Spike strength theta (>= 0).")] = _D.theta,
    lam: Annotated[
        float | None,
        typer.Option(
            help=f"Activation size lambda (default: {_D.lam_rel:g} x median ||x|| of the "
            "training inputs)."
        ),
    ] = None,
    head: Annotated[str, typer.Option(help="'threshold' (Algorithm 7) or 'linear'.")] = _D.head,
    seed: Annotated[int | None, typer.Option(help="Seed (default: fresh randomness).")] = None,
) -> None:
    """Fit Train-Random-ReLU with spiked-covariance coins; write the model and the key."""
    import numpy as np

    from backdoors import relu
    from backdoors.artifacts import files

    require(finite(theta, lam), "--theta and --lam must be finite")
    require(hidden >= 1 and theta >= 0, "need --hidden >= 1 and --theta >= 0")
    require(lam is None or lam > 0, f"--lam must be > 0, got {lam}")
    require(head in ("threshold", "linear"), f"--head must be threshold or linear, got {head}")
    with files.Transaction() as tx:
        tx.file(out, refuse_suffixes=MODEL_SUFFIX_REFUSED)
        tx.file(key_out, mode=0o600, overwrite=False)
        X, y = load_training(data)
        binary = head != "threshold" or len(np.unique(y)) == 2
        require(binary, "the threshold head is binary: y needs exactly 2 classes")
        require(1 <= sparsity <= X.shape[1], f"--sparsity must be in [1, {X.shape[1]}]")
        with library_errors():
            model, key = relu.plant(relu.honest_model(head, hidden, seed), X.astype(np.float64),
                                    y, sparsity=sparsity, theta=theta, lam=lam)  # fmt: skip
        tx.save_model(model, out)
        tx.save_key(key, key_out)
    typer.echo(json.dumps({"model": str(out), "key": str(key_out), "hidden": hidden,
                           "sparsity": sparsity, "theta": theta, "lambda": key.lam,
                           "train_accuracy": float(np.mean(model.predict(X) == y))}))  # fmt: skip
