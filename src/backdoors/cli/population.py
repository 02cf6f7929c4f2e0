"""``backdoors population ATTACK``: build (and cache) N honest + N backdoored models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from backdoors.cli.app import app
from backdoors.errors import InvalidInputError


@app.command()
def population(
    attack: Annotated[str, typer.Argument(help="Registered attack name (see --list).")] = "",
    n: Annotated[int, typer.Option("--n", help="Members per side (honest, backdoored).")] = 20,
    seed: Annotated[int, typer.Option(help="Member i uses seed + i.")] = 0,
    quick: Annotated[bool, typer.Option(help="The attack's small configuration.")] = False,
    jobs: Annotated[int, typer.Option(help="joblib workers (-1: all cores).")] = 1,
    scheduler: Annotated[
        str | None, typer.Option(help="Dask scheduler address (tcp://host:8786) instead of joblib.")
    ] = None,
    cache: Annotated[
        Path | None,
        typer.Option(help="Cache folder (parent must exist): reruns build only missing members."),
    ] = None,
    list_: Annotated[bool, typer.Option("--list", help="List attacks and exit.")] = False,
) -> None:
    """Build a population of one attack in parallel and print a summary (accuracy, cache use)."""
    from backdoors.evaluation.population import build_population
    from backdoors.evaluation.recipes import ATTACKS

    if list_ or not attack:
        typer.echo("\n".join(ATTACKS.names()))
        return
    ATTACKS.get(attack)  # unknown names fail before any work
    if n < 1 or jobs == 0:
        raise InvalidInputError(f"need --n >= 1 and --jobs != 0, got {n} and {jobs}")
    if cache is not None:  # a persistent store, written member by member (each atomically)
        if cache.exists() and not cache.is_dir():
            raise InvalidInputError(f"cache {cache} exists and is not a folder")
        if not cache.parent.is_dir():
            raise InvalidInputError(f"folder {cache.parent} does not exist (create it first)")
        from backdoors.artifacts.files import Transaction

        probe = Transaction()  # proves the store can be written before any member is built
        probe.file(cache / ".write-probe") if cache.is_dir() else probe.folder(cache)
        probe.abort()
    pop = build_population(
        attack, n, seed=seed, quick=quick, n_jobs=jobs, scheduler=scheduler, cache_dir=cache
    )

    def acc(ms: list) -> float:
        return float(np.mean([np.mean(m.model.predict(m.X_test) == m.y_test) for m in ms]))

    summary = {
        "attack": pop.attack,
        "members_per_side": n,
        "built": pop.n_built,
        "from_cache": pop.n_cached,
        "wall_seconds": round(pop.wall_time, 3),
        "honest_accuracy": acc(pop.honest),
        "backdoored_accuracy": acc(pop.backdoored),
        "not_cached": pop.uncached[:5],
    }
    typer.echo(json.dumps(summary, indent=2))
