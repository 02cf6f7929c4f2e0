"""The typer applications that command modules attach to."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="backdoors",
    help="Undetectable backdoors in ML models (Goldwasser et al. 2022), measured.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
plant_app = typer.Typer(
    help="Plant a backdoor: model (or data) in, backdoored model + secret key out.",
    no_args_is_help=True,
)
app.add_typer(plant_app, name="plant")
