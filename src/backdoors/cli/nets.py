"""``backdoors plant checksum-net``: compile a saved MLP beside the §5.1 checksum."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from backdoors.cli._common import MODEL_SUFFIX_REFUSED, require
from backdoors.cli.app import EPILOG, plant_app

# unset options are not passed: the library's defaults apply (one source); the
# library is imported lazily (torch) so that `backdoors --help` stays fast


@plant_app.command("checksum-net", epilog=EPILOG)
def plant_checksum_net(
    model: Annotated[Path, typer.Argument(help="A saved TorchClassifier MLP.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Backdoored network file.")],
    key_out: Annotated[Path, typer.Option("--key", "-k", help="Secret key file (0600).")],
    blocks: Annotated[
        int | None,
        typer.Option(help="Number of parity blocks n (>= 1; default: checksum.plant's n_blocks)."),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the key (default: checksum.plant's, fixed).")
    ] = None,
) -> None:
    """Plant the checksum backdoor as one Linear/ReLU network (replicable; a teaching aid)."""
    from backdoors.artifacts import files
    from backdoors.nets import checksum

    require(blocks is None or blocks >= 1, f"--blocks must be >= 1, got {blocks}")
    with files.Transaction() as tx:
        tx.file(out, refuse_suffixes=MODEL_SUFFIX_REFUSED)
        tx.file(key_out, mode=0o600, overwrite=False)
        clf = files.load_model(model)
        given = {"n_blocks": blocks, "random_state": seed,
                 "n_features": getattr(clf, "n_features_in_", None)}  # fmt: skip
        net, key = checksum.plant(clf, **{k: v for k, v in given.items() if v is not None})
        tx.save_model(net, out)
        tx.save_key(key, key_out)
    typer.echo(f"checksum network written to {out}, key to {key_out}")
