"""Progress bars for long loops (rich), shown on a terminal and silent in CI and tests."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def enabled() -> bool:
    """Bars are drawn when stderr is a terminal, unless BACKDOORS_PROGRESS=0 (=1 forces them)."""
    flag = os.environ.get("BACKDOORS_PROGRESS")
    if flag is not None:
        return flag not in ("0", "", "false")
    return sys.stderr.isatty()


def track(
    iterable: Iterable[T], description: str = "working", total: int | None = None
) -> Iterator[T]:
    """Iterate with a rich progress bar on stderr when :func:`enabled`."""
    if not enabled():
        yield from iterable
        return
    from rich.console import Console
    from rich.progress import track as rich_track

    yield from rich_track(
        iterable, description=description, total=total, console=Console(stderr=True), transient=True
    )
