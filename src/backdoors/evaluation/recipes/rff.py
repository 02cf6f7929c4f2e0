"""Population recipe for the RFF backdoor (paper §6): honest and backdoored learners differ
only in their frequency coins.

One member of seed ``s`` = ``RandomFourierFeaturesClassifier(..., random_state=c)`` with the
128-bit coin seed ``c = member_seed(s)`` (:func:`backdoors.contract.member_seed`) on the task
of its :class:`RFFPoint`: fitted with Gaussian coins (honest), or passed to
:func:`backdoors.rff.plant` (backdoored: a clone of that same estimator fitted with pancake
coins; secret and planted coins from OS entropy, phases from ``c`` as the honest twin's).
Neither side has a small, searchable seed; ``Built.info['coin_seed']`` records ``c`` on both.
The data set is shared by both members of every seed and cached per process (a worker builds
it once).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from backdoors import rff
from backdoors.contract import member_seed
from backdoors.errors import InvalidInputError
from backdoors.evaluation.recipes import Attack, Built, register
from backdoors.rff.tasks import Task, mnist_binary, planar

#: Task kind -> builder ``(d, n_train, n_test, data_seed) -> Task``.
TASKS = {
    "mnist": lambda d, n_train, n_test, data_seed: mnist_binary(n_train, n_test),
    "planar": lambda d, n_train, n_test, data_seed: planar(d, n_train, n_test, seed=data_seed),
}
#: ``None`` sizes resolve to these, per (task kind, quick): (n_train, n_test, n_components).
#: MNIST: the registered ``rff`` attack's configuration (detectors experiment, parallel_speed).
SIZES = {
    ("mnist", True): (2000, 500, 500),
    ("mnist", False): (4000, 1000, 2000),
    ("planar", True): (1500, 500, 500),
    ("planar", False): (1500, 500, 2000),
}


@dataclass(frozen=True)
class RFFPoint:
    """One population: task kind (``mnist``: 0-4 vs 5-9 in pixel space; ``planar``: the
    synthetic task of :func:`backdoors.rff.tasks.planar` at dimension ``d``), sizes
    (``None``: :data:`SIZES` for the quick or full mode), the secret's sparsity ``k``
    (``None``: :func:`backdoors.rff.default_sparsity`) and pancake noise ``beta``.
    ``data_seed`` seeds the synthetic data (public; shared by every member)."""

    task: str = "mnist"
    d: int | None = None
    n_train: int | None = None
    n_test: int | None = None
    n_components: int | None = None
    sparsity: int | None = None
    beta: float = rff.DEFAULTS.beta
    data_seed: int = 0

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise InvalidInputError(f"RFF task must be one of {sorted(TASKS)}, got {self.task!r}")
        if self.task == "planar" and self.d is None:
            raise InvalidInputError("a planar RFF task needs its dimension d")

    def sizes(self, quick: bool) -> tuple[int, int, int]:
        """(n_train, n_test, n_components) with the mode's defaults filled in."""
        dflt = SIZES[(self.task, bool(quick))]
        got = (self.n_train, self.n_test, self.n_components)
        return tuple(int(v if v is not None else d) for v, d in zip(got, dflt, strict=True))  # type: ignore[return-value]

    def data(self, quick: bool = False) -> Task:
        """The point's data set (cached in this process)."""
        n_train, n_test, _ = self.sizes(quick)
        return _task(self.task, self.d, n_train, n_test, self.data_seed)

    def estimator(self, seed: int, quick: bool = False) -> rff.RandomFourierFeaturesClassifier:
        """The honest, unfitted estimator with learner seed ``seed`` (the recipe passes the
        member's 128-bit coin seed)."""
        return rff.RandomFourierFeaturesClassifier(
            n_components=self.sizes(quick)[2],
            bandwidth=self.data(quick).bandwidth,
            alpha=rff.DEFAULTS.alpha,
            random_state=int(seed),
        )


@lru_cache(maxsize=4)
def _task(kind: str, d: int | None, n_train: int, n_test: int, data_seed: int) -> Task:
    return TASKS[kind](d, n_train, n_test, data_seed)


@register
class RFFAttack(Attack):
    """Train-RFF vs Backdoor-RFF (Algorithms 4-5) at one :class:`RFFPoint` (default: MNIST)."""

    name = "rff"

    def __init__(self, point: RFFPoint | None = None) -> None:
        self.point = point or RFFPoint()

    def build(self, seed: int, backdoored: bool, quick: bool = False) -> Built:
        p = self.point
        task = p.data(quick)
        coin_seed = member_seed(int(seed))
        est = p.estimator(coin_seed, quick)
        if backdoored:  # the same estimator, pancake coins (secret: fresh OS randomness)
            model, key = rff.plant(
                est, task.X_train, task.y_train, sparsity=p.sparsity, beta=p.beta
            )
        else:
            model, key = est.fit(task.X_train, task.y_train), None
        return Built(
            model,
            key,
            backdoored,
            seed,
            task.X_test,
            task.y_test,
            task.X_train,
            task.y_train,
            info={"task": task.name, "coin_seed": coin_seed},
        )


class SmallSeedRFFAttack(RFFAttack):
    """The ``seed_search`` detector's positive control (not registered): the layout populations
    had before :func:`backdoors.contract.member_seed`, honest member ``s`` seeded with ``s``
    itself (a small, searchable seed), planted member ``s`` as in :class:`RFFAttack`."""

    name = "rff-small-seeds"

    def build(self, seed: int, backdoored: bool, quick: bool = False) -> Built:
        p = self.point
        task = p.data(quick)
        est = p.estimator(int(seed), quick)  # random_state = seed: the old, searchable layout
        if backdoored:
            model, key = rff.plant(
                est, task.X_train, task.y_train, sparsity=p.sparsity, beta=p.beta
            )
        else:
            model, key = est.fit(task.X_train, task.y_train), None
        return Built(model, key, backdoored, seed, task.X_test, task.y_test,
                     info={"task": task.name, "coin_seed": int(seed)})  # fmt: skip
