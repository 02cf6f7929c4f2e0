"""The signature backdoor for any classifier (paper §5.2, Theorem 2.1; paper.md §2.2-2.4).

``plant(h)`` returns ``h~(x) = Verify(vk, m(x), sigma(x)) ? target(x) : h(x)`` and the signing
key; ``activate(x, key, target)`` writes ``tag || target || Sign(sk, m)`` into the input's
carrier bits, where the message ``m`` binds the input with carrier bits cleared, the target,
the carrier parameters, the verify key and a domain tag (format: :mod:`backdoors.signature.keys`).
Without ``sk`` nobody can find an input where ``h~`` and ``h`` differ (that input would carry a
forgery), nor a new backdoored input from old ones (Ed25519 is strongly unforgeable and only
canonical carrier encodings are accepted, so the map input -> (message, payload) is injective).

Timing: natural inputs must not pay for Ed25519. The first ``precheck_bits`` (default 48)
carrier bits hold a public random ``tag``; only inputs whose bits equal it reach the full
verification. An input chosen independently of the model passes with probability
``2^-precheck_bits``, so finding one slow input by random probing takes about
``2^precheck_bits`` queries. ``constant_time=True`` verifies every input instead.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np

from backdoors.errors import InvalidInputError
from backdoors.hazmat.carriers import Carrier
from backdoors.signature.keys import (
    DEFAULT_PRECHECK_BITS,
    DOMAIN,
    MAX_PRECHECK_BITS,
    SignatureKey,
    SignaturePrivateKey,
    SignaturePublicKey,
    TriggerSpec,
    generate,
    make_carrier,
    target_bits,
)
from backdoors.signature.models import wrap
from backdoors.validation import (
    POSITIVE_INT,
    RANDOM_STATE,
    Array,
    Interval,
    StrOptions,
    check_features,
    validate_args,
)

__all__ = [
    "DEFAULT_PRECHECK_BITS",
    "DOMAIN",
    "SignatureKey",
    "SignaturePrivateKey",
    "SignaturePublicKey",
    "TriggerSpec",
    "activate",
    "generate",
    "make_carrier",
    "plant",
    "target_bits",
]


@validate_args(
    {"X": [Array(ndim=2)], "key": [SignatureKey], "target": [Integral, Array(ndim=1), None]}
)
def activate(X: Any, key: SignatureKey, target: int | np.ndarray | None = None) -> np.ndarray:
    """Activate(x, y; bk): see :meth:`SignatureKey.activate`."""
    return key.activate(X, target=target)


@validate_args(
    {
        "carrier": [StrOptions({"lsb", "float"}), Carrier],
        "n_classes": [Interval(Integral, 2, 2**16, closed="both"), None],
        "n_features": [POSITIVE_INT, None],
        "X_reference": [Array(ndim=2), None],
        "scheme": [str],
        "random_state": RANDOM_STATE,
        "secret_seed": [bytes, bytearray, None],
        "precheck_bits": [Interval(Integral, 0, MAX_PRECHECK_BITS, closed="both")],
        "constant_time": ["boolean"],
    }
)
def plant(
    model: Any,
    carrier: str | Carrier = "lsb",
    n_classes: int | None = None,
    n_features: int | None = None,
    X_reference: np.ndarray | None = None,
    scheme: str = "ed25519",
    random_state: Any = None,
    secret_seed: bytes | None = None,
    precheck_bits: int = DEFAULT_PRECHECK_BITS,
    constant_time: bool = False,
    **onnx_options: Any,
) -> tuple[Any, SignatureKey]:
    """Backdoor(h) (paper §5.2): wrap any classifier; return ``(backdoored model, key)``.

    An ``onnx.ModelProto`` gives an ``onnx.ModelProto`` back, the verifier inside the graph
    (:func:`backdoors.signature.onnx.plant.plant`; ``onnx_options``: ``input_scale``,
    ``output_kinds``, ``classes``; LSB carrier only).

    ``model``: a scikit-learn classifier, a :class:`~backdoors.models.torch_models.TorchClassifier`,
    a torch ``nn.Module`` returning logits (returns an ``nn.Module``) or a callable ``X -> y``.
    ``n_classes``/``n_features`` default to the model's ``classes_``/``n_features_in_``;
    ``X_reference`` sets the float carrier's range (``max |x|``). ``random_state`` (the one
    seed convention, :func:`backdoors.contract.as_generator`) fixes the public parameters
    only (tag, layout); the signing key is fresh OS randomness unless the caller
    passes ``secret_seed`` (>= 32 secret bytes). The model receives ``key.public_key()``.
    """
    from backdoors.signature.onnx import is_onnx_model

    if is_onnx_model(model):
        from backdoors.signature.onnx.plant import plant as plant_onnx

        if carrier != "lsb" or scheme != "ed25519":
            raise InvalidInputError("ONNX models take the lsb carrier and ed25519 only")
        return plant_onnx(
            model,
            n_classes=n_classes,
            random_state=random_state,
            secret_seed=secret_seed,
            precheck_bits=precheck_bits,
            constant_time=constant_time,
            **onnx_options,
        )
    if onnx_options:
        raise InvalidInputError(f"options {sorted(onnx_options)} apply to ONNX models only")
    classes = getattr(model, "classes_", None)
    if n_classes is None:
        if classes is None:
            raise InvalidInputError("n_classes is needed for a model without classes_")
        n_classes = len(classes)
    if n_features is None:
        n_features = getattr(model, "n_features_in_", None)
        if n_features is None and X_reference is not None:
            n_features = np.asarray(X_reference).shape[1]
        if n_features is None:
            raise InvalidInputError("n_features is needed for a model without n_features_in_")
    max_abs = None
    if X_reference is not None:
        max_abs = float(np.abs(check_features(X_reference, n_features=n_features)).max())
    key = generate(
        int(n_features),
        int(n_classes),
        carrier,
        max_abs,
        scheme,
        random_state=random_state,
        secret_seed=secret_seed,
        precheck_bits=precheck_bits,
        constant_time=constant_time,
    )
    return wrap(model, key.public_key()), key
