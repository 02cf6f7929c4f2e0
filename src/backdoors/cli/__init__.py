"""``backdoors`` command line. Every module in this package adds its commands to
:data:`backdoors.cli.app.app` (or ``plant_app``); :func:`main` loads them all.

Errors at the boundary: every error a user can cause ends in ONE line on stderr,
``backdoors: error: ...``, and exit code 2 with no output file written:

* :class:`~backdoors.errors.BackdoorsError` (bad input, corrupt file, key mismatch, ...);
* usage errors (unknown option, bad value for an option);
* :class:`OSError` from the file system (permission, full disk, read-only, a folder where a
  file is expected...), reported with the file name and the system's reason.

Anything else is a bug of this package, not a user error: it prints the traceback and a last
line ``backdoors: internal error (a bug, please report it): ...`` and exits with code 1, so a
bug is never disguised as bad input. Ctrl-C exits 130 and SIGTERM 143, each with one line
on stderr, after the open output transaction has removed its temporary files.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import signal
import sys
import threading
import traceback
from typing import Any

from typer.exceptions import Abort, Exit, TyperException

from backdoors.errors import BackdoorsError

#: exit codes: 0 success, 1 internal error (a bug), 2 a user error, 3 a check that ran and
#: failed (``verify-coins``: the model's coins are not the seeded stream; ``audit --fail-on``:
#: a finding at the chosen level), 130 interrupted (SIGINT), 143 terminated (SIGTERM)
EXIT_OK, EXIT_BUG, EXIT_USER, EXIT_CHECK_FAILED = 0, 1, 2, 3
EXIT_FINDINGS = EXIT_CHECK_FAILED
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143


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

    from backdoors.cli._options import install
    from backdoors.cli.app import app

    _load_commands()
    command = typer.main.get_command(app)
    install(command)  # the options' declared constraints, checked before any command runs
    return command


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C, so every open output transaction
    rolls back (no ``.tmp`` file is left behind) before the process exits 143."""


def _on_sigterm(signum: int, frame: Any) -> None:
    _signals.append(signum)
    raise Terminated


_signals: list[int] = []


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return (or, as the console script, exit with) its exit code:
    0, 1 a bug, 2 a user error, 130 interrupted (SIGINT), 143 terminated (SIGTERM)."""
    _signals.clear()
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main else None
    try:
        code = _run(argv)
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
    return _exit(code, argv)


def _interrupted() -> int:
    if _signals:
        print("backdoors: terminated (SIGTERM); no output written", file=sys.stderr)
        return EXIT_TERMINATED
    print("backdoors: interrupted; no output written", file=sys.stderr)
    return EXIT_INTERRUPTED


def _run(argv: list[str] | None) -> int:
    try:
        rv = _click_command().main(args=argv, prog_name="backdoors", standalone_mode=False)
    except BackdoorsError as exc:
        print(f"backdoors: error: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_USER
    except OSError as exc:
        print(f"backdoors: error: {_one_line(os_error_message(exc))}", file=sys.stderr)
        return EXIT_USER
    except (Abort, KeyboardInterrupt):
        return _interrupted()
    except TyperException as exc:  # click usage errors (the vendored click derives from it)
        if exc.format_message():  # empty: no arguments, the help was printed
            print(f"backdoors: error: {_one_line(exc.format_message())}", file=sys.stderr)
        return EXIT_USER
    except Exit as exc:
        return exc.exit_code
    except Exception as exc:  # a bug: keep the traceback, say so
        traceback.print_exc(file=sys.stderr)
        print(
            f"backdoors: internal error (a bug, please report it): {type(exc).__name__}: "
            f"{_one_line(str(exc))}",
            file=sys.stderr,
        )
        return EXIT_BUG
    # typer turns Ctrl-C (KeyboardInterrupt) into the return value 130
    if isinstance(rv, int) and not isinstance(rv, bool) and rv != EXIT_OK:
        return _interrupted() if rv == EXIT_INTERRUPTED else rv
    return EXIT_OK


def _exit(code: int, argv: list[str] | None) -> int:
    if argv is None:  # console-script use
        sys.exit(code)
    return code
