"""CLI: plant signature / activate / verify / predict on files; bad input fails in one line."""

from __future__ import annotations

import json
import stat

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from backdoors.artifacts import files as store
from backdoors.cli import main
from backdoors.models import data


@pytest.fixture()
def files(tmp_path):
    d = data.breast_cancer()
    store.save_sklearn(
        LogisticRegression(max_iter=5000).fit(d.X_train, d.y_train), tmp_path / "lr.skops"
    )
    store.save_array(tmp_path / "X.npy", d.X_test)
    store.save_array(tmp_path / "ref.npz", d.X_train, y=d.y_train)
    return tmp_path, d


def run(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_plant_activate_verify_predict(files, capsys):
    p, d = files
    code, out, err = run(
        capsys,
        "plant",
        "signature",
        p / "lr.skops",
        "--out",
        p / "bd.st",
        "--key",
        p / "bd.key",
        "--carrier",
        "float",
        "--reference",
        p / "ref.npz",
    )
    assert code == 0, err
    assert stat.S_IMODE((p / "bd.key").stat().st_mode) == 0o600
    assert (
        run(
            capsys,
            "activate",
            p / "bd.st",
            p / "bd.key",
            p / "X.npy",
            "--out",
            p / "Xa.npy",
            "--target",
            1,
        )[0]
        == 0
    )
    Xa = np.load(p / "Xa.npy")
    assert Xa.shape == d.X_test.shape and np.abs(Xa - d.X_test).max() < 1e-5
    code, out, _ = run(capsys, "verify", p / "bd.st", p / "Xa.npy")
    assert code == 0 and json.loads(out)["triggered"] == len(Xa)
    code, out, _ = run(capsys, "predict", p / "bd.st", p / "Xa.npy", "--out", p / "y.npy")
    assert code == 0 and (np.load(p / "y.npy") == 1).all()
    code, out, _ = run(capsys, "verify", p / "bd.st", p / "X.npy")
    assert json.loads(out)["triggered"] == 0


def test_bad_inputs_fail_in_one_line_and_write_nothing(files, capsys):
    p, d = files
    assert (
        run(
            capsys,
            "plant",
            "signature",
            p / "lr.skops",
            "--out",
            p / "bd.st",
            "--key",
            p / "bd.key",
            "--carrier",
            "float",
            "--reference",
            p / "ref.npz",
        )[0]
        == 0
    )
    assert (
        run(
            capsys,
            "plant",
            "signature",
            p / "lr.skops",
            "--out",
            p / "b2.st",
            "--key",
            p / "k2.key",
            "--carrier",
            "float",
            "--reference",
            p / "ref.npz",
        )[0]
        == 0
    )
    bad = d.X_test.copy()
    bad[0, 0] = np.nan
    store.save_array(p / "nan.npy", bad)
    store.save_array(p / "f32.npy", d.X_test.astype(np.float32))
    store.save_array(p / "wide.npy", np.zeros((3, 31)))
    (p / "trunc.st").write_bytes((p / "bd.st").read_bytes()[:200])
    cases = [
        (("activate", p / "bd.st", p / "bd.key", p / "nan.npy"), "NaN"),
        (("activate", p / "bd.st", p / "bd.key", p / "f32.npy"), "dtype"),
        (("activate", p / "bd.st", p / "bd.key", p / "wide.npy"), "features"),
        (("activate", p / "b2.st", p / "bd.key", p / "X.npy"), "does not belong"),
        (("activate", p / "trunc.st", p / "bd.key", p / "X.npy"), "truncated"),
        (("activate", p / "bd.st", p / "X.npy", p / "X.npy"), "key file"),
    ]
    for args, msg in cases:
        code, _, err = run(capsys, *args, "--out", p / "o.npy", "--target", 0)
        assert code == 2 and msg in err and err.count("\n") == 1, (args, err)
        assert not (p / "o.npy").exists()
    before = (p / "bd.key").read_bytes()
    code, _, err = run(
        capsys,
        "plant",
        "signature",
        p / "lr.skops",
        "--out",
        p / "x.st",
        "--key",
        p / "bd.key",
        "--carrier",
        "float",
    )
    assert code == 2 and "refusing" in err and (p / "bd.key").read_bytes() == before
    assert not (p / "x.st").exists()
