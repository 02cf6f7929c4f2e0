"""Progress of long runs on stderr: rich bars and spinners on a terminal, plain lines elsewhere.

* On a terminal (or ``BACKDOORS_PROGRESS=1``): :func:`track` draws a bar, :func:`step` a
  spinner with the elapsed time, both in one shared live display (so steps nest: a bar inside
  a step inside a demo section); each finished :func:`step` leaves one line.
* Not on a terminal (CI, ``| tee``, a log file): no bars; one line when a step starts
  (``backdoors: <what> ...``) and one per finished step or loop
  (``backdoors: <what> done in 12.3 s``), so a long run is never silent for minutes.
* ``BACKDOORS_PROGRESS=0``: nothing at all.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

_live: dict[str, Any] = {"progress": None}


def _flag() -> str | None:
    return os.environ.get("BACKDOORS_PROGRESS")


def enabled() -> bool:
    """Bars are drawn when stderr is a terminal, unless BACKDOORS_PROGRESS=0 (=1 forces them);
    never in worker processes (they would draw over the parent's bars)."""
    import multiprocessing

    if multiprocessing.parent_process() is not None:
        return False
    flag = _flag()
    if flag is not None:
        return flag not in ("0", "", "false")
    return sys.stderr.isatty()


def lines() -> bool:
    """Plain progress lines instead of bars: not on a terminal, not silenced, and not in a
    worker process (the parent reports its workers' progress)."""
    import multiprocessing

    if multiprocessing.parent_process() is not None:
        return False
    return not enabled() and _flag() not in ("0", "false")


def say(message: str) -> None:
    """One progress line on stderr (above the bars on a terminal); silent if silenced."""
    if enabled():
        _console().print(message, highlight=False, markup=False)
    elif lines():
        print(f"backdoors: {message}", file=sys.stderr, flush=True)


def _console() -> Any:
    from rich.console import Console

    p = _live["progress"]
    return p.console if p is not None else Console(stderr=True)


@contextmanager
def _progress() -> Iterator[Any]:
    """The shared rich Progress (created by the outermost caller, reused by nested ones)."""
    if _live["progress"] is not None:
        yield _live["progress"]
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    p = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    _live["progress"] = p
    try:
        with p:
            yield p
    finally:
        _live["progress"] = None


def _done(description: str, t0: float, extra: str = "") -> None:
    say(f"{description}{extra} done in {time.perf_counter() - t0:.1f} s")


def track(
    iterable: Iterable[T],
    description: str = "working",
    total: int | None = None,
    line: bool = True,
) -> Iterator[T]:
    """Iterate with a progress bar on a terminal, and (``line``) one line when done elsewhere
    (``line=False`` for inner loops that run many times, e.g. training epochs)."""
    t0 = time.perf_counter()
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    if not enabled():
        n = 0
        for n, item in enumerate(iterable, 1):  # noqa: B007
            yield item
        if line:
            _done(description, t0, f" ({n} of {total})" if total else f" ({n})")
        return
    with _progress() as p:
        task = p.add_task(description, total=total)
        try:
            for item in iterable:
                yield item
                p.advance(task)
        finally:
            p.remove_task(task)


@contextmanager
def step(description: str) -> Iterator[None]:
    """A long step without a count: a spinner with elapsed time on a terminal; elsewhere one
    line when it starts (``<description> ...``) so a long step is never silent; and one line
    (``<description> done in N s``) when it finishes, on a terminal or not."""
    t0 = time.perf_counter()
    if not enabled():
        say(f"{description} ...")
        yield
        _done(description, t0)
        return
    with _progress() as p:
        task = p.add_task(description, total=None)
        try:
            yield
        finally:
            p.remove_task(task)
    _done(description, t0)
