"""``backdoors immunize MODEL --sigma S --samples N --out PATH`` (paper §6)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from backdoors.cli.app import app


@app.command()
def immunize(
    model: Annotated[Path, typer.Argument(help="Model file (any backdoors artifact).")],
    sigma: Annotated[float, typer.Option(help="Noise std in [0,1] units (x255 for uint8).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the smoothed model.")],
    samples: Annotated[int, typer.Option(help="Monte-Carlo noise draws per prediction.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed of the noise draws.")] = 0,
) -> None:
    """Wrap a saved model in Monte-Carlo smoothing (majority vote under Gaussian noise)."""
    from backdoors.defenses.smoothing import immunize as _immunize
    from backdoors.io import load_model, save_model

    m = _immunize(load_model(model), sigma, n_samples=samples, seed=seed)  # validates first
    m._to_artifact()  # fails before writing if the base has no file format
    save_model(m, out)
    typer.echo(f"immunized model (sigma={sigma}, samples={samples}) written to {out}")
