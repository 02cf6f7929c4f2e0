"""Populations of models: N honest and N backdoored members per attack, built from seeds.

Undetectability (paper Def. 4.5 / §4) is a statement about the *distributions* of honest and
backdoored models, so every detection claim is measured on populations. Member ``i`` of both
halves uses seed ``seed + i``: honest and backdoored members of one seed share data and training
code (the attack contract), so the two populations differ only in the backdoor.

* **Parallel**: members are independent jobs run with joblib (``n_jobs``), or on a Dask
  distributed cluster when ``scheduler`` is an address (``"tcp://host:8786"``) or a
  ``distributed.Client``: the same job function either way.
* **Cache**: with ``cache_dir``, each member is stored under the SHA-256 of (attack name,
  attack class, attack params, seed, backdoored, quick, package version, source of the
  attack's module). A rerun loads what
  exists and builds only what is missing. Models are written with
  :func:`backdoors.artifacts.files.save_model`
  (safetensors) or skops (scikit-learn estimators), keys with
  :func:`backdoors.artifacts.files.save_key`
  (0600), arrays as content-addressed safetensors files (a data set shared by all members is
  stored once), model-valued ``info`` entries (e.g. the honest base of a wrapper) as models,
  and everything else as JSON. Nothing is pickled to disk. A member whose model, key or
  ``info`` has no artifact format is built every time and listed in
  :attr:`Population.uncached`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from backdoors import __version__
from backdoors.errors import InvalidInputError
from backdoors.evaluation.model_cache import (
    ARRAY_FIELDS,
    CACHE_FORMAT,
    ArrayPool,
    cache_plan,
    import_model_kinds,
    load_member,
    save_member,
)
from backdoors.evaluation.recipes import ATTACKS, Attack, Built
from backdoors.progress import track

#: joblib/loky's message when it replaces a worker (see :func:`run_jobs`)
LOKY_RESTART_WARNING = "A worker stopped while some jobs were given to the executor"


@dataclass
class Population:
    """Honest and backdoored members of one attack (``honest[i].seed == backdoored[i].seed``)."""

    attack: str
    honest: list[Built] = field(default_factory=list)
    backdoored: list[Built] = field(default_factory=list)
    n_built: int = 0  # members computed in this call
    n_cached: int = 0  # members loaded from the cache
    wall_time: float = 0.0
    uncached: list[str] = field(default_factory=list)  # reasons members could not be cached

    def members(self) -> Iterator[Built]:
        yield from self.honest
        yield from self.backdoored

    def pairs(self) -> Iterator[tuple[Built, Built]]:
        """(honest, backdoored) members of the same seed."""
        by_seed = {b.seed: b for b in self.backdoored}
        for h in self.honest:
            if h.seed in by_seed:
                yield h, by_seed[h.seed]


# ---------------------------------------------------------------------------------------------
# jobs
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Task:
    attack: Attack
    seed: int
    backdoored: bool
    quick: bool


def as_attack(attack: str | Attack | type[Attack]) -> Attack:
    """An attack instance from a registered name, a class or an instance."""
    if isinstance(attack, Attack):
        return attack
    if isinstance(attack, type) and issubclass(attack, Attack):
        return attack()
    if isinstance(attack, str):
        return ATTACKS.get(attack)()
    raise InvalidInputError(f"not an attack: {attack!r}")


def attack_params(attack: Attack) -> dict[str, Any]:
    """The parameters that define an attack instance (``get_params()`` or public attributes)."""
    params = attack.get_params() if hasattr(attack, "get_params") else dict(vars(attack))
    return {k: params[k] for k in sorted(params) if not k.startswith("_")}


def _source_digest(cls: type) -> str | None:
    """SHA-256 of the recipe's module source: editing an attack invalidates its cache entries
    (changes in code it calls are covered only by the package version)."""
    import inspect
    import sys

    try:
        src = inspect.getsource(sys.modules[cls.__module__])
    except (OSError, TypeError, KeyError):
        return None
    return hashlib.sha256(src.encode()).hexdigest()


def member_hash(attack: Attack, seed: int, backdoored: bool, quick: bool) -> str:
    """Content hash naming one member in the cache."""
    doc = {
        "format": CACHE_FORMAT,
        "attack": attack.name,
        "class": f"{type(attack).__module__}.{type(attack).__qualname__}",
        "params": attack_params(attack),
        "seed": int(seed),
        "backdoored": bool(backdoored),
        "quick": bool(quick),
        "version": __version__,
        "recipe": _source_digest(type(attack)),
    }
    text = json.dumps(doc, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def _build_task(task: _Task) -> tuple[Built, float]:
    """Run in a worker: build one member and time it."""
    t0 = time.perf_counter()
    built = task.attack.build(task.seed, task.backdoored, task.quick)
    if not isinstance(built, Built):
        raise InvalidInputError(f"attack {task.attack.name} returned {type(built).__name__}")
    return built, time.perf_counter() - t0


def experiment_jobs(default: int = 2) -> int:
    """Workers for an experiment's populations: the environment variable ``BACKDOORS_JOBS``
    if set (``-1``: every core), else ``default``. One convention for every experiment."""
    raw = os.environ.get("BACKDOORS_JOBS")
    if raw is None:
        return int(default)
    try:
        n = int(raw)
    except ValueError:
        raise InvalidInputError(f"BACKDOORS_JOBS must be an integer, got {raw!r}") from None
    if n == 0 or n < -1:
        raise InvalidInputError(f"BACKDOORS_JOBS must be >= 1 or -1, got {n}")
    return n


def _indexed(fn: Callable[[Any], Any], i: int, item: Any) -> tuple[int, Any]:
    """One job in a parallel worker: one torch/BLAS thread each (workers already fill the
    cores; more threads per worker only spin-wait against each other)."""
    from backdoors.threads import one_thread

    with one_thread():
        return i, fn(item)


def _one_thread_call(fn: Callable[[Any], Any], item: Any) -> Any:
    return _indexed(fn, 0, item)[1]


def run_jobs(
    fn: Callable[[Any], Any], items: list[Any], n_jobs: int, scheduler: Any, label: str
) -> Iterator[tuple[int, Any]]:
    """Yield ``(index, fn(items[index]))`` as jobs finish: in-process (``n_jobs == 1``), on
    joblib workers, or on a Dask cluster (``scheduler``: an address or a ``distributed.Client``;
    Dask is an optional dependency). ``fn`` must be a module-level function."""
    if not items:
        return
    if scheduler is not None:
        try:
            from distributed import Client, as_completed
        except ImportError:  # pragma: no cover - exercised without the dask extra
            raise InvalidInputError(
                "a Dask scheduler needs the optional dependency: pip install 'backdoors[dask]'"
            ) from None

        own = not isinstance(scheduler, Client)
        client = Client(scheduler, set_as_default=False) if own else scheduler
        try:
            futures = client.map(functools.partial(_one_thread_call, fn), items, pure=False)
            index = {f.key: i for i, f in enumerate(futures)}
            for fut in track(as_completed(futures, loop=client.loop), label, total=len(items)):
                yield index[fut.key], fut.result()
        finally:
            if own:
                client.close()
        return
    from joblib import Parallel, delayed

    if n_jobs == 1:  # in-process: no worker start-up, exceptions keep their traceback
        for i, t in enumerate(track(items, label)):
            yield i, fn(t)
        return
    par = Parallel(n_jobs=n_jobs, return_as="generator_unordered")
    jobs = (delayed(_indexed)(fn, i, t) for i, t in enumerate(items))
    with warnings.catch_warnings():
        # loky replaces a worker whose memory grew 300 MB past its size after its first job
        # (a leak heuristic) and says so; ours legitimately keep per-process dataset caches
        # (MNIST, task data), so the replacement is expected and changes no result.
        warnings.filterwarnings("ignore", message=LOKY_RESTART_WARNING, category=UserWarning)
        yield from track(par(jobs), label, total=len(items))


# ---------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------
def build_populations(
    attacks: Iterable[str | Attack | type[Attack]],
    n: int,
    *,
    seed: int = 0,
    quick: bool = False,
    n_jobs: int = 1,
    scheduler: Any = None,
    cache_dir: str | os.PathLike | None = None,
    sides: tuple[bool, ...] = (False, True),
) -> dict[str, Population]:
    """Build ``n`` members per side (honest ``False``, backdoored ``True``) of every attack in
    one parallel job; member ``i`` uses seed ``seed + i``. Returns ``{attack name: Population}``.
    """
    if int(n) < 1:
        raise InvalidInputError(f"population size must be >= 1, got {n}")
    if n_jobs == 0 or n_jobs < -1:
        raise InvalidInputError(f"n_jobs must be >= 1 or -1, got {n_jobs}")
    import_model_kinds()  # cached members may be of kinds no module imported yet
    objs = [as_attack(a) for a in attacks]
    names = [a.name for a in objs]
    if len(set(names)) != len(names):
        raise InvalidInputError(f"attack names repeat: {names}")
    root = Path(cache_dir) if cache_dir is not None else None
    if root is not None:
        (root / "arrays").mkdir(parents=True, exist_ok=True)
        (root / "members").mkdir(parents=True, exist_ok=True)
    pool = ArrayPool(root)
    t0 = time.perf_counter()
    pops = {a.name: Population(a.name) for a in objs}
    slots: dict[tuple[str, bool, int], Built] = {}
    todo: list[tuple[str, _Task]] = []  # (hash, task)
    for a in objs:
        for bd in sides:
            for i in range(int(n)):
                task = _Task(a, int(seed) + i, bool(bd), bool(quick))
                h = member_hash(a, task.seed, task.backdoored, task.quick)
                got = load_member(root, h, pool) if root is not None else None
                if got is not None:
                    slots[(a.name, bd, i)] = got
                    pops[a.name].n_cached += 1
                else:
                    todo.append((h, task))
    places = [(t.attack.name, t.backdoored, t.seed - int(seed)) for _, t in todo]
    tasks = [t for _, t in todo]
    label = f"building {len(tasks)} models"
    for j, (built, seconds) in run_jobs(_build_task, tasks, n_jobs, scheduler, label):
        name = places[j][0]
        for fname in ARRAY_FIELDS:  # one copy of shared data sets in memory
            a = getattr(built, fname)
            if isinstance(a, np.ndarray):
                setattr(built, fname, pool.intern(a)[1])
        built.info = {**built.info, "build_seconds": built.info.get("build_seconds", seconds)}
        if root is not None:
            reason = cache_plan(built)
            if reason is None:
                save_member(root, todo[j][0], built, pool)
            else:
                pops[name].uncached.append(f"seed {built.seed}: {reason}")
        slots[places[j]] = built
        pops[name].n_built += 1
    wall = time.perf_counter() - t0
    for a in objs:
        pop = pops[a.name]
        pop.wall_time = wall
        pop.honest = [slots[(a.name, False, i)] for i in range(int(n)) if False in sides]
        pop.backdoored = [slots[(a.name, True, i)] for i in range(int(n)) if True in sides]
    return pops


def build_population(
    attack: str | Attack | type[Attack],
    n: int,
    *,
    seed: int = 0,
    quick: bool = False,
    n_jobs: int = 1,
    scheduler: Any = None,
    cache_dir: str | os.PathLike | None = None,
    sides: tuple[bool, ...] = (False, True),
) -> Population:
    """``n`` honest and ``n`` backdoored members of one attack (see :func:`build_populations`)."""
    pops = build_populations(
        [attack],
        n,
        seed=seed,
        quick=quick,
        n_jobs=n_jobs,
        scheduler=scheduler,
        cache_dir=cache_dir,
        sides=sides,
    )
    return next(iter(pops.values()))
