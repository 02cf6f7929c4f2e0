"""How many threads torch may use: the cores this process may actually run on, now.

torch starts with one OpenMP thread per core of the machine and its threads spin-wait at
every barrier; on a machine shared with other work a thread that has been descheduled holds
every other one spinning, so training slows down by far more than the machine's load (MNIST
training measured 337 s instead of about 5 s at load 5-14 on 2 cores). The policy
(:func:`torch_threads`): at most the cores in this process's CPU affinity mask
(``os.sched_getaffinity``, which containers and ``taskset`` restrict), at most
``OMP_NUM_THREADS`` when set. ``BACKDOORS_TORCH_THREADS`` overrides it (an integer, or
``torch`` for torch's own choice). Parallel population workers each use one thread
(:func:`one_thread`). The count is a function of the environment only, never of the machine's
current load: the thread count changes the order of float summations, so trained weights
differ between 1 and 2 threads, and a load-dependent count would make a seeded run
irreproducible. On a machine shared with other work, set ``OMP_NUM_THREADS=1`` (or
``BACKDOORS_TORCH_THREADS=1``); ``benchmarks/training_under_load.py`` measures why.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


def available_cores() -> int:
    """Cores in this process's CPU affinity mask (``os.cpu_count()`` where there is none)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _env_int(name: str) -> int | None:
    try:
        v = int(os.environ.get(name, ""))
    except ValueError:
        return None
    return v if v >= 1 else None


def torch_threads() -> int | None:
    """Threads for torch's intra-op pool (see the module docstring); ``None``: leave torch's."""
    override = os.environ.get("BACKDOORS_TORCH_THREADS")
    if override == "torch":
        return None
    if _env_int("BACKDOORS_TORCH_THREADS") is not None:
        return _env_int("BACKDOORS_TORCH_THREADS")
    n = available_cores()
    omp = _env_int("OMP_NUM_THREADS")
    if omp is not None:
        n = min(n, omp)
    return max(1, n)


@contextmanager
def torch_thread_limit(n: int | None = None) -> Iterator[int]:
    """Run the block with torch's intra-op threads set to ``n`` (default
    :func:`torch_threads`), restoring the previous count after."""
    import torch

    old = torch.get_num_threads()
    n = torch_threads() if n is None else n
    if n is None:
        yield old
        return
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(old)


@contextmanager
def one_thread() -> Iterator[None]:
    """Limit torch and BLAS to one thread, as each parallel worker is."""
    from threadpoolctl import threadpool_limits

    with torch_thread_limit(1), threadpool_limits(1):
        yield
