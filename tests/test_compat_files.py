"""Model and key files written by backdoors 0.2.0 (before the folder tree) still load and
answer as they did: ``tests/data/v0_2_0`` was written by the 0.2.0 code, with the predictions
it gave (``expected.json``)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from backdoors.artifacts import files
from backdoors.errors import KeyMismatchError

OLD = Path(__file__).parent / "data" / "v0_2_0"
EXPECTED = json.loads((OLD / "expected.json").read_text())["predictions"]


def _inputs(name: str) -> np.ndarray:
    return np.load(OLD / ("badnets_inputs.npy" if name == "badnets" else "inputs.npy"))


@pytest.mark.parametrize("name", ["signature", "rff", "relu", "badnets", "rff_honest"])
def test_old_model_files_load_and_predict_as_written(name):
    model = files.load_model(OLD / f"{name}.safetensors")
    assert model.predict(_inputs(name)).tolist() == EXPECTED[name]


@pytest.mark.parametrize("name", ["signature", "rff", "relu", "badnets"])
def test_old_key_files_load_and_belong_to_their_model(name, tmp_path):
    key_path = tmp_path / f"{name}.key"  # git does not keep 0600; the copy is private again
    key_path.write_bytes((OLD / f"{name}.key").read_bytes())
    key_path.chmod(0o600)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        key = files.load_key(key_path)
    model = files.load_model(OLD / f"{name}.safetensors")
    key.check_model(model)  # the key still names its model
    other = files.load_model(
        OLD / ("rff_honest.safetensors" if name != "rff" else "relu.safetensors")
    )
    with pytest.raises(KeyMismatchError):
        key.check_model(other)


def test_old_signature_trigger_still_fires():
    model = files.load_model(OLD / "signature.safetensors")
    assert model.predict(np.load(OLD / "signature_triggered.npy")).tolist() == [3] * 20
    assert EXPECTED["signature_triggered"] == [3] * 20
