"""Digest = integrity only; publisher signatures = authenticity (artifacts)."""

from __future__ import annotations

import json
import shutil

import pytest
from safetensors.numpy import save
from sklearn.linear_model import LogisticRegression

from backdoors import signature
from backdoors.artifacts import files, provenance
from backdoors.cli import main
from backdoors.errors import CorruptArtifactError
from backdoors.models import data


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    p = tmp_path_factory.mktemp("prov")
    d = data.breast_cancer()
    lr = LogisticRegression(max_iter=5000).fit(d.X_train, d.y_train)
    bd, key = signature.plant(lr, carrier="float", X_reference=d.X_train)
    files.save_model(bd, p / "bd.st")
    files.save_key(key, p / "bd.key")
    files.save_array(p / "X.npy", d.X_test[:10])
    assert main(["keygen", "-o", str(p / "pub.key")]) == 0
    assert main(["sign", str(p / "bd.st"), "--publisher-key", str(p / "pub.key")]) == 0
    return p


def _swap_verify_key(src, dst):
    """The attack of the issue: swap the verify key, recompute the digest, keep the format."""
    kind, tensors, meta = files.read_artifact(src)
    _, vk = provenance.Ed25519.generate()
    meta["spec"]["verify_key"] = vk.hex()
    meta_json = json.dumps(meta, sort_keys=True)
    header = {"backdoors.format": files.FORMAT_VERSION, "backdoors.kind": kind,
              "backdoors.meta": meta_json,
              "backdoors.digest": files._digest(kind, meta_json, tensors)}  # fmt: skip
    dst.write_bytes(save(tensors, metadata=header))


def test_digest_is_integrity_not_authenticity(signed):
    evil = signed / "evil.st"
    _swap_verify_key(signed / "bd.st", evil)
    model = files.load_model(evil)  # a recomputed digest passes: the README says so
    assert model.spec.verify_key != files.load_model(signed / "bd.st").spec.verify_key
    shutil.copy(signed / "bd.st.sig", signed / "evil.st.sig")
    pk = provenance.load_publisher(signed / "pub.pub")
    with pytest.raises(CorruptArtifactError, match=r"for a file named 'bd\.st'"):
        files.load_model(evil, publisher=pk)
    sk = provenance.load_publisher(signed / "pub.key")  # even signed under its own name
    (signed / "evil.st.sig").write_bytes(
        provenance.sign_file_bytes((signed / "bd.st").read_bytes(), "evil.st", sk))  # fmt: skip
    with pytest.raises(CorruptArtifactError, match="changed since it was signed"):
        files.load_model(evil, publisher=pk)
    assert files.load_model(signed / "bd.st", publisher=pk).spec.verify_key  # genuine file loads


def test_cli_publisher_option(signed, tmp_path, capsys):
    p = signed
    ok = ["predict", str(p / "bd.st"), str(p / "X.npy"), "--publisher", str(p / "pub.pub")]
    assert main(ok) == 0
    assert main(["keygen", "-o", str(tmp_path / "other.key")]) == 0
    capsys.readouterr()
    wrong = [*ok[:-1], str(tmp_path / "other.pub")]
    assert main(wrong) == 2
    assert "not signed by this publisher" in capsys.readouterr().err
    unsigned = tmp_path / "copy.st"
    shutil.copy(p / "bd.st", unsigned)
    assert main(["verify", str(unsigned), str(p / "X.npy"), "--publisher", str(p / "pub.pub")])
    assert "no publisher signature" in capsys.readouterr().err
    flipped = bytearray((p / "bd.st").read_bytes())
    flipped[-1] ^= 1
    (tmp_path / "flip.st").write_bytes(bytes(flipped))
    shutil.copy(p / "bd.st.sig", tmp_path / "flip.st.sig")
    assert main(["verify", str(tmp_path / "flip.st"), str(p / "X.npy"), "--publisher",
                 str(p / "pub.pub")]) == 2  # fmt: skip


def test_keys_files_and_signing_needs_the_secret(signed, tmp_path):
    import stat

    assert stat.S_IMODE((signed / "pub.key").stat().st_mode) == 0o600
    pub = provenance.load_publisher(signed / "pub.pub")
    assert pub.secret_key is None and "secret=False" in repr(pub)
    with pytest.raises(Exception, match="secret key"):
        provenance.sign_bytes(b"x", pub)
    sk = provenance.load_publisher(signed / "pub.key")
    assert sk.secret_key.hex() not in repr(sk)
    sig = provenance.sign_bytes(b"model bytes", sk)
    provenance.verify_bytes(b"model bytes", sig, pub)
    with pytest.raises(CorruptArtifactError):
        provenance.verify_bytes(b"model bytez", sig, pub)


def test_signature_binds_the_file_name(signed, tmp_path):
    """Two models signed by one publisher: the second, copied with its .sig over the first's
    name, is refused (v2 signs name + SHA-256); a v1 signature proves only the bytes."""
    p = signed
    d = data.breast_cancer()
    other = LogisticRegression(max_iter=5000, C=0.01).fit(d.X_train, d.y_train)
    files.save_sklearn(other, tmp_path / "other.skops")
    files.save_sklearn(LogisticRegression(max_iter=5000).fit(d.X_train, d.y_train),
                    tmp_path / "expected.skops")  # fmt: skip
    for f in ("other.skops", "expected.skops"):
        assert main(["sign", str(tmp_path / f), "--publisher-key", str(p / "pub.key")]) == 0
    pk = provenance.load_publisher(p / "pub.pub")
    assert files.load_model(tmp_path / "expected.skops", publisher=pk).C == 1.0
    shutil.copy(tmp_path / "other.skops", tmp_path / "expected.skops")
    shutil.copy(tmp_path / "other.skops.sig", tmp_path / "expected.skops.sig")
    with pytest.raises(CorruptArtifactError, match=r"for a file named 'other\.skops'"):
        files.load_model(tmp_path / "expected.skops", publisher=pk)
    # a legacy v1 signature (64 raw bytes) binds only the bytes: the swap loads
    sk = provenance.load_publisher(p / "pub.key")
    v1 = provenance.sign_bytes((tmp_path / "other.skops").read_bytes(), sk)
    (tmp_path / "expected.skops.sig").write_bytes(v1)
    assert files.load_model(tmp_path / "expected.skops", publisher=pk).C == 0.01
