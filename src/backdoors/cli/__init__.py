"""``backdoors`` command line. Every module in this package adds its commands to
:data:`backdoors.cli.app.app` (or ``plant_app``); :func:`main` loads them all and maps
:class:`~backdoors.errors.BackdoorsError` to a one-line message and exit code 2."""

from __future__ import annotations

import importlib
import pkgutil
import sys

from typer.exceptions import Abort, Exit, TyperException

from backdoors.errors import BackdoorsError


def _load_commands() -> None:
    pkg = importlib.import_module("backdoors.cli")
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name != "app" and not info.name.startswith("_"):
            importlib.import_module(f"backdoors.cli.{info.name}")


def main(argv: list[str] | None = None) -> int:
    from backdoors.cli.app import app

    _load_commands()
    try:
        app(args=argv, prog_name="backdoors", standalone_mode=False)
    except BackdoorsError as exc:
        print(f"backdoors: error: {exc}", file=sys.stderr)
        return _exit(2, argv)
    except Abort:
        print("backdoors: aborted", file=sys.stderr)
        return _exit(1, argv)
    except TyperException as exc:
        if exc.format_message():
            print(f"backdoors: error: {exc.format_message()}", file=sys.stderr)
        return _exit(2, argv)
    except Exit as exc:
        return _exit(exc.exit_code, argv)
    return _exit(0, argv)


def _exit(code: int, argv: list[str] | None) -> int:
    if argv is None:  # console-script use
        sys.exit(code)
    return code
