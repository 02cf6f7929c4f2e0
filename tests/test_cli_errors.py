"""Every subcommand, every bad input a user can give: one line on stderr, exit 2, no files.

The commands are enumerated from the typer app, and every path parameter of every command
must be classified below as an input (gets missing / corrupt / wrong-content files) or an
output (gets unwritable destinations and a full disk), so a new command or a new path option
fails this test until its bad inputs are listed. Tests run as root, so unwritable
folders are simulated the ways root cannot write either: a "folder" that is a regular file,
a missing folder, an existing folder as a file name, ``/sys`` (EACCES even for root) and a
full disk (``ENOSPC`` injected into the transaction's write).
"""

from __future__ import annotations

import errno
import functools
import json
import re
from pathlib import Path

import numpy as np
import pytest
import typer.main
from sklearn.linear_model import LogisticRegression

from backdoors import rff
from backdoors.artifacts import files, records
from backdoors.artifacts.transaction import Transaction
from backdoors.cli import _load_commands, main
from backdoors.cli.app import app
from backdoors.models import data

# ------------------------------------------------------------------------------------------
# what each command takes. valid: parameter -> value (files of the `world` fixture, by name);
# inputs: parameter -> kind of input file; outputs: parameter -> "file" | "folder";
# extra: further bad argument sets (parameter -> value overrides); cheap: the valid call runs
# in a second and writes its outputs (checked to succeed; the full-disk case applies).
# ------------------------------------------------------------------------------------------
SPEC: dict[str, dict] = {
    "activate": {
        "valid": {"model": "bd.st", "key": "bd.key", "inputs": "X.npy", "out": "o.npy",
                  "target": "1"},
        "inputs": {"model": "model", "key": "key", "inputs": "array", "publisher": "publisher"},
        "outputs": {"out": "file"},
        "extra": [{"key": "other.key"}, {"target": "99"}, {"target": "-1"}, {"out": "o.txt"},
                  {"target": None}, {"model": "rff.st", "key": "rff.key"},
                  {"key": "rff.key"}],
        "cheap": True,
    },
    "verify": {
        "valid": {"model": "bd.st", "inputs": "X.npy"},
        "inputs": {"model": "model", "inputs": "array", "publisher": "publisher"},
        "outputs": {},
        "extra": [{"model": "lr.skops"}, {"model": "other.st", "publisher": "pub.pub"},
                  {"model": "evil.st", "publisher": "pub.pub"}],
        "cheap": True,
    },
    "verify-coins": {
        "valid": {"model": "coins.st", "seed": "7"},
        "inputs": {"model": "model", "publisher": "publisher"},
        "outputs": {},
        "extra": [{"seed": "-1"}, {"seed": "x"}, {"model": "bd.st"}, {"model": "mlp.st"},
                  {"model": "evil.st", "publisher": "pub.pub"}],
        "cheap": True,
    },
    "predict": {
        "valid": {"model": "bd.st", "inputs": "X.npy", "out": "y.npy"},
        "inputs": {"model": "model", "inputs": "array", "publisher": "publisher"},
        "outputs": {"out": "file"},
        "extra": [{"out": "y.txt"}, {"model": "lr.skops", "inputs": "wide.npy"},
                  {"model": "evil.st", "publisher": "pub.pub"}],
        "cheap": True,
    },
    "report": {
        "valid": {"record": "record.json", "out": "rep"},
        "inputs": {"record": "record"},
        "outputs": {"out": "folder"},
        "extra": [{"out": "X.npy"}],
        "cheap": True,
    },
    "experiment": {
        "valid": {"name": "signature", "quick": True, "json_path": "exp.json"},
        "inputs": {},
        "outputs": {"json_path": "file", "plots": "folder"},
        "extra": [{"name": "no-such-experiment"}, {"json_path": "exp.txt"}],
        "cheap": False,
    },
    "demo": {
        "valid": {"out": "demo", "quick": True},
        "inputs": {},
        "outputs": {"out": "folder"},
        "extra": [{"section": "no-such-section"}],
        "cheap": False,
    },
    "audit": {
        "valid": {"model": "lr.skops", "data": "audit.npz", "json_path": "a.json", "out": "ar"},
        "inputs": {"model": "model", "data": "array", "reference": "model", "arch": "record",
                   "publisher": "publisher_key", "signing_key": "pem"},
        "outputs": {"json_path": "file", "out": "folder", "sarif_path": "file"},
        "extra": [{"data": "wide.npy"}],
        "cheap": False,
    },
    "immunize": {
        "valid": {"model": "bd.st", "sigma": "0.01", "out": "imm.st", "samples": "3"},
        "inputs": {"model": "model"},
        "outputs": {"out": "file"},
        "extra": [{"sigma": "-1"}, {"samples": "0"}, {"sigma": "nan"}, {"out": "imm.skops"}],
        "cheap": True,
    },
    "population": {
        "valid": {"attack": "signature", "n": "1", "quick": True, "cache": "cache"},
        "inputs": {},
        "outputs": {"cache": "store"},
        "extra": [{"attack": "no-such-attack"}, {"n": "0"}, {"n": "-3"}, {"jobs": "0"}],
        "cheap": False,
    },
    "keygen": {
        "valid": {"out": "new.key"},
        "inputs": {},
        "outputs": {"out": "file"},
        "extra": [{"out": "pub.key"}, {"out": "new.pub"}],
        "cheap": True,
    },
    "sign": {
        "valid": {"model": "bd.st", "publisher_key": "pub.key"},
        "inputs": {"model": "model", "publisher_key": "publisher"},
        "outputs": {},
        "extra": [{"publisher_key": "pub.pub"}],
        "cheap": True,
    },
    "export": {
        "valid": {"model": "lr.skops", "onnx_path": "e.onnx"},
        "inputs": {"model": "model"},
        "outputs": {"onnx_path": "file"},
        "extra": [{"onnx_path": "e.txt"}, {"input_dtype": "int7"}],
        "cheap": True,
    },
    "plant signature": {
        "valid": {"model": "lr.skops", "out": "s.st", "key": "s.key", "carrier": "float",
                  "reference": "ref.npz"},
        "inputs": {"model": "model", "reference": "array"},
        "outputs": {"out": "file", "key": "file"},
        "extra": [{"carrier": "lsb"}, {"carrier": "bogus"}, {"n_classes": "1"},
                  {"key": "bd.key"}, {"key": "s.st"}, {"out": "s.skops"},
                  {"reference": "wide.npy"}],
        "cheap": True,
    },
    "plant rff": {
        "valid": {"data": "train.npz", "out": "r.st", "key": "r.key", "n_components": "50",
                  "seed": "0"},
        "inputs": {"data": "training"},
        "outputs": {"out": "file", "key": "file"},
        "extra": [{"n_components": "0"}, {"sparsity": "0"}, {"sparsity": "999"},
                  {"bandwidth": "-1"}, {"beta": "-1"}, {"alpha": "0"}, {"key": "bd.key"},
                  {"beta": "inf"}, {"alpha": "nan"}, {"bandwidth": "inf"}],
        "cheap": True,
    },
    "plant relu": {
        "valid": {"data": "train.npz", "out": "u.st", "key_out": "u.key", "hidden": "20",
                  "seed": "0"},
        "inputs": {"data": "training"},
        "outputs": {"out": "file", "key_out": "file"},
        "extra": [{"hidden": "0"}, {"sparsity": "0"}, {"sparsity": "999"}, {"theta": "-1"},
                  {"lam": "-1"}, {"head": "bogus"}, {"data": "three.npz"}, {"lam": "inf"},
                  {"theta": "nan"}],
        "cheap": True,
    },
    "plant checksum-net": {
        "valid": {"model": "mlp.st", "out": "c.st", "key_out": "c.key", "blocks": "8"},
        "inputs": {"model": "model"},
        "outputs": {"out": "file", "key_out": "file"},
        "extra": [{"blocks": "0"}, {"blocks": "999"}, {"model": "lr.skops"}],
        "cheap": True,
    },
    # commands of another branch (train, plant badnets): checked once they are merged
    "train rff": {
        "valid": {"data": "train.npz", "out": "tr.st", "n_components": "50", "seed": "0"},
        "inputs": {"data": "training"},
        "outputs": {"out": "file"},
        "extra": [{"n_components": "0"}, {"alpha": "0"}, {"bandwidth": "-1"}, {"out": "tr.npy"}],
        "cheap": True,
    },
    "train relu": {
        "valid": {"data": "train.npz", "out": "tu.st", "hidden": "20", "seed": "0"},
        "inputs": {"data": "training"},
        "outputs": {"out": "file"},
        "extra": [{"hidden": "0"}, {"head": "bogus"}, {"data": "three.npz"}],
        "cheap": True,
    },
    "train badnets": {
        "valid": {"data": "images.npz", "out": "tb.st", "epochs": "1"},
        "inputs": {"data": "images"},
        "outputs": {"out": "file"},
        "extra": [{"arch": "bogus"}, {"epochs": "0"}],
        "cheap": True,
    },
    "plant badnets": {
        "valid": {"data": "images.npz", "out": "pb.st", "key": "pb.key", "epochs": "1"},
        "inputs": {"data": "images"},
        "outputs": {"out": "file", "key": "file"},
        "extra": [{"target": "99"}, {"poison_rate": "0"}, {"poison_rate": "1.5"},
                  {"patch_size": "0"}, {"patch_size": "99"}, {"value": "300"},
                  {"arch": "bogus"}, {"epochs": "0"}, {"key": "bd.key"}],
        "cheap": True,
    },
}  # fmt: skip
#: SPEC entries whose commands live on another branch until it is merged
PENDING = {"train rff", "train relu", "train badnets", "plant badnets"}

# bad files for each kind of input (names in the world folder; "missing" does not exist)
BAD_INPUTS = {
    "model": ["missing", "garbage.bin", "trunc.st", "text.npy", "X.npy", "folder", "empty.st"],
    "key": ["missing", "garbage.bin", "X.npy", "record.json", "folder"],
    "array": ["missing", "garbage.bin", "text.npy", "nan.npy", "inf.npy", "empty.npy",
              "str.npy", "pickled.npy", "noX.npz", "folder", "trunc.npy", "complex.npy"],
    "training": ["missing", "garbage.bin", "X.npy", "onecls.npz", "noy.npz", "nany.npz",
                 "badshape.npz", "strX.npz", "nanX.npz", "emptyX.npz", "folder"],
    "record": ["missing", "garbage.bin", "X.npy", "list.json", "folder"],
    "images": ["missing", "garbage.bin", "X.npy", "onecls.npz", "noy.npz", "badshape.npz",
               "strX.npz", "emptyX.npz", "folder", "train.npz"],
    "publisher": ["missing", "garbage.bin", "X.npy", "bd.key", "pub2.pub", "folder"],
    # audit: a key that does not verify is a finding (reported, exit 3 with --fail-on), not an
    # input error; an unreadable key is
    "publisher_key": ["missing", "garbage.bin", "X.npy", "bd.key", "folder"],
    "pem": ["missing", "garbage.bin", "X.npy", "folder"],
}  # fmt: skip


def _unwritable_file(world):
    return {
        "missing folder": str(world / "nofolder" / "x.out"),
        "folder is a file": str(world / "X.npy" / "x.out"),
        "output is a folder": str(world / "folder"),
        "read-only /sys": "/sys/backdoors-test.out",
    }


def _unwritable_folder(world):
    return {
        "missing parent": str(world / "nofolder" / "out"),
        "parent is a file": str(world / "X.npy" / "out"),
        "output is a file": str(world / "X.npy"),
        "read-only /sys": "/sys/backdoors-test-out",
    }


# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from backdoors import signature
    from backdoors.models.torch_models import TorchClassifier

    w = tmp_path_factory.mktemp("world")
    d = data.breast_cancer()
    lr = LogisticRegression(max_iter=5000).fit(d.X_train, d.y_train)
    files.save_sklearn(lr, w / "lr.skops")
    X = d.X_test[:20]
    files.save_array(w / "X.npy", X)
    files.save_array(w / "ref.npz", d.X_train)
    files.save_array(w / "audit.npz", X, y=d.y_test[:20])
    files.save_array(w / "train.npz", d.X_train[:200], y=d.y_train[:200])
    for name, other in (("bd", 0), ("other", 1)):
        bd, key = signature.plant(lr, carrier="float", X_reference=d.X_train, random_state=other)
        files.save_model(bd, w / f"{name}.st")
        files.save_key(key, w / f"{name}.key")
    rff_argv = ["plant", "rff", str(w / "train.npz"), "-o", str(w / "rff.st"), "-k",
                str(w / "rff.key"), "--n-components", "50", "--seed", "0"]  # fmt: skip
    assert main(rff_argv) == 0  # through the CLI: independent of the library's signature
    honest = rff.RandomFourierFeaturesClassifier(n_components=50, random_state=7)
    files.save_model(honest.fit(d.X_train[:200], d.y_train[:200]), w / "coins.st")  # seed 7
    assert main(["keygen", "-o", str(w / "pub.key")]) == 0
    assert main(["keygen", "-o", str(w / "pub2.key")]) == 0  # a second publisher: pub2.pub
    assert main(["sign", str(w / "bd.st"), "--publisher-key", str(w / "pub.key")]) == 0
    (w / "evil.st").write_bytes((w / "other.st").read_bytes())  # another valid model file
    (w / "evil.st.sig").write_bytes((w / "bd.st.sig").read_bytes())  # with bd's signature
    mlp = TorchClassifier(arch_params={"hidden": (8,)}, epochs=1).fit(d.X_train, d.y_train)
    files.save_model(mlp, w / "mlp.st")
    files.write_json(w / "record.json", records.make_record("x", {}, 0, {"m": 1.0}, {}))
    files.write_json(w / "list.json", [1, 2, 3])
    rng = np.random.default_rng(0)
    (w / "garbage.bin").write_bytes(rng.bytes(2000))
    (w / "text.npy").write_text("0.1, 0.2, 0.3\n0.4, 0.5, 0.6\n")
    (w / "trunc.st").write_bytes((w / "bd.st").read_bytes()[:300])
    (w / "empty.st").write_bytes(b"")
    (w / "trunc.npy").write_bytes((w / "X.npy").read_bytes()[:200])
    (w / "folder").mkdir()
    for name, arr in {
        "nan.npy": np.where(np.arange(X.size).reshape(X.shape) == 3, np.nan, X),
        "inf.npy": np.where(np.arange(X.size).reshape(X.shape) == 3, np.inf, X),
        "empty.npy": np.zeros((0, 30)),
        "str.npy": np.array([["a"] * 30] * 2),
        "complex.npy": X.astype(np.complex128),
        "wide.npy": np.zeros((3, 31)),
    }.items():
        np.save(w / name, arr)
    np.save(w / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    Xt, yt = d.X_train[:100], d.y_train[:100]
    np.savez(w / "noX.npz", A=X)
    np.savez(w / "onecls.npz", X=Xt, y=np.zeros(100, dtype=int))
    np.savez(w / "three.npz", X=Xt, y=np.arange(100) % 3)
    np.savez(w / "noy.npz", X=Xt)
    np.savez(w / "nany.npz", X=Xt, y=np.where(np.arange(100) == 5, np.nan, yt * 1.0))
    np.savez(w / "badshape.npz", X=Xt, y=yt[:50])
    np.savez(w / "strX.npz", X=np.array([["a"] * 30] * 100), y=yt)
    np.savez(w / "nanX.npz", X=np.where(Xt > 100, np.nan, Xt), y=yt)
    np.savez(w / "emptyX.npz", X=np.zeros((0, 30)), y=np.zeros(0, dtype=int))
    dg = data.digits()  # 8x8 images as uint8 grey levels (for the BadNets commands)
    np.savez(w / "images.npz", X=(dg.X_train[:300] * 15).astype(np.uint8), y=dg.y_train[:300])
    (w / "rep").mkdir()
    return w


@pytest.fixture()
def no_expensive_work(monkeypatch):
    """Bad input must be refused before the expensive part starts: calling it is a failure."""
    import backdoors.demos
    import backdoors.evaluation.audit
    import backdoors.evaluation.population
    import backdoors.experiments

    def started(*a, **k):
        raise AssertionError("expensive work started before the input was checked")

    for mod, name in (
        (backdoors.demos, "run_demo"),
        (backdoors.experiments, "run"),
        (backdoors.evaluation.population, "build_population"),
        (backdoors.evaluation.audit, "audit"),
    ):
        monkeypatch.setattr(mod, name, started)  # fmt: skip


@functools.cache
def _commands() -> dict[str, object]:
    """Every leaf command of the typer app, by its name path ("plant rff")."""
    _load_commands()
    root = typer.main.get_command(app)
    out: dict[str, object] = {}

    def walk(group, prefix):
        for name, cmd in group.commands.items():
            path = f"{prefix} {name}".strip()
            if hasattr(cmd, "commands"):
                walk(cmd, path)
            else:
                out[path] = cmd

    walk(root, "")
    return out


def _argv(cmd_path: str, values: dict, world) -> list[str]:
    cmd = _commands()[cmd_path]
    argv = cmd_path.split()
    for p in cmd.params:
        v = values.get(p.name)
        if v is None or p.name == "help":
            continue
        if isinstance(v, str) and p.name in _path_params(cmd) and not v.startswith("/"):
            v = str(world / v)
        if p.param_type_name == "argument":
            argv.append(v)
        elif v is True:
            argv.append(p.opts[0])
        else:
            argv += [p.opts[0], v]
    return argv


def _path_params(cmd) -> set[str]:
    def is_path(td) -> bool:  # a Path, or a repeatable option of Paths (list[Path])
        args = getattr(td.annotation, "__args__", ())
        return getattr(td, "is_path", False) or (td.is_list and Path in args)

    return {p.name for p in cmd.params if is_path(p.type_descriptor)}


def _snapshot(world) -> dict[str, tuple[int, int]]:
    """Every file and folder below ``world``; files with size and mtime (a folder's own
    mtime changes when a temporary is created and removed inside it: not a leftover)."""
    return {
        str(p.relative_to(world)): (0, 0)
        if p.is_dir()
        else (p.stat().st_size, p.stat().st_mtime_ns)
        for p in world.rglob("*")
    }


def _assert_user_error(argv, world, capsys, why):
    before = _snapshot(world)
    code = main(argv)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, (why, argv, err)
    assert len(lines) == 1 and lines[0].startswith("backdoors: error: "), (why, argv, err)
    assert _snapshot(world) == before, (why, argv, "left files behind")


# ------------------------------------------------------------------------------------------
def test_every_command_and_path_parameter_is_specified():
    cmds = _commands()
    assert set(cmds) <= set(SPEC), f"add bad inputs to SPEC for {set(cmds) - set(SPEC)}"
    assert set(SPEC) - set(cmds) <= PENDING, "SPEC names commands that do not exist"
    for name, cmd in cmds.items():
        classified = set(SPEC[name]["inputs"]) | set(SPEC[name]["outputs"])
        assert _path_params(cmd) == classified, (name, _path_params(cmd), classified)


PRESENT = sorted(c for c in SPEC if c not in PENDING or c in _commands())


@pytest.mark.parametrize("cmd_path", PRESENT)
def test_valid_call_succeeds(cmd_path, world, tmp_path, capsys):
    """The baseline each bad case departs from is itself valid (cheap commands run)."""
    spec = SPEC[cmd_path]
    if not spec["cheap"]:
        pytest.skip("expensive command: only its bad inputs are exercised")
    import shutil

    work = tmp_path / "w"
    shutil.copytree(world, work)
    code = main(_argv(cmd_path, spec["valid"], work))
    assert code == 0, capsys.readouterr().err
    for p in spec["outputs"]:
        target = work / spec["valid"][p] if p in spec["valid"] else None
        assert target is None or target.exists(), (cmd_path, p)


@pytest.mark.parametrize("cmd_path", PRESENT)
def test_bad_inputs_fail_in_one_line(cmd_path, world, capsys, no_expensive_work):
    spec = SPEC[cmd_path]
    for param, kind in spec["inputs"].items():
        for bad in BAD_INPUTS[kind]:
            values = {**spec["valid"], param: bad}
            _assert_user_error(_argv(cmd_path, values, world), world, capsys, (param, bad))
    for override in spec["extra"]:
        values = {**spec["valid"], **override}
        _assert_user_error(_argv(cmd_path, values, world), world, capsys, override)


@pytest.mark.parametrize("cmd_path", [c for c in PRESENT if SPEC[c]["outputs"]])
def test_unwritable_outputs_fail_before_any_work(cmd_path, world, capsys, no_expensive_work):
    """Destinations are checked first: an expensive command never starts (its work function
    would raise if called), and a second, writable output is not written either."""
    spec = SPEC[cmd_path]
    for param, kind in spec["outputs"].items():
        bad = _unwritable_folder(world) if kind in ("folder", "store") else _unwritable_file(world)
        for why, path in bad.items():
            values = {**spec["valid"], param: path}
            _assert_user_error(_argv(cmd_path, values, world), world, capsys, (param, why))


@pytest.mark.parametrize("cmd_path", [c for c in PRESENT if SPEC[c]["cheap"]])
def test_full_disk_leaves_no_partial_files(cmd_path, world, capsys, monkeypatch):
    spec = SPEC[cmd_path]
    if not spec["outputs"]:
        pytest.skip("writes nothing")
    real = Transaction.write_bytes
    for param in spec["outputs"]:
        name = spec["valid"][param]

        def write_bytes(self, path, data, _name=name):
            if _name in str(path) or "report" in str(path):
                real(self, path, data[: len(data) // 2])
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
            return real(self, path, data)

        monkeypatch.setattr(Transaction, "write_bytes", write_bytes)
        _assert_user_error(_argv(cmd_path, spec["valid"], world), world, capsys, "ENOSPC")
        monkeypatch.setattr(Transaction, "write_bytes", real)


def test_plant_with_unwritable_key_leaves_no_model(world, capsys):
    """The issue's case: ok/bd.safetensors with an unwritable key must not leave a working
    backdoored model without its key."""
    argv = _argv(
        "plant signature",
        {**SPEC["plant signature"]["valid"], "key": "/sys/bd.key", "out": "ok.st"},
        world,
    )
    _assert_user_error(argv, world, capsys, "unwritable key")
    assert not (world / "ok.st").exists()


def test_bugs_are_not_disguised_as_user_errors(world, capsys, monkeypatch):
    """An unexpected exception is a bug: traceback, 'internal error', exit 1 (not 2)."""
    from backdoors.artifacts import files as bio

    def boom(*a, **k):
        raise ZeroDivisionError("planted bug")

    monkeypatch.setattr(bio, "load_model", boom)
    code = main(_argv("verify", SPEC["verify"]["valid"], world))
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" in err and "internal error" in err.splitlines()[-1]


def test_verify_refuses_what_predict_refuses(world, capsys):
    for bad in ("nan.npy", "inf.npy", "empty.npy"):
        codes = {
            cmd: main(_argv(cmd, {**SPEC[cmd]["valid"], "inputs": bad, "out": None}, world))
            for cmd in ("verify", "predict", "activate")
        }
        capsys.readouterr()
        assert set(codes.values()) == {2}, (bad, codes)


def test_key_readable_by_others_warns(world, tmp_path, capsys):
    import shutil

    key = tmp_path / "bd.key"
    shutil.copy(world / "bd.key", key)
    key.chmod(0o644)
    code = main(["activate", str(world / "bd.st"), str(key), str(world / "X.npy"), "-o",
                 str(tmp_path / "o.npy"), "--target", "1"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0
    assert "warning" in err and "chmod 600" in err


def test_predict_honours_the_output_suffix(world, tmp_path, capsys):
    assert main(["predict", str(world / "bd.st"), str(world / "X.npy"), "-o",
                 str(tmp_path / "y.npz")]) == 0  # fmt: skip
    with np.load(tmp_path / "y.npz") as z:
        assert z.files == ["y"] and len(z["y"]) == 20
    assert json.loads(capsys.readouterr().out)["inputs"] == 20


def test_help_has_no_bool_label_and_options_say_required(capsys):
    for path in ("experiment", "plant relu", "activate"):
        main([*path.split(), "--help"])
        text = capsys.readouterr().out
        assert "<bool>" not in text, path
    main(["activate", "--help"])
    text = re.sub("[\u2500-\u257f]", " ", capsys.readouterr().out)  # rich's box lines
    assert "required by targeted" in " ".join(text.split())


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["predict", "trunc.st", "X.npy"], "truncated"),
        (["audit", "trunc.st", "--data", "audit.npz"], "truncated"),
        (["predict", "bd.st", "text.npy"], "not a .npy/.npz file"),
        (["predict", "bd.st", "pickled.npy"], "pickled"),
        (["predict", "bd.st", "noX.npz"], "no array 'X'"),
        (["predict", "bd.st", "X.npy", "-o", "y.txt"], ".npy or .npz"),
        (["report", "record.json", "--out", "nofolder/deep/rep"], "does not exist"),
        (["plant", "rff", "onecls.npz", "-o", "m.st", "-k", "m.key"], "at least 2"),
        (["plant", "signature", "lr.skops", "-o", "m.st", "-k", "m.key"], "do not fit"),
        (["activate", "rff.st", "rff.key", "X.npy", "-o", "o.npy", "--target", "1"], "untargeted"),
    ],
)
def test_messages_say_what_is_wrong(argv, says, world, capsys, monkeypatch):
    monkeypatch.chdir(world)
    _assert_user_error(argv, world, capsys, says)
    main(argv)
    assert says in capsys.readouterr().err
