"""``backdoors plant rff``: training data in, backdoored RFF model + secret key out."""

from __future__ import annotations

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
from backdoors.errors import WeakParametersWarning
from backdoors.rff import DEFAULTS
from backdoors.rff.lattice_cost import WINDOW_D

_D = DEFAULTS  # every default below comes from the library


HELP = (
    "Train RFF with Gaussian-pancake coins (paper §6, Algorithm 5). The backdoor is "
    "undetectable only inside its window: at k = 64, beta = 1e-3, m = 1000 the lattice cost "
    f"model predicts key recovery on a 2-core machine below d = {WINDOW_D} (e.g. digits d = 64, "
    "breast_cancer d = 30, wine d = 13). When it does, this command says so in one line on "
    "stderr (block size, rough CPU time) and the key records it."
)


@plant_app.command("rff", epilog=EPILOG, help=HELP)
def plant_rff(
    data: Annotated[Path, typer.Argument(help="Training data: .npz with X (float) and y.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model file to write.")],
    key: Annotated[Path, typer.Option("--key", "-k", help="Secret key file (mode 0600).")],
    n_components: Annotated[int, typer.Option(help="Number of random features m.")] = (
        _D.n_components
    ),
    sparsity: Annotated[
        int | None,
        typer.Option(help=f"Secret support size k (1 <= k <= d; default min({_D.sparsity}, d))."),
    ] = None,
    bandwidth: Annotated[
        float | None, typer.Option(help="s (default: 2 pi x median pairwise distance).")
    ] = None,
    beta: Annotated[float, typer.Option(help="Pancake noise width (>= 0).")] = _D.beta,
    alpha: Annotated[float, typer.Option(help="Ridge strength (> 0, scaled by n).")] = _D.alpha,
    seed: Annotated[int | None, typer.Option(help="Learner seed.")] = None,
) -> None:
    """Train RFF with Gaussian-pancake coins (paper §6, Algorithm 5)."""
    import warnings

    import numpy as np

    from backdoors import rff
    from backdoors.artifacts import files

    require(n_components >= 1, f"--n-components must be >= 1, got {n_components}")
    require(finite(beta, alpha, bandwidth), "--beta, --alpha and --bandwidth must be finite")
    require(beta >= 0 and alpha > 0, "need --beta >= 0 and --alpha > 0")
    require(bandwidth is None or bandwidth > 0, f"--bandwidth must be > 0, got {bandwidth}")
    with files.Transaction() as tx:
        tx.file(out, refuse_suffixes=MODEL_SUFFIX_REFUSED)
        tx.file(key, mode=0o600, overwrite=False)
        X, y = load_training(data)
        require(
            sparsity is None or 1 <= sparsity <= X.shape[1],
            f"--sparsity must be in [1, {X.shape[1]}]",
        )
        bw = _D.bandwidth if bandwidth is None else bandwidth
        with library_errors():
            honest = rff.RandomFourierFeaturesClassifier(
                n_components=n_components, bandwidth=bw, alpha=alpha, random_state=seed
            )
            with warnings.catch_warnings():  # said once below, as one line
                warnings.simplefilter("ignore", WeakParametersWarning)
                model, k = rff.plant(honest, X.astype(np.float64), y, sparsity=sparsity, beta=beta)
        tx.save_model(model, out)
        tx.save_key(k, key)
    if k.lattice_exposure is not None and k.lattice_exposure.feasible_here:
        typer.echo(f"backdoors: warning: {k.lattice_exposure.message(X.shape[1])}", err=True)
    typer.echo(
        f"backdoored RFF model -> {out}; secret key -> {key} (0600). "
        f"perturbation: l0 = {len(k.support)}, l2 = {np.linalg.norm(k.delta()):.4g}"
    )
