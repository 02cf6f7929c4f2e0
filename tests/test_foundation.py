"""Foundation: registry, io (atomic, 0600, integrity), data, metrics, CLI error mapping."""

from __future__ import annotations

import json
import stat

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from backdoors import metrics
from backdoors.artifacts import files
from backdoors.cli import main
from backdoors.errors import CorruptArtifactError, InvalidInputError
from backdoors.models import data
from backdoors.registry import Registry


def test_registry_rejects_unknown_and_duplicates():
    r: Registry = Registry("thing")
    r.register("a")(1)
    assert r.get("a") == 1 and "a" in r and r.names() == ["a"]
    with pytest.raises(InvalidInputError, match="unknown thing 'b'"):
        r.get("b")
    with pytest.raises(ValueError):
        r.register("a")(2)


def test_mnist_is_full_uint8_and_offline():
    ds = data.mnist()
    assert ds.X_train.shape == (60000, 784) and ds.X_test.shape == (10000, 784)
    assert ds.X_train.dtype == np.uint8 and ds.X_train.max() == 255
    assert np.bincount(ds.y_test).tolist()[:3] == [980, 1135, 1032]  # the canonical test split


def test_sklearn_sets_load():
    d = data.digits()
    b = data.breast_cancer()
    assert d.X_train.shape[1] == 64 and b.X_train.shape[1] == 30
    assert len(d.X_train) + len(d.X_test) == 1797


def test_auroc_matches_sklearn_and_ci_brackets():
    rng = np.random.default_rng(0)
    neg, pos = rng.normal(0, 1, 200), rng.normal(0.5, 1, 150)
    a, (lo, hi) = metrics.auroc_with_ci(neg, pos, n_boot=300)
    ref = roc_auc_score(np.r_[np.zeros(200), np.ones(150)], np.r_[neg, pos])
    assert a == pytest.approx(ref, abs=1e-12)
    assert lo < a < hi
    assert metrics.advantage(neg, pos) == pytest.approx(
        np.max(np.abs(metrics.roc_curve(neg, pos)[1] - metrics.roc_curve(neg, pos)[0]))
    )
    with pytest.raises(InvalidInputError):
        metrics.auroc([np.nan], [1.0])


@pytest.mark.parametrize("sizes", [(1, 1), (20, 20), (7, 300)])
def test_auroc_ci_scores_the_resamples_of_the_generic_bootstrap(sizes):
    """The batched AUROC bootstrap gives bit for bit the CI of the per-resample definition
    (bootstrap_ci over auroc), ties included, so records do not depend on which ran."""
    rng = np.random.default_rng(sum(sizes))
    neg = np.round(rng.normal(0, 1, sizes[0]), 1)
    pos = np.round(rng.normal(0.4, 1, sizes[1]), 1)
    for seed in (0, 5):
        a, ci = metrics.auroc_with_ci(neg, pos, n_boot=200, seed=seed)
        assert a == metrics.auroc(neg, pos)
        assert ci == metrics.bootstrap_ci(metrics.auroc, neg, pos, n_boot=200, seed=seed)


def test_atomic_write_leaves_no_partial_file(tmp_path):
    class BoomError(Exception):
        pass

    def bad_writer(p):
        p.write_bytes(b"half")
        raise BoomError

    target = tmp_path / "x.bin"
    target.write_bytes(b"old")
    with pytest.raises(BoomError):
        files.atomic_writer(target, bad_writer)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.bin"]


def test_torch_model_roundtrip_and_tamper_detection(tmp_path, mnist_small, mnist_mlp):
    X, clf = mnist_small.X_test, mnist_mlp
    path = files.save_model(clf, tmp_path / "m.safetensors")
    back = files.load_model(path)
    assert np.array_equal(back.decision_function(X), clf.decision_function(X))
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0xFF  # flip a weight byte
    (tmp_path / "t.safetensors").write_bytes(bytes(raw))
    with pytest.raises(CorruptArtifactError, match="integrity"):
        files.load_model(tmp_path / "t.safetensors")
    (tmp_path / "short.safetensors").write_bytes(bytes(raw[: len(raw) // 2]))
    with pytest.raises(CorruptArtifactError):
        files.load_model(tmp_path / "short.safetensors")


def test_skops_roundtrip_without_pickle(tmp_path):
    X = np.random.default_rng(0).normal(size=(60, 3))
    est = LogisticRegression().fit(X, X[:, 0] > 0)
    files.save_sklearn(est, tmp_path / "lr.skops")
    assert np.array_equal(files.load_model(tmp_path / "lr.skops").predict(X), est.predict(X))
    (tmp_path / "bad.skops").write_bytes(b"\x80\x04not a zip")
    with pytest.raises(CorruptArtifactError):
        files.load_model(tmp_path / "bad.skops")


def test_key_files_are_0600_and_not_overwritten(tmp_path):
    class DummyKey:
        key_kind = "dummy-test-key"

        def __init__(self, v):
            self.v = v

        def to_json_dict(self):
            return {"v": self.v}

        @classmethod
        def from_json_dict(cls, d):
            return cls(d["v"])

    with files.KEYS.override("dummy-test-key", DummyKey):
        p = files.save_key(DummyKey(3), tmp_path / "k.json")
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
        assert files.load_key(p).v == 3
        with pytest.raises(InvalidInputError, match="refusing"):
            files.save_key(DummyKey(4), p)
    assert "dummy-test-key" not in files.KEYS
    assert json.loads(p.read_text())["key"]["v"] == 3
    p.write_text("{ truncated")
    with pytest.raises(CorruptArtifactError):
        files.load_key(p)


def test_cli_maps_errors_to_one_line_exit_2(tmp_path, capsys):
    code = main(
        [
            "activate",
            str(tmp_path / "m"),
            str(tmp_path / "k"),
            str(tmp_path / "x.npy"),
            "--out",
            str(tmp_path / "o.npy"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "no such key file" in err
    assert not (tmp_path / "o.npy").exists()
    assert main(["experiment", "no-such-experiment"]) == 2


@pytest.mark.parametrize("func", ["os.system", "builtins.eval", "subprocess.call"])
def test_skops_refuses_untrusted_types(tmp_path, func):
    """A .skops file that references a function or type outside scikit-learn/numpy/scipy
    (here a FunctionTransformer calling os.system, eval or subprocess) is refused before
    anything is built, through files.load_model and inside a safetensors model alike."""
    import importlib

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    mod, name = func.rsplit(".", 1)
    X, y = np.random.default_rng(0).normal(size=(40, 3)), np.arange(40) % 2
    est = make_pipeline(
        FunctionTransformer(getattr(importlib.import_module(mod), name)), LogisticRegression()
    )
    raw = files.sklearn_to_bytes(est)  # serialising is fine; loading must refuse
    (tmp_path / "evil.skops").write_bytes(raw.tobytes())
    with pytest.raises(CorruptArtifactError, match="refusing to load types"):
        files.load_model(tmp_path / "evil.skops")
    with pytest.raises(CorruptArtifactError, match="refusing"):
        files.sklearn_from_bytes(raw)
    # the same estimator with a trusted function loads
    ok = make_pipeline(FunctionTransformer(np.log1p), LogisticRegression()).fit(np.abs(X), y)
    assert files.sklearn_from_bytes(files.sklearn_to_bytes(ok)).predict(np.abs(X)).shape == (40,)
