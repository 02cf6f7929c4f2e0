"""``backdoors plant relu``: training data in, backdoored random-ReLU model + key out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from backdoors.cli.app import plant_app
from backdoors.errors import InvalidInputError


@plant_app.command("relu")
def plant_relu(
    data: Annotated[
        Path, typer.Argument(help="Training data: .npz with X (float) and y (binary).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model file to write.")],
    key: Annotated[Path, typer.Option("--key", "-k", help="Secret key file (mode 0600).")],
    n_components: Annotated[int, typer.Option(help="Hidden units m.")] = 100,
    sparsity: Annotated[int, typer.Option(help="Spike support size k.")] = 50,
    theta: Annotated[float, typer.Option(help="Spike strength.")] = 4.0,
    lam: Annotated[float, typer.Option(help="Activation step lambda.")] = 14.0,
    head: Annotated[str, typer.Option(help="threshold (paper) or linear.")] = "threshold",
    seed: Annotated[int | None, typer.Option(help="Learner seed.")] = None,
) -> None:
    """Train a random ReLU network with spiked-covariance weights (sparse-PCA backdoor)."""
    from backdoors import io, relu
    from backdoors.validation import check_features

    if key.exists():
        raise InvalidInputError(f"{key} exists; refusing to overwrite a key file")
    for path in (out, key):
        if not path.parent.is_dir():
            raise InvalidInputError(f"folder {path.parent} does not exist")
    X = check_features(io.load_array(data, "X"))
    y = io.load_array(data, "y")
    if y.shape != (len(X),):
        raise InvalidInputError(f"y must have shape ({len(X)},), got {y.shape}")
    model, k = relu.plant(X, y, n_components, sparsity, theta, lam, head, random_state=seed)
    io.save_model(model, out)
    io.save_key(k, key)
    typer.echo(f"backdoored random-ReLU model -> {out}; secret key -> {key} (0600)")
