"""``backdoors plant rff``: training data in, backdoored RFF model + secret key out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from backdoors.cli.app import plant_app
from backdoors.errors import InvalidInputError


@plant_app.command("rff")
def plant_rff(
    data: Annotated[Path, typer.Argument(help="Training data: .npz with X (float) and y.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model file to write.")],
    key: Annotated[Path, typer.Option("--key", "-k", help="Secret key file (mode 0600).")],
    n_components: Annotated[int, typer.Option(help="Number of random features m.")] = 2000,
    sparsity: Annotated[
        int | None, typer.Option(help="Secret support size k (default: min(64, d)).")
    ] = None,
    bandwidth: Annotated[
        float | None, typer.Option(help="s (default: 2 pi x median distance).")
    ] = None,
    beta: Annotated[float, typer.Option(help="Pancake noise width.")] = 1e-3,
    alpha: Annotated[float, typer.Option(help="Ridge strength.")] = 1e-4,
    seed: Annotated[int | None, typer.Option(help="Learner seed.")] = None,
) -> None:
    """Train RFF with Gaussian-pancake coins (paper §6, Algorithm 5)."""
    import numpy as np

    from backdoors import io, rff
    from backdoors.validation import check_features

    io.check_outputs(out, key)
    X = check_features(io.load_array(data, "X")).astype(np.float64)
    y = io.load_array(data, "y")
    if y.shape != (len(X),):
        raise InvalidInputError(f"y must have shape ({len(X)},), got {y.shape}")
    bw = "median" if bandwidth is None else bandwidth
    honest = rff.RandomFourierFeaturesClassifier(n_components, bw, alpha, random_state=seed)
    model, k = rff.plant(honest, X, y, sparsity=sparsity, beta=beta)
    io.save_model(model, out)
    io.save_key(k, key)
    typer.echo(
        f"backdoored RFF model -> {out}; secret key -> {key} (0600). "
        f"perturbation: l0 = {len(k.support)}, l2 = {np.linalg.norm(k.delta()):.4g}"
    )
