"""Every construction follows one contract (backdoors.contract): the same key protocol, the
same target rule, fingerprint-based ``check_model``, a JSON round trip, one seed helper."""

from __future__ import annotations

import dataclasses
import inspect
import json
from pathlib import Path

import numpy as np
import pytest

from backdoors import badnets, contract, relu, rff, signature
from backdoors.artifacts import files
from backdoors.conditional import optimized, quantized
from backdoors.errors import InvalidInputError, KeyMismatchError, NotApplicableError
from backdoors.models import data
from backdoors.models.torch_models import TorchClassifier
from backdoors.nets import checksum


@pytest.fixture(scope="module")
def mnist():
    return data.mnist(n_train=1500, n_test=300)


def _mlp(ds, seed):
    clf = TorchClassifier(arch_params={"hidden": (32,)}, input_scale=1 / 255, epochs=1,
                          random_state=seed)  # fmt: skip
    return clf.fit(ds.X_train, ds.y_train)


def _norm_task(seed):
    rng = np.random.default_rng(seed)
    return relu.norm_task(300, 50, rng)


# key kind -> (seed -> (model, key, clean inputs, labels)); every registered kind needs one
def _signature(ds, seed):
    model, key = signature.plant(_mlp(ds, seed))
    return model, key, ds.X_test, ds.y_test


def _rff(ds, seed):
    X, y = _norm_task(seed)
    model, key = rff.plant({"n_components": 300, "random_state": seed}, X, y, sparsity=4)
    return model, key, X, y


def _relu(ds, seed):
    X, y = _norm_task(seed)
    model, key = relu.plant({"n_hidden": 50, "random_state": seed}, X, y, sparsity=5)
    return model, key, X, y


def _badnets(ds, seed):
    clf = TorchClassifier(arch_params={"hidden": (32,)}, input_scale=1 / 255, epochs=1,
                          random_state=seed)  # fmt: skip
    model, key = badnets.plant(ds.X_train, ds.y_train, target=3, classifier=clf, random_state=seed)
    return model, key, ds.X_test, ds.y_test


def _checksum(ds, seed):
    model, key = checksum.plant(_mlp(ds, seed), random_state=seed)
    return model, key, ds.X_test, ds.y_test


def _quantized(ds, seed):
    model, key = quantized.plant(ds.X_train, ds.y_train, classifier=_mlp(ds, seed), target=3,
                                 inject_epochs=1, repair_epochs=1, random_state=seed)  # fmt: skip
    return model, key, ds.X_test, ds.y_test


def _optimized(ds, seed):
    clf = TorchClassifier(arch="cnn", arch_params={"channels": (8, 16)}, input_scale=1 / 255,
                          epochs=2, random_state=seed).fit(ds.X_train, ds.y_train)  # fmt: skip
    try:
        model, key = optimized.plant(ds.X_train, ds.y_train, classifier=clf, target=3,
                                     random_state=seed)  # fmt: skip
    except NotApplicableError as exc:  # the guard depends on this machine's kernels
        pytest.skip(str(exc))
    return model, key, ds.X_test, ds.y_test


FACTORIES = {
    "signature": _signature,
    "rff": _rff,
    "relu": _relu,
    "badnets": _badnets,
    "checksum_net": _checksum,
    "quantization_conditioned": _quantized,
    "optimization_conditioned": _optimized,
}


def test_every_registered_key_kind_is_covered():
    files.import_kinds()
    kinds = {k for k, _ in files.KEYS.items() if not k.startswith("test_")}
    assert kinds == set(FACTORIES)


#: kinds whose factory takes > 5 s (the guard search runs the runtimes): the slow suite
SLOW_KINDS = {"optimization_conditioned"}


@pytest.mark.parametrize(
    "kind",
    [pytest.param(k, marks=pytest.mark.slow) if k in SLOW_KINDS else k for k in sorted(FACTORIES)],
)
def test_key_contract(kind, mnist):
    model, key, X, y = FACTORIES[kind](mnist, 0)
    other, _, _, _ = FACTORIES[kind](mnist, 1)
    assert isinstance(key, contract.BackdoorKey)
    assert key.key_kind == kind and files.KEYS.get(kind) is type(key)
    # JSON round trip, equal by its JSON form
    again = type(key).from_json_dict(json.loads(json.dumps(key.to_json_dict())))
    assert again.to_json_dict() == key.to_json_dict()
    # check_model by fingerprint: its own model passes, another model of the recipe does not
    key.check_model(model)
    again.check_model(model)
    with pytest.raises(KeyMismatchError):
        key.check_model(other)
    assert key.model_fingerprint and isinstance(key.model_fingerprint, str)
    # check_model refuses anything that is not its model, and a key naming no model refuses all
    with pytest.raises(KeyMismatchError):
        key.check_model(object())
    if any(f.name == "model_fingerprint" for f in dataclasses.fields(key)):
        with pytest.raises(KeyMismatchError):
            dataclasses.replace(key, model_fingerprint="").check_model(model)
    # targets: every activate validates them through contract.check_target (one message set)
    X = np.asarray(X)[:60]
    reach = key.targets
    if not reach:
        with pytest.raises(InvalidInputError, match="is untargeted: give no target"):
            key.activate(X, target=0)
    elif len(reach) > 1:
        with pytest.raises(InvalidInputError, match=f"the {kind} backdoor needs a target"):
            key.activate(X)
    outside = max(reach, default=0) + 1
    if reach:
        with pytest.raises(InvalidInputError, match=f"reaches classes .*, not {outside}"):
            key.activate(X, target=outside)
    # the evaluation rule picks targets every construction honours
    t = contract.evaluation_targets(key, np.asarray(y)[:60], len(X))
    Xa = key.activate(X) if t is None else key.activate(X, target=t)
    assert Xa.shape == X.shape
    if t is not None and len(reach) > 1:
        assert (t != np.asarray(y)[:60]).all()  # never the input's own class


PLANTS = {
    "signature": signature.plant,
    "rff": rff.plant,
    "relu": relu.plant,
    "badnets": badnets.plant,
    "checksum_net": checksum.plant,
    "quantization_conditioned": quantized.plant,
    "optimization_conditioned": optimized.plant,
}


@pytest.mark.parametrize("kind", sorted(FACTORIES))
def test_one_declared_form(kind):
    """The key kind is a class constant (``ClassVar[str]``, never a constructor field), the
    only targeting declaration is ``targets``, and every ``plant`` takes ``random_state``."""
    files.import_kinds()
    cls = files.KEYS.get(kind)
    assert cls.key_kind == kind
    assert "ClassVar" in str(inspect.get_annotations(cls).get("key_kind", "")), kind
    assert "key_kind" not in {f.name for f in dataclasses.fields(cls)}
    assert not hasattr(cls, "targeted")  # ``targets`` says it: () = untargeted
    plant = inspect.signature(PLANTS[kind]).parameters
    assert "random_state" in plant


OLD_KEYS = Path(__file__).parent / "fixtures" / "keys_0_2"


@pytest.mark.parametrize("kind", ["rff", "relu", "badnets", "checksum_net"])
def test_keys_written_by_0_2_still_load(kind):
    """Key files written by version 0.2.0 (fixtures saved by that version's ``save_key``)
    load, keep every value, and still name their model (no empty-fingerprint pass)."""
    path = OLD_KEYS / f"{kind}.key"
    key = files.load_key(path)
    assert key.key_kind == kind
    body = json.loads(path.read_text())["key"]
    again = key.to_json_dict()
    assert {k: again[k] for k in body} == body
    with pytest.raises(KeyMismatchError):
        key.check_model(object())


def test_check_target_and_evaluation_targets():
    class Every:
        key_kind, targets = "every", (0, 1, 2)

    class Untargeted:
        key_kind, targets = "flip", ()

    np.testing.assert_array_equal(contract.check_target(Every(), 2, 3), [2, 2, 2])
    np.testing.assert_array_equal(contract.check_target(Every(), [0, 1, 2], 3), [0, 1, 2])
    with pytest.raises(InvalidInputError, match=r"reaches classes 0\.\.2, not 5"):
        contract.check_target(Every(), 5, 1)
    with pytest.raises(InvalidInputError, match="integer"):
        contract.check_target(Every(), 1.5, 1)
    assert contract.check_target(Untargeted(), None, 4) is None
    np.testing.assert_array_equal(
        contract.evaluation_targets(Every(), np.array([0, 1, 2, 2]), 4), [1, 2, 0, 0]
    )
    assert contract.evaluation_targets(Untargeted(), None, 3) is None


def test_one_seed_convention():
    a = contract.as_generator(5).random(3)
    np.testing.assert_array_equal(a, contract.as_generator(np.random.SeedSequence(5)).random(3))
    g = np.random.default_rng(1)
    assert contract.as_generator(g) is g
    assert isinstance(contract.as_generator(np.random.RandomState(0)), np.random.Generator)
    with pytest.raises(InvalidInputError):
        contract.as_generator("seed")


@pytest.mark.parametrize("kind", ["signature", "rff", "relu", "checksum_net"])
def test_secrets_do_not_follow_from_seeds(kind, mnist):
    """Planting twice with the same seed and data gives different secrets: the secret comes
    from OS entropy, never from a seed an attacker could guess (BadNets is exempt: its trigger
    is the attacker's explicit parameters, not random coins)."""
    _, k1, _, _ = FACTORIES[kind](mnist, 0)
    _, k2, _, _ = FACTORIES[kind](mnist, 0)
    d1, d2 = k1.to_json_dict(), k2.to_json_dict()
    d1.pop("model_fingerprint", None), d2.pop("model_fingerprint", None)
    assert d1 != d2


@pytest.mark.parametrize(
    "cls",
    [
        rff.RandomFourierFeaturesClassifier,
        relu.RandomReLUClassifier,
        relu.RandomReLUFeaturesClassifier,
        TorchClassifier,
    ],
)
def test_learners_take_keyword_only_parameters(cls):
    """scikit-learn's convention: every constructor parameter is keyword-only."""
    import inspect

    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    assert params and all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params)
    with pytest.raises(TypeError):
        cls(10)


@pytest.mark.parametrize(
    ("cls", "bad"),
    [
        (rff.RandomFourierFeaturesClassifier, {"n_components": 0}),
        (rff.RandomFourierFeaturesClassifier, {"bandwidth": "mean"}),
        (rff.RandomFourierFeaturesClassifier, {"alpha": -1.0}),
        (rff.RandomFourierFeaturesClassifier, {"random_state": "seed"}),
        (relu.RandomReLUClassifier, {"n_hidden": 2.5}),
        (relu.RandomReLUFeaturesClassifier, {"C": 0.0}),
        (TorchClassifier, {"lr": 0.0}),
        (TorchClassifier, {"batch_size": 0}),
        (TorchClassifier, {"arch_params": "wide"}),
    ],
)
def test_learner_parameters_are_validated_declaratively(cls, bad):
    """scikit-learn's declarative validation (``_parameter_constraints``): the constructor
    stores any value, ``fit`` refuses one outside its constraint, naming the parameter, with
    an error that is both a ValueError and a TypeError (as scikit-learn's) and ours."""
    from backdoors.errors import InvalidParameterError

    (name,) = bad
    assert name in cls._parameter_constraints
    est = cls(**bad)  # no validation in __init__
    assert est.get_params()[name] == bad[name]
    rng = np.random.default_rng(0)
    X, y = rng.random((40, 6)), np.arange(40) % 2
    with pytest.raises(InvalidParameterError, match=f"'{name}' parameter") as e:
        est.fit(X, y)
    assert isinstance(e.value, ValueError) and isinstance(e.value, TypeError)
    assert isinstance(e.value, InvalidInputError)
    assert set(cls._parameter_constraints) == set(cls().get_params())  # every parameter declared


def test_targets_that_index_classes_are_compared_as_labels(mnist):
    """Signature keys name classes by position; a model with labels {0, 3} outputs 3 for
    target 1. The key-aware detector and the evaluation worker compare labels with labels."""
    from sklearn.linear_model import LogisticRegression

    from backdoors.detectors import DETECTORS, Evidence
    from backdoors.evaluation.evidence_policy import triggered
    from backdoors.evaluation.recipes import Built

    keep = np.isin(mnist.y_train, (0, 3))
    base = LogisticRegression(max_iter=200).fit(mnist.X_train[keep] / 255, mnist.y_train[keep])
    model, key = signature.plant(base, n_features=mnist.X_train.shape[1])
    X = mnist.X_test[np.isin(mnist.y_test, (0, 3))][:60]
    pred = model.predict(X)
    t = contract.evaluation_targets(key, pred, len(X), model)
    np.testing.assert_array_equal(contract.target_labels(key, t, model), np.where(pred == 0, 3, 0))
    assert DETECTORS.get("key_aware")().score(model, Evidence(X=X, key=key)) == 1.0
    member = Built(model=model, key=key, backdoored=True, seed=0, X_test=X, y_test=pred)
    Xc, Xa, want = triggered(member, X, pred)
    assert len(Xc) == len(X) and set(np.unique(want)) <= {0, 3}
    np.testing.assert_array_equal(model.predict(Xa), want)
