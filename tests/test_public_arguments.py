"""Every public function refuses a wrong-type, wrong-dtype or wrong-length argument with a
package error (a BackdoorsError), never numpy's or Python's own exception."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from backdoors import badnets, relu, rff, signature
from backdoors.artifacts import files
from backdoors.errors import BackdoorsError
from backdoors.models import data
from backdoors.nets import checksum

BAD = {
    "None": None,
    "str": "abc",
    "bytes": b"x",
    "dict": {},
    "ragged list": [[1, 2], [3]],
    "1-D array": np.zeros(5),
    "wrong width": np.zeros((5, 3), np.uint8),
    "complex array": np.zeros((5, 64), complex),
    "object array": np.array([[object()] * 64] * 5, dtype=object),
    "NaN array": np.full((5, 64), np.nan),
    "negative int": -1,
    "float": 1.5,
    "complex": 3 + 2j,
    "two targets for five rows": np.array([1, 2]),
    "float targets": np.zeros(5),
}


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    d = data.digits()
    X, y = d.X_train[:40], d.y_train[:40]
    lr = LogisticRegression(max_iter=50).fit(X, y)
    sbd, skey = signature.plant(lr, carrier="float", X_reference=X, random_state=0)
    _, rkey = rff.plant(None, X, y)
    _, lkey = relu.plant(None, X, y % 2)
    return X, y, sbd, skey, rkey, lkey, tmp_path_factory.mktemp("args")


CALLS = {
    "signature.activate X": lambda c, b: signature.activate(b, c[3], target=1),
    "signature.activate key": lambda c, b: signature.activate(c[0][:5], b, target=1),
    "signature.activate target": lambda c, b: signature.activate(c[0][:5], c[3], target=b),
    "signature.plant model": lambda c, b: signature.plant(b, n_classes=10, n_features=64),
    "signature.plant n_classes": lambda c, b: signature.plant(c[2].base, n_classes=b),
    "signature.plant n_features": lambda c, b: signature.plant(
        lambda X: X, n_classes=3, n_features=b
    ),
    "signature.plant carrier": lambda c, b: signature.plant(c[2].base, carrier=b),
    "signature.plant random_state": lambda c, b: signature.plant(c[2].base, random_state=b),
    "signature.plant precheck_bits": lambda c, b: signature.plant(c[2].base, precheck_bits=b),
    "signature.plant X_reference": lambda c, b: signature.plant(
        c[2].base, carrier="float", X_reference=b
    ),
    "signature.plant secret_seed": lambda c, b: signature.plant(c[2].base, secret_seed=b),
    "TriggerSpec.verify": lambda c, b: c[3].spec.verify(b),
    "backdoored verify": lambda c, b: c[2].verify(b),
    "rff.activate X": lambda c, b: rff.activate(b, c[4]),
    "rff.activate key": lambda c, b: rff.activate(c[0][:5], b),
    "rff.activate target": lambda c, b: rff.activate(c[0][:5], c[4], target=b),
    "rff.plant estimator": lambda c, b: rff.plant(b, c[0], c[1]),
    "rff.plant X": lambda c, b: rff.plant(None, b, c[1]),
    "rff.plant y": lambda c, b: rff.plant(None, c[0], b),
    "rff.plant sparsity": lambda c, b: rff.plant(None, c[0], c[1], sparsity=b),
    "rff.plant gamma": lambda c, b: rff.plant(None, c[0], c[1], gamma=b),
    "relu.activate X": lambda c, b: relu.activate(b, c[5]),
    "relu.activate key": lambda c, b: relu.activate(c[0][:5], b),
    "relu.plant X": lambda c, b: relu.plant(None, b, c[1] % 2),
    "relu.plant y": lambda c, b: relu.plant(None, c[0], b),
    "relu.plant sparsity": lambda c, b: relu.plant(None, c[0], c[1] % 2, sparsity=b),
    "relu.plant theta": lambda c, b: relu.plant(None, c[0], c[1] % 2, theta=b),
    "relu.plant lam": lambda c, b: relu.plant(None, c[0], c[1] % 2, lam=b),
    "badnets.activate key": lambda c, b: badnets.activate(c[0][:5], b),
    "badnets.plant X": lambda c, b: badnets.plant(b, c[1]),
    "badnets.plant y": lambda c, b: badnets.plant(np.zeros((40, 64), np.uint8), b),
    "badnets.plant poison_rate": lambda c, b: badnets.plant(c[0], c[1], poison_rate=b),
    "checksum.activate key": lambda c, b: checksum.activate(c[0][:5], b, target=1),
    "checksum.plant n_blocks": lambda c, b: checksum.plant(None, n_blocks=b),
    "files.save_model model": lambda c, b: files.save_model(b, c[6] / "m.st"),
    "files.save_model path": lambda c, b: files.save_model(c[2], b),
    "files.load_model path": lambda c, b: files.load_model(b),
    "files.save_key key": lambda c, b: files.save_key(b, c[6] / "k.key", overwrite=True),
    "files.load_key path": lambda c, b: files.load_key(b),
    "files.save_array X": lambda c, b: files.save_array(c[6] / "x.npy", b),
    "files.load_array path": lambda c, b: files.load_array(b),
}


@pytest.mark.parametrize("call", list(CALLS))
def test_wrong_arguments_raise_package_errors(ctx, call, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a str argument is a valid file name: write nothing here
    for name, bad in BAD.items():
        try:
            CALLS[call](ctx, bad)
        except BackdoorsError:
            continue
        except Exception as e:
            pytest.fail(f"{call}({name}) raised {type(e).__name__}: {e}")


def test_activate_names_the_wrong_length_target(ctx):
    X, _, _, skey, *_ = ctx
    with pytest.raises(BackdoorsError, match="target must be an integer or 5 integers"):
        signature.activate(X[:5], skey, target=np.array([1, 2]))
