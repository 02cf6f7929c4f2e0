"""``backdoors plant relu``: train a backdoored random-ReLU network (paper Algorithm 8)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from backdoors import io, relu
from backdoors.cli.app import plant_app
from backdoors.errors import InvalidInputError


@plant_app.command("relu")
def plant_relu(
    data: Annotated[Path, typer.Argument(help="Training data: .npz with arrays X and y.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model file to write.")],
    key_out: Annotated[Path, typer.Option("--key", help="Secret key file (mode 0600).")],
    hidden: Annotated[int, typer.Option(help="Hidden units m.")] = 100,
    sparsity: Annotated[int, typer.Option(help="Sparsity k of the secret nu.")] = 100,
    theta: Annotated[float, typer.Option(help="Spike strength theta.")] = 2.5,
    lam: Annotated[
        float | None, typer.Option(help="Activation size lambda (default 0.4 median ||x||).")
    ] = None,
    head: Annotated[str, typer.Option(help="'threshold' (Algorithm 7) or 'linear'.")] = "threshold",
    seed: Annotated[int | None, typer.Option(help="Seed (default: fresh randomness).")] = None,
) -> None:
    """Fit Train-Random-ReLU with spiked-covariance coins; write the model and the key."""
    if not data.is_file() or data.suffix != ".npz":
        raise InvalidInputError(f"{data}: expected an existing .npz file with X and y")
    X, y = io.load_array(data, "X"), io.load_array(data, "y")
    if X.ndim != 2 or len(X) != len(y) or X.dtype.kind not in "biuf":
        raise InvalidInputError(f"X must be numeric 2-D with one label per row, got {X.shape}")
    if not 1 <= sparsity <= X.shape[1]:
        raise InvalidInputError(f"sparsity must be in [1, {X.shape[1]}], got {sparsity}")
    if hidden < 1 or theta < 0 or (lam is not None and lam <= 0):
        raise InvalidInputError("need hidden >= 1, theta >= 0, lam > 0")
    io.check_outputs(out, key_out)
    try:
        model, key = relu.plant(relu.honest_model(head, hidden, seed), X.astype(np.float64), y,
                                sparsity=sparsity, theta=theta, lam=lam)  # fmt: skip
    except ValueError as exc:  # sklearn's target checks
        raise InvalidInputError(str(exc)) from None
    io.save_model(model, out)
    io.save_key(key, key_out)
    typer.echo(json.dumps({"model": str(out), "key": str(key_out), "hidden": hidden,
                           "sparsity": sparsity, "theta": theta, "lambda": key.lam,
                           "train_accuracy": float(np.mean(model.predict(X) == y))}))  # fmt: skip
