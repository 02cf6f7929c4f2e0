"""The command line under bad options, bad architecture specs and interruption: one line on
stderr and exit 2 for a value outside an option's declared constraints; 130 on SIGINT and
143 on SIGTERM with one line and no temporary files left."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from backdoors.cli import main


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "args",
    [
        ["demo", "--seed", "-1"],
        ["experiment", "signature", "--quick", "--seed", "-1"],
        ["plant", "rff", "d.npz", "--out", "m.st", "--key", "k.key", "--seed", "-1"],
        ["train", "rff", "d.npz", "--out", "m.st", "--seed", "-1"],
        ["audit", "m.st", "--data", "d.npz", "--seed", "-1"],
        ["population", "rff", "--jobs", "0"],
        ["plant", "badnets", "d.npz", "--out", "m.st", "--key", "k.key", "--poison-rate", "2"],
    ],
)
def test_out_of_range_options_are_one_line_user_errors(capsys, tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *args)
    assert code == 2, err
    assert err.startswith("backdoors: error: --") and err.count("\n") == 1, err
    assert "Traceback" not in err and not list(tmp_path.iterdir())  # refused before any work


@pytest.mark.parametrize(
    "params",
    [
        {"arch": "mlp", "params": {"hidden": ["64"]}},
        {"arch": "mlp", "params": {"hidden": [-8]}},
        {"arch": "cnn", "params": {"channels": [4, 8, 16]}},
        {"arch": "cnn", "params": {"channels": [0, 8]}},
    ],
)
def test_bad_architecture_specs_are_one_line_user_errors(capsys, tmp_path, params):
    net = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    save_file(net.state_dict(), str(tmp_path / "net.st"))
    spec = {"n_features": 16, "n_classes": 3, **params}
    (tmp_path / "net.json").write_text(json.dumps(spec))
    np.savez(tmp_path / "d.npz", X=np.zeros((4, 16)))
    code, _, err = run(capsys, "audit", tmp_path / "net.st", "--data", tmp_path / "d.npz")
    assert code == 2, err
    assert err.startswith("backdoors: error:") and err.count("\n") == 1, err


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_run_exits_nonzero_with_one_line_and_no_temporary_files(tmp_path, sig, code):
    cmd = [sys.executable, "-c", "import sys; from backdoors.cli import main; main()"]
    proc = subprocess.Popen(
        [*cmd, "experiment", "signature", "--quick", "--json", "s.json"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not any(p.name.endswith(".tmp") for p in tmp_path.iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert err.strip().count("\n") == 0 and err.startswith("backdoors: "), err
    assert not list(tmp_path.iterdir())  # nothing written, nothing left behind
