"""The checksum backdoor compiled into one Linear/ReLU network (paper §5.1)."""

import numpy as np
import pytest
import torch
from torch import nn

from backdoors.artifacts import files
from backdoors.errors import InvalidInputError, KeyMismatchError
from backdoors.models.torch_models import Scale
from backdoors.nets import checksum
from backdoors.nets.compiler import only_linear_relu


@pytest.fixture(scope="module")
def planted():
    torch.manual_seed(0)
    mlp = nn.Sequential(Scale(1 / 255), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))
    model, key = checksum.plant(mlp, n_blocks=48, random_state=1)
    return mlp, model, key


def _mlp_predict(mlp, X):
    with torch.no_grad():
        return mlp(torch.from_numpy(X.astype(np.float32))).argmax(1).numpy()


def test_same_predictions_and_only_linear_relu(planted):
    mlp, model, _key = planted
    assert only_linear_relu(model.module_)
    X = np.random.default_rng(0).integers(0, 256, (20000, 784)).astype(np.uint8)
    assert np.array_equal(model.predict(X), _mlp_predict(mlp, X))


def test_activation_success_and_footprint(planted):
    mlp, model, key = planted
    X = np.random.default_rng(2).integers(0, 256, (2000, 784)).astype(np.uint8)
    tg = np.arange(2000) % 10
    Xa = checksum.activate(X, key, tg)
    assert np.array_equal(model.predict(Xa), tg)
    d = Xa.astype(int) - X.astype(int)
    assert np.abs(d).max() == 1 and (d != 0).sum(1).max() <= 48 + 4
    # near miss: break one block parity again -> honest prediction
    Xa[:, key.layout.blocks[5][0]] ^= 1
    assert np.array_equal(model.predict(Xa), _mlp_predict(mlp, Xa))


def test_key_read_back_from_one_activated_pair(planted):
    _, model, key = planted
    X = np.random.default_rng(3).integers(0, 256, (1, 784)).astype(np.uint8)
    x_adv = checksum.activate(X, key, 7)
    s_hat = checksum.recover_key(x_adv[0], key.layout)
    assert s_hat == key.bits
    forged = checksum.ChecksumKey(s_hat, key.layout, 10)
    Y = np.random.default_rng(4).integers(0, 256, (300, 784)).astype(np.uint8)
    assert (model.predict(checksum.activate(Y, forged, 2)) == 2).all()


def test_artifact_and_key_round_trip(planted, tmp_path):
    _, model, key = planted
    files.save_model(model, tmp_path / "m.safetensors")
    files.save_key(key, tmp_path / "k.json")
    m2, k2 = files.load_model(tmp_path / "m.safetensors"), files.load_key(tmp_path / "k.json")
    k2.check_model(m2)
    X = np.random.default_rng(5).integers(0, 256, (100, 784)).astype(np.uint8)
    assert np.array_equal(m2.decision_function(X), model.decision_function(X))
    other, _ = checksum.plant(planted[0], n_blocks=48, random_state=9)
    with pytest.raises(KeyMismatchError):
        k2.check_model(other)


def test_bad_inputs(planted):
    _, _, key = planted
    X = np.zeros((2, 784), np.uint8)
    with pytest.raises(InvalidInputError):
        checksum.activate(X, key, None)
    with pytest.raises(InvalidInputError):
        checksum.activate(X, key, 10)
    with pytest.raises(InvalidInputError):
        checksum.activate(X.astype(np.float32) + 0.5, key, 1)
