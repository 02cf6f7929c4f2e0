"""The typer applications that command modules attach to."""

from __future__ import annotations

import typer
from typer.core import TyperOption

EPILOG = (
    "Errors: one line on stderr and exit code 2 for anything a user can cause (bad input, "
    "corrupt file, unwritable folder); exit 1 with a traceback only for a bug. Outputs: all "
    "files of one command are written together or not at all; the folder holding an output "
    "must exist (an output folder such as --out of report/demo/audit is created one level "
    "deep, never a whole tree)."
)

app = typer.Typer(
    name="backdoors",
    help="Undetectable backdoors in ML models (Goldwasser et al. 2022), measured.",
    epilog=EPILOG,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
plant_app = typer.Typer(
    help="Plant a backdoor: model (or data) in, backdoored model + secret key out.",
    no_args_is_help=True,
)
app.add_typer(plant_app, name="plant")

_display_type_rich = TyperOption.display_type_rich


def _no_label_on_flags(self: TyperOption, ctx: object) -> str | None:
    """Typer's rich help prints ``<bool>`` beside every flag (a flag takes no value)."""
    if self.is_flag or self.count:
        return None
    return _display_type_rich(self, ctx)


TyperOption.display_type_rich = _no_label_on_flags  # type: ignore[method-assign]
