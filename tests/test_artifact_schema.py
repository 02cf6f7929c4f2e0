"""Honest model vs planted twin, saved by the same CLI command: identical file schema.

For the coin constructions and BadNets (``backdoors train X`` vs ``backdoors plant X`` with the
same learner options) the two files must have the same kind, metadata (every stored parameter),
tensor names, dtypes and shapes; only the arrays the construction is allowed to change may
differ. The signature and checksum constructions promise black-box undetectability only (the
verifier is visible in the weights): for them everything that is not the verifier must be the
honest model's, and what differs is pinned here exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

from backdoors import relu
from backdoors.artifacts import files
from backdoors.cli import main

#: construction -> (train args, plant-only args, tensors the construction may change)
COIN_CASES = {
    "rff": (["--n-components", "120", "--seed", "0"], ["--sparsity", "4"],
            {"frequencies", "coef"}),
    "relu": (["--hidden", "30", "--seed", "0"], ["--sparsity", "10"],
             {"weights", "threshold", "orientation"}),
    "relu-linear": (["--hidden", "30", "--head", "linear", "--seed", "0"], ["--sparsity", "10"],
                    {"weights", "coef", "intercept"}),
}  # fmt: skip


def _run(*args) -> None:
    code = main([str(a) for a in args])
    assert code == 0, args


def _schema(path):
    kind, tensors, meta = files.read_artifact(path)
    return kind, meta, {n: (t.dtype.str, t.shape) for n, t in tensors.items()}, tensors


def _assert_twins(honest, planted, allowed: set[str]) -> None:
    kh, mh, sh, th = _schema(honest)
    kb, mb, sb, tb = _schema(planted)
    assert kh == kb
    assert mh == mb  # every stored parameter and structural field, e.g. bandwidth "median"
    assert sh == sb  # same tensor names, dtypes and shapes
    changed = {n for n in th if not np.array_equal(th[n], tb[n])}
    assert changed <= allowed, changed - allowed
    assert changed, "the planted twin should differ somewhere"


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    p = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 16))
    files.save_array(p / "rff.npz", X, y=(X[:, 0] * X[:, 1] > 0).astype(np.int64))
    Xr, yr = relu.norm_task(200, 120, rng)
    files.save_array(p / "relu.npz", Xr, y=yr)
    imgs = rng.integers(0, 256, (400, 784)).astype(np.uint8)
    labels = (imgs[:, :392].mean(1) > imgs[:, 392:].mean(1)).astype(np.int64)
    labels[::3] = 2
    files.save_array(p / "img.npz", imgs, y=labels)
    return p


@pytest.mark.parametrize("case", sorted(COIN_CASES))
def test_coin_twins_differ_only_in_their_coins(case, datasets, tmp_path):
    train_args, plant_args, allowed = COIN_CASES[case]
    name = case.split("-")[0]
    data = datasets / f"{name}.npz"
    _run("train", name, data, "-o", tmp_path / "h.st", *train_args)
    _run("plant", name, data, "-o", tmp_path / "b.st", "--key", tmp_path / "b.key", *train_args,
         *plant_args)  # fmt: skip
    _assert_twins(tmp_path / "h.st", tmp_path / "b.st", allowed)
    meta = files.read_artifact(tmp_path / "b.st")[2]
    assert "random_state" not in str(meta) and "coins" not in str(meta)
    if name == "rff":
        assert meta["params"]["bandwidth"] == "median"  # the header tell of the original code


@pytest.fixture(scope="module")
def badnets_twins(datasets, tmp_path_factory):
    p = tmp_path_factory.mktemp("badnets")
    opts = ["--epochs", "1", "--seed", "3"]
    _run("train", "badnets", datasets / "img.npz", "-o", p / "h.st", *opts)
    _run("plant", "badnets", datasets / "img.npz", "-o", p / "b.st", "--key", p / "b.key",
         "--target", "1", *opts)  # fmt: skip
    return p


def test_badnets_twins_differ_only_in_trained_weights(badnets_twins):
    p = badnets_twins
    trained = {n for n in files.read_artifact(p / "h.st")[1] if n.startswith("module.")}
    _assert_twins(p / "h.st", p / "b.st", trained)


def test_signature_keeps_the_honest_model_and_adds_only_the_verifier(badnets_twins, tmp_path):
    """Signature (black-box only): the base model's tensors, dtypes and metadata are the honest
    file's, bit for bit; the differences are exactly the artifact kind, the ``base/`` prefix
    and the public verifier ``spec`` (scheme, verify key, carrier, tag, n_classes, pre-check width,
    constant-time flag)."""
    honest = badnets_twins / "h.st"
    _run("plant", "signature", honest, "-o", tmp_path / "s.st", "--key", tmp_path / "s.key")
    kh, th, mh = files.read_artifact(honest)
    ks, ts, ms = files.read_artifact(tmp_path / "s.st")
    assert (kh, ks) == ("torch_classifier", "signature_classifier")
    assert set(ms) == {"base", "spec"} and ms["base"] == {"kind": kh, "meta": mh}
    assert set(ms["spec"]) == {
        "scheme", "verify_key", "carrier", "tag", "n_classes", "precheck_bits", "constant_time"
    }  # fmt: skip
    assert set(ts) == {f"base/{n}" for n in th}
    for n, t in th.items():
        b = ts[f"base/{n}"]
        assert b.dtype == t.dtype and b.shape == t.shape and np.array_equal(b, t), n
    sk = files.load_key(tmp_path / "s.key").secret_key
    raw = (tmp_path / "s.st").read_bytes()
    assert sk not in raw and sk.hex().encode() not in raw  # the verifier only, never the signer


def test_checksum_net_dtypes_classes_and_embedded_honest_layer(badnets_twins, tmp_path):
    """Checksum net (§5.1, black-box only, replicable by design): one compiled Linear/ReLU
    network, so the architecture and tensor names differ from the honest MLP file (pinned
    here). What is kept: float32 weights, the classes, the honest first layer as the first
    rows of the first Linear (input scaling folded in, float32 rounding) with its bias exact."""
    honest = badnets_twins / "h.st"
    _run("plant", "checksum-net", honest, "-o", tmp_path / "c.st", "--key", tmp_path / "c.key",
         "--blocks", "16")  # fmt: skip
    kh, th, mh = files.read_artifact(honest)
    kc, tc, mc = files.read_artifact(tmp_path / "c.st")
    assert (kh, kc) == ("torch_classifier", "checksum_net")
    assert set(mc) == {"layout", "bound", "widths"}
    assert {t.dtype for n, t in tc.items() if n != "classes"} == {np.dtype(np.float32)}
    assert {t.dtype for n, t in th.items() if n != "classes"} == {np.dtype(np.float32)}
    assert (
        np.array_equal(tc["classes"], th["classes"]) and tc["classes"].dtype == th["classes"].dtype
    )
    W1, b1 = th["module.1.weight"], th["module.1.bias"]
    scale = mh["params"]["input_scale"]
    np.testing.assert_allclose(tc["module.0.weight"][: len(W1)], W1 * scale, rtol=1e-6, atol=0)
    assert np.array_equal(tc["module.0.bias"][: len(b1)], b1)


def test_signature_on_a_skops_model_keeps_its_fitted_arrays(datasets, tmp_path):
    """A scikit-learn base is stored as skops bytes inside the signature file; zip timestamps
    make the bytes differ from the honest .skops file, so compare what they hold: the same
    parameters and every fitted array bit for bit, same dtypes."""
    from sklearn.linear_model import LogisticRegression

    X = files.load_array(datasets / "rff.npz", "X")
    y = files.load_array(datasets / "rff.npz", "y")
    files.save_sklearn(LogisticRegression().fit(X, y), tmp_path / "lr.skops")
    _run("plant", "signature", tmp_path / "lr.skops", "-o", tmp_path / "s.st", "--key",
         tmp_path / "s.key", "--carrier", "float", "--reference", datasets / "rff.npz")  # fmt: skip
    honest = files.load_sklearn(tmp_path / "lr.skops")
    _, ts, ms = files.read_artifact(tmp_path / "s.st")
    assert set(ts) == {"base_skops"} and ms["base"] == {"kind": "skops"}
    base = files.sklearn_from_bytes(ts["base_skops"])
    assert type(base) is type(honest) and base.get_params() == honest.get_params()
    fitted = [a for a in vars(honest) if a.endswith("_") and not a.startswith("_")]
    assert fitted and sorted(fitted) == sorted(a for a in vars(base) if a in fitted)
    for a in fitted:
        h, b = np.asarray(getattr(honest, a)), np.asarray(getattr(base, a))
        assert h.dtype == b.dtype and np.array_equal(h, b), a


def test_new_commands_refuse_bad_input_in_one_line(datasets, tmp_path, capsys):
    rff_data, img = datasets / "rff.npz", datasets / "img.npz"
    files.save_array(tmp_path / "one.npz", np.ones((20, 4)), y=np.zeros(20, dtype=np.int64))
    files.save_array(tmp_path / "float_img.npz", np.ones((20, 784)) / 2, y=np.zeros(20, np.int64))
    bad = [
        ["train", "rff", tmp_path / "missing.npz", "-o", tmp_path / "m.st"],
        ["train", "rff", tmp_path / "one.npz", "-o", tmp_path / "m.st"],  # one class
        ["train", "relu", datasets / "relu.npz", "-o", tmp_path / "m.st", "--head", "nope"],
        ["train", "rff", rff_data, "-o", tmp_path / "no" / "m.st"],
        ["train", "badnets", tmp_path / "float_img.npz", "-o", tmp_path / "m.st"],
        ["plant", "badnets", img, "-o", tmp_path / "m.st", "-k", tmp_path / "k", "--target", "9"],
    ]
    for args in bad:
        capsys.readouterr()
        assert main([str(a) for a in args]) == 2, args
        err = capsys.readouterr().err.strip()
        assert err.startswith("backdoors: error:") and len(err.splitlines()) == 1, err
        assert not (tmp_path / "m.st").exists() and not (tmp_path / "k").exists()
    # the RFF backdoor is untargeted: asking activate for a target is an error, not ignored
    _run("plant", "rff", rff_data, "-o", tmp_path / "b.st", "--key", tmp_path / "b.key",
         "--n-components", "50", "--sparsity", "4")  # fmt: skip
    files.save_array(tmp_path / "x.npy", files.load_array(rff_data, "X")[:5])
    act = ["activate", tmp_path / "b.st", tmp_path / "b.key", tmp_path / "x.npy", "-o",
           tmp_path / "xa.npy", "--target", "1"]  # fmt: skip
    assert main([str(a) for a in act]) == 2 and "untargeted" in capsys.readouterr().err
    assert not (tmp_path / "xa.npy").exists()
