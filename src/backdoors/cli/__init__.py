"""``backdoors`` command line. Every module in this package adds its commands to
:data:`backdoors.cli.app.app` (or ``plant_app``); :func:`main` loads them all.

Errors at the boundary (issue 11): every error a user can cause ends in ONE line on stderr,
``backdoors: error: ...``, and exit code 2 with no output file written:

* :class:`~backdoors.errors.BackdoorsError` (bad input, corrupt file, key mismatch, ...);
* usage errors (unknown option, bad value for an option);
* :class:`OSError` from the file system (permission, full disk, read-only, a folder where a
  file is expected...), reported with the file name and the system's reason.

Anything else is a bug of this package, not a user error: it prints the traceback and a last
line ``backdoors: internal error (a bug, please report it): ...`` and exits with code 1, so a
bug is never disguised as bad input. Ctrl-C exits 130.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import sys
import traceback
from typing import Any

from typer.exceptions import Abort, Exit, TyperException

from backdoors.errors import BackdoorsError

#: exit codes: 0 success, 1 internal error (a bug), 2 a user error, 130 interrupted; ``audit
#: --fail-on`` exits 3 (``EXIT_FINDINGS``) when it finds something at the chosen level
EXIT_OK, EXIT_BUG, EXIT_USER, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_FINDINGS = 3


def _load_commands() -> None:
    pkg = importlib.import_module("backdoors.cli")
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name != "app" and not info.name.startswith("_"):
            importlib.import_module(f"backdoors.cli.{info.name}")


def os_error_message(exc: OSError) -> str:
    """One line for a file-system error: what, where, why."""
    where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{where}: {reason}" if where else reason


def _one_line(text: str) -> str:
    return " ".join(str(text).split()) or "error"


@functools.cache
def _click_command() -> Any:
    """The click command typer builds from the app (built once: ~0.1 s per build)."""
    import typer.main

    from backdoors.cli.app import app

    _load_commands()
    return typer.main.get_command(app)


def main(argv: list[str] | None = None) -> int:
    try:
        # standalone_mode=False: a typer.Exit(code) raised by a command comes back as its code
        rc = _click_command().main(args=argv, prog_name="backdoors", standalone_mode=False)
    except BackdoorsError as exc:
        print(f"backdoors: error: {_one_line(str(exc))}", file=sys.stderr)
        return _exit(EXIT_USER, argv)
    except OSError as exc:
        print(f"backdoors: error: {_one_line(os_error_message(exc))}", file=sys.stderr)
        return _exit(EXIT_USER, argv)
    except (Abort, KeyboardInterrupt):
        print("backdoors: interrupted", file=sys.stderr)
        return _exit(EXIT_INTERRUPTED, argv)
    except TyperException as exc:  # click usage errors (the vendored click derives from it)
        if exc.format_message():  # empty: no arguments, the help was printed
            print(f"backdoors: error: {_one_line(exc.format_message())}", file=sys.stderr)
        return _exit(EXIT_USER, argv)
    except Exit as exc:
        return _exit(exc.exit_code, argv)
    except Exception as exc:  # a bug: keep the traceback, say so
        traceback.print_exc(file=sys.stderr)
        print(
            f"backdoors: internal error (a bug, please report it): {type(exc).__name__}: "
            f"{_one_line(str(exc))}",
            file=sys.stderr,
        )
        return _exit(EXIT_BUG, argv)
    return _exit(rc if rc == EXIT_FINDINGS else EXIT_OK, argv)


def _exit(code: int, argv: list[str] | None) -> int:
    if argv is None:  # console-script use
        sys.exit(code)
    return code
