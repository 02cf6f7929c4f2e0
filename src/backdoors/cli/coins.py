"""``backdoors verify-coins``: check that an RFF or random-ReLU model's public coins are
exactly the honest stream of a seed the user chose (the verifiable-coins defense,
:mod:`backdoors.defenses.verifiable_coins`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from backdoors.cli._common import PUBLISHER_HELP, load_model, require
from backdoors.cli.app import app

VERIFY_EPILOG = (
    "Exit codes (for CI): 0 the coins are exactly the seeded stream (honest coins); 3 they are "
    "not (rejected: a backdoored learner, or another seed); 2 a user error (no such file, not "
    "an RFF/random-ReLU model); 1 a bug. One verdict line on stdout. Needs a learner that "
    "accepted your seed as random_state; says nothing about the signature backdoor."
)


@app.command("verify-coins", epilog=VERIFY_EPILOG)
def verify_coins(
    model: Annotated[Path, typer.Argument(help="RFF or random-ReLU model file.")],
    seed: Annotated[
        int, typer.Option(help="The learner seed you chose (random_state, an integer >= 0).")
    ],
    publisher: Annotated[Path | None, typer.Option(help=PUBLISHER_HELP)] = None,
) -> None:
    """Check that the model's random coins are exactly the honest stream of --seed."""
    from backdoors.cli import EXIT_CHECK_FAILED
    from backdoors.defenses.verifiable_coins import verify_coins as check

    require(seed >= 0, f"--seed must be >= 0, got {seed}")
    verdict = check(load_model(model, publisher), seed)
    if verdict.honest:
        typer.echo(f"honest: the {verdict.kind} coins of {model} are the stream of seed {seed}")
        return
    typer.echo(
        f"rejected: the {', '.join(verdict.mismatched)} of {model} are not the honest stream "
        f"of seed {seed} ({verdict.kind})"
    )
    raise typer.Exit(EXIT_CHECK_FAILED)
