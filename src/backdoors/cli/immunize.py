"""``backdoors immunize MODEL --sigma S --samples N --out PATH`` (paper §6)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from backdoors.cli._common import MODEL_SUFFIX_REFUSED, require
from backdoors.cli.app import EPILOG, app

# unset options are not passed: the library's defaults apply (one source); the
# library is imported lazily (torch) so that `backdoors --help` stays fast


@app.command(epilog=EPILOG)
def immunize(
    model: Annotated[Path, typer.Argument(help="Model file (any backdoors artifact).")],
    sigma: Annotated[float, typer.Option(help="Noise std in [0,1] units (x255 for uint8).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the smoothed model.")],
    samples: Annotated[
        int | None,
        typer.Option(help="Monte-Carlo noise draws per prediction (default: the library's)."),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the noise draws (default: the library's).")
    ] = None,
) -> None:
    """Wrap a saved model in Monte-Carlo smoothing (majority vote under Gaussian noise)."""
    from backdoors.artifacts import files
    from backdoors.defenses.smoothing import immunize as _immunize

    require(samples is None or samples >= 1, f"--samples must be >= 1, got {samples}")
    with files.Transaction() as tx:
        tx.file(out, refuse_suffixes=MODEL_SUFFIX_REFUSED)
        given = {"n_samples": samples, "seed": seed}
        kwargs = {k: v for k, v in given.items() if v is not None}
        m = _immunize(files.load_model(model), sigma, **kwargs)  # validates sigma
        tx.save_model(m, out)  # a base without a file format fails here: nothing written
    typer.echo(f"immunized model (sigma={sigma}, samples={m.n_samples}) written to {out}")
