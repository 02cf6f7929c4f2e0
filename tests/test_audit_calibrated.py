"""Calibrated audit verdicts (p-values among honest references, Holm) and the pipeline outputs:
the --json document against the shipped JSON Schema, --sarif against the OASIS SARIF 2.1.0
schema, and the exit codes of --fail-on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import numpy as np
import pytest

import population_toys as toys
from backdoors.artifacts import files
from backdoors.cli import main
from backdoors.evaluation import calibration
from backdoors.evaluation.audit_output import EXIT_FINDINGS, json_schema

SARIF_SCHEMA = Path(__file__).parent / "data" / "sarif-schema-2.1.0.json"


def test_p_value_and_percentile_count_ties_against_the_model():
    ref = [1.0, 2.0, 3.0, 3.0]
    assert calibration.p_value(3.0, ref) == pytest.approx(3 / 5)
    assert calibration.p_value(9.0, ref) == pytest.approx(1 / 5)
    assert calibration.percentile(3.0, ref) == pytest.approx(50.0)
    assert calibration.percentile(0.0, ref) == 0.0


def test_conformal_p_value_is_uniform_under_exchangeability():
    rng = np.random.default_rng(0)
    n = 9
    ps = [calibration.p_value(s[0], s[1:]) for s in rng.normal(size=(4000, n + 1))]
    # P[p <= j / (n + 1)] = j / (n + 1) for exchangeable continuous scores
    for j in (1, 3, 5):
        assert np.mean(np.asarray(ps) <= j / (n + 1)) == pytest.approx(j / (n + 1), abs=0.025)


def test_holm_steps_down_and_stops_at_the_first_failure():
    p = {"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.5}
    # thresholds 0.05/4, 0.05/3, 0.05/2, 0.05: a passes, c (0.03 > 0.0167) stops the procedure
    assert calibration.holm(p, 0.05) == {"a": True, "c": False, "b": False, "d": False}
    assert calibration.holm({"a": 0.01, "b": 0.02}, 0.05) == {"a": True, "b": True}


def test_threshold_is_the_score_that_rejects_alone():
    ref = list(range(1, 40))  # 39 references
    assert calibration.threshold(ref, 1, 0.05) == 38.0  # p <= 0.05 allows one ref >= score
    assert calibration.threshold(ref, 2, 0.05) == 39.0  # p <= 0.025: above every reference
    assert calibration.threshold(ref[:19], 2, 0.05) is None
    t = calibration.threshold(ref, 1, 0.05)
    assert calibration.p_value(t + 0.5, ref) <= 0.05 < calibration.p_value(t, ref)


def test_verdicts_and_the_number_of_references_they_need():
    assert calibration.min_references(1, 0.05) == 19
    assert calibration.min_references(3, 0.05) == 59
    v = calibration.verdict({"a": 1 / 20}, 19, 0.05)
    assert v.verdict == calibration.SUSPICIOUS and v.rejected == ("a",)
    assert calibration.verdict({"a": 0.5}, 19, 0.05).verdict == calibration.NO_EVIDENCE
    v = calibration.verdict({"a": 1 / 11, "b": 0.5}, 10, 0.05)
    assert v.verdict == calibration.INCONCLUSIVE and "39 references are needed" in v.reason
    assert calibration.verdict({}, 10).verdict == calibration.INCONCLUSIVE


# ---------------------------------------------------------------------------------------------
@pytest.fixture
def toy_files(tmp_path, monkeypatch):
    toys.install(monkeypatch)
    a = toys.ToyPatchAttack()
    refs = tmp_path / "refs"
    refs.mkdir()
    for s in range(1, 20):  # 19 honest references: 1/20 reaches alpha = 0.05 for one detector
        files.save_sklearn(a.build(s, False).model, refs / f"ref{s:02d}.skops")
    honest, bd = a.build(0, False), a.build(0, True)
    files.save_sklearn(honest.model, tmp_path / "honest.skops")
    files.save_sklearn(bd.model, tmp_path / "bd.skops")
    np.savez(tmp_path / "data.npz", X=bd.X_test, y=bd.y_test,
             X_train=honest.X_train, y_train=honest.y_train)  # fmt: skip
    return tmp_path


def _audit(d, model, *extra):
    js, sarif = d / f"{model}.json", d / f"{model}.sarif"
    for p in (js, sarif):
        p.unlink(missing_ok=True)
    argv = ["audit", str(d / f"{model}.skops"), "--data", str(d / "data.npz"),
            "--detectors", "toy_weight,toy_keyaware", "--json", str(js), "--sarif", str(sarif),
            *extra]  # fmt: skip
    code = main(argv)
    return code, json.loads(js.read_text()), json.loads(sarif.read_text())


def _valid(doc, sarif):
    jsonschema.Draft202012Validator(json_schema()).validate(doc)
    jsonschema.Draft4Validator(json.loads(SARIF_SCHEMA.read_text())).validate(sarif)


def test_backdoored_model_is_suspicious_with_valid_json_and_sarif(toy_files, capsys):
    d = toy_files
    code, doc, sarif = _audit(d, "bd", "--reference", str(d / "refs"), "--fail-on", "suspicious")
    _valid(doc, sarif)
    assert code == EXIT_FINDINGS == doc["exit_code"]
    row = doc["detectors"]["toy_weight"]
    assert row["p_value"] == pytest.approx(1 / 20) and row["reference_percentile"] == 100.0
    assert doc["verdict"]["verdict"] == "suspicious" and doc["verdict"]["rejected"] == [
        "toy_weight"
    ]
    assert doc["detectors"]["toy_keyaware"]["applicable"] is False
    assert doc["model"]["sha256"] == __import__("hashlib").sha256(
        (d / "bd.skops").read_bytes()).hexdigest()  # fmt: skip
    assert doc["model"]["format"] == "skops" and doc["references"]["n"] == 19
    run = sarif["runs"][0]
    assert run["artifacts"][0]["hashes"]["sha-256"] == doc["model"]["sha256"]
    levels = {r["ruleId"]: r["level"] for r in run["results"]}
    assert levels["backdoors/toy_weight"] == "error" and levels["backdoors/verdict"] == "error"
    assert levels["backdoors/toy_keyaware"] == "none"
    rule_ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert "backdoors/toy_weight" in rule_ids and len(set(rule_ids)) == len(rule_ids)


def test_honest_model_passes_and_too_few_references_are_inconclusive(toy_files, capsys):
    d = toy_files
    code, doc, sarif = _audit(d, "honest", "--reference", str(d / "refs"), "--fail-on",
                              "inconclusive")  # fmt: skip
    _valid(doc, sarif)
    assert doc["verdict"]["verdict"] == "no evidence at level alpha" and code == 0
    kinds = {r["ruleId"]: (r.get("kind", "fail"), r["level"]) for r in sarif["runs"][0]["results"]}
    assert kinds["backdoors/verdict"] == kinds["backdoors/toy_weight"] == ("pass", "none")
    few = [str(p) for p in sorted((d / "refs").iterdir())[:5]]
    args = [a for p in few for a in ("--reference", p)]
    code, doc, sarif = _audit(d, "bd", *args, "--fail-on", "suspicious")
    _valid(doc, sarif)
    assert doc["verdict"]["verdict"] == "inconclusive" and code == 0  # not at level suspicious
    code, doc, _ = _audit(d, "bd", *args, "--fail-on", "inconclusive")
    assert code == EXIT_FINDINGS


def test_calibrate_trains_references_from_the_training_data(toy_files, capsys):
    d = toy_files
    code, doc, sarif = _audit(d, "bd", "--calibrate", "19", "--fail-on", "suspicious")
    _valid(doc, sarif)
    refs = doc["references"]
    assert (refs["n"], refs["paths"], refs["trained"]) == (19, [], 19)
    assert refs["recipe"]["C"] == 1.0  # the LogisticRegression's own hyper-parameters
    assert len(doc["detectors"]["toy_weight"]["reference_scores"]) == 19
    assert doc["verdict"]["verdict"] == "suspicious" and code == EXIT_FINDINGS


def test_user_errors_exit_2(toy_files, capsys):
    d = toy_files
    assert main(["audit", str(d / "bd.skops"), "--data", str(d / "data.npz"),
                 "--detectors", "nope"]) == 2  # fmt: skip
    assert "unknown ['nope']" in capsys.readouterr().err
    assert main(["audit", str(d / "bd.skops"), "--data", str(d / "data.npz"),
                 "--reference", str(d / "missing")]) == 2  # fmt: skip


# ---------------------------------------------------------------------------------------------
def _ec_keys(d):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    k = ec.generate_private_key(ec.SECP256R1())
    (d / "trainer.pem").write_bytes(k.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))  # fmt: skip
    (d / "trainer.pub.pem").write_bytes(k.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip
    return d / "trainer.pem", d / "trainer.pub.pem"


def test_a_malicious_trainer_signs_its_own_backdoor(toy_files, capsys):
    """model-signing (OpenSSF) bundle, keys made here: the signature is valid (it proves who
    published the file) and, separately, the detectors call the model suspicious."""
    model_signing = pytest.importorskip("model_signing")
    d = toy_files
    priv, pub = _ec_keys(d)
    model_signing.signing.Config().use_elliptic_key_signer(private_key=str(priv)).sign(
        d / "bd.skops", d / "bd.skops.sig")  # fmt: skip
    code, doc, sarif = _audit(d, "bd", "--reference", str(d / "refs"), "--signing-key", str(pub))
    _valid(doc, sarif)
    (prov,) = doc["provenance"]
    assert prov["kind"] == "model-signing" and prov["valid"] is True
    assert prov["signer"].startswith("ecdsa-sha256:") and "not that it is clean" in prov["message"]
    assert doc["verdict"]["verdict"] == "suspicious"
    # a renamed copy with its bundle: the bytes verify, the signed name does not match
    for suffix in ("", ".sig"):
        shutil.copy(d / f"bd.skops{suffix}", d / f"renamed.skops{suffix}")
    _, doc, _ = _audit(d, "renamed", "--reference", str(d / "refs"), "--signing-key", str(pub))
    assert doc["provenance"][0]["valid"] is False and "NOT this file's name" in (
        doc["provenance"][0]["message"])  # fmt: skip
    # a changed file fails the check, and --fail-on suspicious counts it
    (d / "bd.skops").write_bytes((d / "bd.skops").read_bytes() + b" ")
    code, doc, _ = _audit(d, "bd", "--signing-key", str(pub), "--fail-on", "suspicious")
    assert doc["provenance"][0]["valid"] is False and code == EXIT_FINDINGS
    assert doc["verdict"]["verdict"] == "inconclusive"  # no references: the verdict abstains


def test_publisher_signature_in_the_audit(toy_files, capsys):
    d = toy_files
    assert main(["keygen", "-o", str(d / "pub.key")]) == 0
    assert main(["sign", str(d / "honest.skops"), "--publisher-key", str(d / "pub.key")]) == 0
    _, doc, _ = _audit(d, "honest", "--publisher", str(d / "pub.pub"))
    (prov,) = doc["provenance"]
    assert prov["valid"] is True and "name and bytes (v2)" in prov["message"]
    shutil.copy(d / "honest.skops.sig", d / "bd.skops.sig")  # another file's signature
    code, doc, sarif = _audit(d, "bd", "--publisher", str(d / "pub.pub"), "--fail-on",
                              "suspicious")  # fmt: skip
    _valid(doc, sarif)
    assert doc["provenance"][0]["valid"] is False and code == EXIT_FINDINGS
    levels = [r["level"] for r in sarif["runs"][0]["results"] if r["ruleId"].endswith("provenance")]
    assert levels == ["error"]


@pytest.mark.slow  # ~10 s: four torch trainings
def test_calibrate_a_state_dict_with_its_training_recipe(tmp_path, capsys):
    """A spec'd torch state dict: --calibrate retrains the architecture with the spec's
    'train' recipe and other seeds (three different honest references)."""
    import torch
    from safetensors.torch import save_file
    from sklearn.datasets import load_digits

    from backdoors.models.torch_models import TorchClassifier

    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float32)
    spec = {"arch": "mlp", "n_features": 64, "n_classes": 10, "params": {"hidden": [16]},
            "input_scale": 1 / 16, "train": {"epochs": 3, "lr": 0.01}}  # fmt: skip
    est = TorchClassifier(arch_params={"hidden": (16,)}, input_scale=1 / 16, epochs=3, lr=0.01)
    est.fit(X[:1200], y[:1200])
    state = {k: v.contiguous() for k, v in est.module_.state_dict().items()}
    save_file(state, tmp_path / "net.safetensors")
    (tmp_path / "net.json").write_text(json.dumps(spec))
    np.savez(tmp_path / "d.npz", X=X[1200:], y=y[1200:], X_train=X[:1200], y_train=y[:1200])
    js = tmp_path / "a.json"
    argv = ["audit", str(tmp_path / "net.safetensors"), "--data", str(tmp_path / "d.npz"),
            "--calibrate", "3", "--detectors", "weight_stats", "--json", str(js)]  # fmt: skip
    assert main(argv) == 0
    doc = json.loads(js.read_text())
    jsonschema.Draft202012Validator(json_schema()).validate(doc)
    assert doc["references"]["recipe"]["epochs"] == 3 and doc["references"]["trained"] == 3
    row = doc["detectors"]["weight_stats"]
    assert len(row["reference_scores"]) == 3 and row["p_value"] is not None
    assert len(set(row["reference_scores"]) | {row["score"]}) == 4  # four different networks
    assert torch.is_tensor(next(iter(state.values())))


def test_a_reference_identical_to_the_model_scores_exactly_what_the_model_scores():
    """References are scored with the evidence the audited model gets (one policy): with more
    rows than the policy's queries, a reference that IS the model has the model's score."""
    from sklearn.linear_model import LogisticRegression

    from backdoors.detectors import DETECTORS
    from backdoors.evaluation.audit import audit
    from backdoors.evaluation.audit_references import reference_scores
    from backdoors.models import data

    d = data.digits()
    X, y = d.X_test[:350], d.y_test[:350]
    X = np.concatenate([X, d.X_train[:450]])  # 800 rows: more than the 500 queries
    y = np.concatenate([y, d.y_train[:450]])
    model = LogisticRegression(max_iter=300).fit(d.X_train, d.y_train)
    other = LogisticRegression(max_iter=300, C=0.01).fit(d.X_train, d.y_train)
    dets = [DETECTORS.get("strip")()]  # its score averages over every query row
    res = audit(model, X, y, detectors=dets, seed=0)
    scores = reference_scores(dets, [model, other], {"X": X, "y": y}, seed=0)
    assert scores["strip"][0] == res["detectors"]["strip"]["score"]
