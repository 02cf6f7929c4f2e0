"""``backdoors plant checksum-net``: compile a saved MLP beside the §5.1 checksum."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from backdoors.cli.app import plant_app


@plant_app.command("checksum-net")
def plant_checksum_net(
    model: Annotated[Path, typer.Argument(help="A saved TorchClassifier MLP.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Backdoored network file.")],
    key_out: Annotated[Path, typer.Option("--key", help="Secret key file (0600).")],
    blocks: Annotated[int, typer.Option(help="Number of parity blocks n.")] = 64,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Plant the checksum backdoor as one Linear/ReLU network (replicable; a teaching aid)."""
    from backdoors import io
    from backdoors.nets import checksum

    io.check_outputs(out, key_out)
    net, key = checksum.plant(io.load_model(model), n_blocks=blocks, random_state=seed)
    io.save_model(net, out)
    io.save_key(key, key_out)
    typer.echo(f"checksum network written to {out}, key to {key_out}")
