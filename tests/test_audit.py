"""`backdoors audit`: three model formats, applicable detectors, reasons, no partial files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import population_toys as toys
from backdoors.artifacts import files
from backdoors.cli import main
from backdoors.errors import CorruptArtifactError, InvalidInputError
from backdoors.evaluation.audit import audit, load_any_model
from backdoors.models.torch_models import TorchClassifier


@pytest.fixture
def toy_registry(monkeypatch):
    toys.install(monkeypatch)
    with toys.key_kind():
        yield


@pytest.fixture
def members():
    a = toys.ToyPatchAttack()
    return a.build(0, False), a.build(0, True), a.build(1, False)


def _data(tmp_path, b, train=False):
    path = tmp_path / "data.npz"
    extra = {"X_train": b.X_train, "y_train": b.y_train} if train else {}
    np.savez(path, X=b.X_test, y=b.y_test, **extra)
    return path


def test_audit_skops_model_scores_and_lists_reasons(tmp_path, toy_registry, members, capsys):
    _, bd, ref = members
    files.save_sklearn(bd.model, tmp_path / "bd.skops")
    files.save_sklearn(ref.model, tmp_path / "ref.skops")
    data = _data(tmp_path, bd)
    out, js = tmp_path / "report", tmp_path / "audit.json"
    code = main(
        ["audit", str(tmp_path / "bd.skops"), "--data", str(data), "--reference",
         str(tmp_path / "ref.skops"), "--out", str(out), "--json", str(js)]
    )  # fmt: skip
    assert code == 0
    res = json.loads(js.read_text())
    rows = res["detectors"]
    assert rows["toy_weight"]["status"] == "scored"
    # the poisoned model leans on the trigger feature, the honest reference does not
    assert rows["toy_weight"]["score"] > 5 * rows["toy_weight"]["reference_score"]
    assert rows["toy_keyaware"]["status"] == "not_applicable"
    assert "needs key" in rows["toy_keyaware"]["reason"]
    assert "needs training_data" in rows["toy_traindata"]["reason"]
    assert rows["toy_broken"]["status"] == "error" and "boom" in rows["toy_broken"]["reason"]
    assert rows["toy_filter"]["per_input"]["n"] == len(bd.X_test)
    assert res["counts"] == {"scored": 2, "not_applicable": 2, "error": 1}
    md = (out / "report.md").read_text()
    assert "did not apply" in md and "toy_keyaware" in md and "architecture_inspection" in md
    assert (out / "report.html").is_file()
    printed = json.loads(capsys.readouterr().out)
    assert printed["detectors"]["toy_weight"] == pytest.approx(rows["toy_weight"]["score"])


def test_audit_with_training_data_applies_more_detectors(tmp_path, toy_registry, members):
    honest, bd, _ = members
    res_bd = audit(bd.model, bd.X_test, bd.y_test, bd.X_train, bd.y_train)
    res_h = audit(honest.model, honest.X_test, honest.y_test, honest.X_train, honest.y_train)
    assert res_bd["detectors"]["toy_traindata"]["score"] == pytest.approx(0.2)
    assert res_h["detectors"]["toy_traindata"]["score"] == 0.0


def _torch_net(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (300, 16), dtype=np.uint8)
    y = (X[:, 0] > 127).astype(np.int64)
    clf = TorchClassifier(arch_params={"hidden": (8,)}, input_scale=1 / 255, epochs=2).fit(X, y)
    save_file(
        {k: v.contiguous() for k, v in clf.module_.state_dict().items()},
        tmp_path / "net.safetensors",
    )
    spec = {"arch": "mlp", "n_features": 16, "n_classes": 2, "params": {"hidden": [8]},
            "input_scale": 1 / 255}  # fmt: skip
    return clf, X, spec


def test_torch_state_dict_plus_spec_and_package_models(tmp_path, toy_registry):
    clf, X, spec = _torch_net(tmp_path)
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    m = load_any_model(tmp_path / "net.safetensors", tmp_path / "spec.json")
    np.testing.assert_array_equal(m.decision_function(X), clf.decision_function(X))
    # the spec beside the weights is found without --arch
    (tmp_path / "net.json").write_text(json.dumps(spec))
    m2 = load_any_model(tmp_path / "net.safetensors")
    np.testing.assert_array_equal(m2.predict(X), clf.predict(X))
    # a model file of this package loads as itself
    files.save_model(clf, tmp_path / "pkg.safetensors")
    np.testing.assert_array_equal(
        load_any_model(tmp_path / "pkg.safetensors").predict(X), clf.predict(X)
    )
    np.savez(tmp_path / "d.npz", X=X)
    assert (
        main(["audit", str(tmp_path / "net.safetensors"), "--data", str(tmp_path / "d.npz")]) == 0
    )


def test_bad_inputs_fail_cleanly_without_partial_files(tmp_path, toy_registry, members, capsys):
    _, bd, _ = members
    clf, _, spec = _torch_net(tmp_path)
    bad = dict(spec, params={"hidden": [9]})
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(InvalidInputError, match="do not fit"):
        load_any_model(tmp_path / "net.safetensors", tmp_path / "bad.json")
    with pytest.raises(InvalidInputError, match="--arch"):
        load_any_model(tmp_path / "net.safetensors")
    with pytest.raises(InvalidInputError, match="unknown architecture"):
        load_any_model(
            tmp_path / "net.safetensors", _write(tmp_path / "u.json", dict(spec, arch="x"))
        )
    torch.save(clf.module_.state_dict(), tmp_path / "net.pt")
    with pytest.raises(CorruptArtifactError, match="refused"):
        load_any_model(tmp_path / "net.pt")
    files.save_sklearn(bd.model, tmp_path / "m.skops")
    np.savez(tmp_path / "noX.npz", A=bd.X_test)
    np.savez(tmp_path / "mismatch.npz", X=bd.X_test, y=bd.y_test[:-1])
    np.savez(tmp_path / "wrongwidth.npz", X=bd.X_test[:, :3])
    js, out = tmp_path / "r.json", tmp_path / "rep"
    for data in ("noX.npz", "mismatch.npz", "wrongwidth.npz", "missing.npz"):
        capsys.readouterr()
        argv = ["audit", str(tmp_path / "m.skops"), "--data", str(tmp_path / data)]
        assert main([*argv, "--json", str(js), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("backdoors: error:") and "\n" not in err
    assert not js.exists() and not out.exists()
    np.savez(tmp_path / "ok.npz", X=bd.X_test)
    argv = ["audit", str(tmp_path / "m.skops"), "--data", str(tmp_path / "ok.npz")]
    assert main([*argv, "--json", str(tmp_path / "nofolder" / "r.json")]) == 2


def _write(path, obj):
    path.write_text(json.dumps(obj))
    return path
