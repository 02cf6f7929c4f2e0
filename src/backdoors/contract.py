"""The one construction contract (paper §4: a backdoor is a pair ``Backdoor -> (h~, bk)`` and
``Activate(x, y; bk) -> x'``), and the one seed convention.

Every construction module exposes ``plant(...) -> (model, key)`` and
``activate(X, key, target=None) -> X'``; its key type satisfies :class:`BackdoorKey`:

* ``key_kind`` names the kind in :data:`backdoors.artifacts.files.KEYS` (JSON round trip through
  ``to_json_dict`` / ``from_json_dict``; key files are 0600 and never enter a model);
* ``targets`` is the tuple of classes ``activate`` can reach: empty for the untargeted flips
  of RFF and random ReLU (``target`` must then be ``None``), one class for all-to-one BadNets,
  every class for the signature and checksum backdoors (``target`` required);
* ``check_model(model)`` raises :class:`~backdoors.errors.KeyMismatchError` unless ``model`` is
  the one the key was planted in, by equality of a fingerprint of the model's public artifact
  (no statistics, no guessing).

:func:`evaluation_targets` is how evaluation code picks a target for a key without knowing its
construction (no per-construction fallbacks).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from backdoors.errors import InvalidInputError


@runtime_checkable
class BackdoorKey(Protocol):
    """What every construction's key provides (see the module docstring)."""

    key_kind: str
    model_fingerprint: str

    @property
    def targets(self) -> tuple[int, ...]: ...

    def activate(self, X: Any, target: Any = None) -> np.ndarray: ...

    def check_model(self, model: Any) -> None: ...

    def to_json_dict(self) -> dict[str, Any]: ...

    @classmethod
    def from_json_dict(cls, d: dict[str, Any]) -> Any: ...


def check_target(key: Any, target: Any, n: int) -> np.ndarray | None:
    """Validate ``target`` against ``key.targets`` for ``n`` inputs: ``None`` for an untargeted
    key (a target is then an error), else an int64 array of length ``n``."""
    reach = tuple(key.targets)
    if not reach:
        if target is not None:
            raise InvalidInputError(f"the {key.key_kind} backdoor is untargeted: give no target")
        return None
    if target is None:
        if len(reach) == 1:
            return np.full(n, reach[0], dtype=np.int64)
        raise InvalidInputError(f"the {key.key_kind} backdoor needs a target class")
    t = np.asarray(target)
    if t.dtype.kind not in "iu" or t.ndim > 1 or (t.ndim == 1 and len(t) != n):
        raise InvalidInputError(f"target must be an integer or {n} integers")
    t = np.broadcast_to(t.astype(np.int64), (n,))
    bad = ~np.isin(t, reach)
    if bad.any():
        raise InvalidInputError(
            f"the {key.key_kind} key reaches classes {_span(reach)}, not {int(t[bad][0])}"
        )
    return np.array(t)


def _span(reach: tuple[int, ...]) -> str:
    if len(reach) > 2 and reach == tuple(range(reach[0], reach[-1] + 1)):
        return f"{reach[0]}..{reach[-1]}"
    return ", ".join(map(str, reach))


def indexes_classes(key: Any) -> bool:
    """Whether ``key.targets`` are positions in the model's ``classes_`` (the signature and
    checksum keys, which never see labels) rather than label values (BadNets)."""
    return bool(getattr(key, "targets_are_class_indices", False))


def target_labels(key: Any, t: np.ndarray, model: Any = None) -> np.ndarray:
    """The labels ``model`` outputs for key targets ``t``: ``model.classes_[t]`` for keys that
    index classes (labels ``{0, 3}``: target 1 is label 3), else ``t`` itself."""
    classes = getattr(model, "classes_", None)
    if classes is None or not indexes_classes(key):
        return np.asarray(t)
    return np.asarray(classes)[np.asarray(t, dtype=np.int64)]


def _key_space(key: Any, y: np.ndarray, model: Any) -> np.ndarray:
    """Labels ``y`` as the key names classes (positions in ``model.classes_``, -1 if absent)."""
    classes = getattr(model, "classes_", None)
    if classes is None or not indexes_classes(key):
        return np.asarray(y).astype(np.int64)
    classes = np.asarray(classes)
    pos = np.clip(np.searchsorted(classes, y), 0, len(classes) - 1)
    return np.where(classes[pos] == y, pos, -1).astype(np.int64)


def evaluation_targets(
    key: Any, y: np.ndarray | None, n: int, model: Any = None
) -> np.ndarray | None:
    """Targets (as ``key.activate`` takes them) an evaluation uses for ``n`` inputs with labels
    ``y`` of ``model``: ``None`` (untargeted), the key's single class, or for every-class keys
    the next class after each label (``(y + 1) mod C`` in the key's class order, never the
    input's own class; class ``1`` if labels are unknown). Compare them with predictions
    through :func:`target_labels`."""
    reach = tuple(key.targets)
    if not reach:
        return None
    if len(reach) == 1:
        return np.full(n, reach[0], dtype=np.int64)
    if y is None:
        return np.full(n, reach[min(1, len(reach) - 1)], dtype=np.int64)
    yk = _key_space(key, np.asarray(y)[:n], model)
    return np.asarray(reach, dtype=np.int64)[(np.searchsorted(reach, yk) + 1) % len(reach)]


def as_generator(random_state: Any) -> np.random.Generator:
    """The one seed convention (scikit-learn's ``check_random_state``, for numpy Generators):
    ``None`` -> fresh OS entropy, an int or ``SeedSequence`` -> that stream, a ``Generator`` ->
    itself, a legacy ``RandomState`` -> a Generator seeded from it. Seeds drive public
    randomness only; secrets come from :func:`backdoors.hazmat.sampling.fresh_rng` (OS entropy)."""
    if isinstance(random_state, int | np.integer) and not 0 <= random_state < 2**128:
        raise InvalidInputError(f"random_state must be a non-negative integer, got {random_state}")
    if random_state is None or isinstance(random_state, int | np.integer | np.random.SeedSequence):
        return np.random.default_rng(random_state)
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(int(random_state.randint(0, 2**31 - 1)))
    raise InvalidInputError(
        f"random_state must be None, an int or a Generator, not {random_state!r}"
    )


#: Domain tag of :func:`member_seed` (keeps its stream apart from every other use of a seed).
MEMBER_COINS_TAG = 0x636F696E  # "coin"


def member_seed(seed: int) -> int:
    """The 128-bit coin seed of population member ``seed``: four 32-bit words of
    ``SeedSequence([seed, MEMBER_COINS_TAG]).generate_state(4)``, as one integer.

    Both sides of every population draw their coins from it: the honest learner's
    ``random_state`` is this seed, and the planted learner's public coins (RFF phases) come
    from the same seed form, while its secret and planted coins come from OS entropy. Neither
    side then has a small seed: a search over ``random_state`` in ``[0, 2^t)`` (the
    ``seed_search`` detector) finds neither, whereas honest members seeded ``0, 1, 2, ...``
    were found and planted ones were not (a trivial distinguisher). Reproducible from the
    experiment's seed, recorded in ``Built.info['coin_seed']`` on both sides; whoever knows
    the member seed and this derivation holds the honest coins, as a key holder would."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or int(seed) < 0:
        raise InvalidInputError(f"a member seed is a non-negative integer, not {seed!r}")
    words = np.random.SeedSequence([int(seed), MEMBER_COINS_TAG]).generate_state(4, np.uint32)
    return sum(int(w) << (32 * i) for i, w in enumerate(words))


def honest_clone(estimator: Any, default: type, accepted: type, what: str) -> Any:
    """The coin constructions' first step (``plant(estimator, X, y)``): an unfitted clone of
    the honest ``estimator`` (an instance of ``accepted``, a dict of ``default``'s parameters,
    or ``None`` for ``default()``), so the planted model's ``get_params()`` are the honest
    ones by construction."""
    from sklearn.base import clone

    if estimator is None:
        return default()
    if isinstance(estimator, dict):
        try:
            return default(**estimator)
        except TypeError as exc:
            raise InvalidInputError(f"not {what} parameters: {exc}") from None
    if not isinstance(estimator, accepted):
        raise InvalidInputError(
            f"plant needs a {what} (or its parameters), got {type(estimator).__name__}"
        )
    return clone(estimator)
