"""CLI defaults come from the library: one source, help generated from it."""

from __future__ import annotations

import dataclasses
import inspect
import json
import re

import numpy as np
import pytest
import typer.main

from backdoors import badnets, relu, rff
from backdoors.artifacts import files
from backdoors.cli import _load_commands, main
from backdoors.cli.app import app

# CLI option -> library field, per command and library defaults object
CASES = {
    # --sparsity defaults to None = min(DEFAULTS.sparsity, d), resolved by rff.default_sparsity
    "plant rff": (rff.DEFAULTS, {"n_components": "n_components", "beta": "beta",
                                 "alpha": "alpha"}),
    "plant relu": (relu.DEFAULTS, {"hidden": "n_hidden", "sparsity": "sparsity",
                                   "theta": "theta", "head": "head"}),
    "train relu": (relu.DEFAULTS, {"hidden": "n_hidden", "head": "head"}),
    "train rff": (rff.DEFAULTS, {"n_components": "n_components", "alpha": "alpha"}),
    # the BadNets commands arrive with another branch (skipped until they exist)
    "plant badnets": (badnets.DEFAULTS, {f: f for f in ("target", "poison_rate", "patch_size",
                                                        "value", "arch", "epochs", "seed")}),
    "train badnets": (badnets.DEFAULTS, {f: f for f in ("arch", "epochs", "seed")}),
}  # fmt: skip


def _command(path: str):
    _load_commands()
    cmd = typer.main.get_command(app)
    for part in path.split():
        if part not in getattr(cmd, "commands", {}):
            pytest.skip(f"no `{path}` command in this build")
        cmd = cmd.commands[part]
    return cmd


@pytest.mark.parametrize("path", sorted(CASES))
def test_cli_option_defaults_are_the_library_defaults(path):
    defaults, mapping = CASES[path]
    params = {p.name: p for p in _command(path).params}
    for option, field in mapping.items():
        assert params[option].default == getattr(defaults, field), (path, option)


@pytest.mark.parametrize(
    ("fn", "defaults"),
    [(rff.plant, rff.DEFAULTS), (rff.RandomFourierFeaturesClassifier, rff.DEFAULTS),
     (relu.plant, relu.DEFAULTS), (relu.RandomReLUClassifier, relu.DEFAULTS),
     (badnets.plant, badnets.DEFAULTS), (badnets.default_classifier, badnets.DEFAULTS)],
)  # fmt: skip
def test_library_signatures_use_their_defaults_object(fn, defaults):
    sig = inspect.signature(fn).parameters
    for f in dataclasses.fields(defaults):
        if fn is rff.plant and f.name == "sparsity":  # None = min(DEFAULTS.sparsity, d)
            assert sig["sparsity"].default is None
            continue
        if f.name in sig:
            assert sig[f.name].default == getattr(defaults, f.name), (fn, f.name)


def test_relu_lambda_help_states_what_is_passed(tmp_path, capsys):
    """`plant relu --help` promised 0.4 median ||x|| while 0.25 was used."""
    main(["plant", "relu", "--help"])
    helptext = " ".join(re.sub("[\u2500-\u257f]", " ", capsys.readouterr().out).split())
    assert f"{relu.DEFAULTS.lam_rel:g} x median ||x||" in helptext
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 30)) * np.r_[np.ones(100), 2 * np.ones(100)][:, None]
    y = np.r_[np.zeros(100, int), np.ones(100, int)]
    files.save_array(tmp_path / "d.npz", X, y=y)
    argv = ["plant", "relu", str(tmp_path / "d.npz"), "-o", str(tmp_path / "m.st"), "-k",
            str(tmp_path / "m.key"), "--seed", "0"]  # fmt: skip
    assert main(argv) == 0
    lam = json.loads(capsys.readouterr().out)["lambda"]
    expected = relu.DEFAULTS.lam_rel * np.median(np.linalg.norm(X, axis=1))
    assert lam == pytest.approx(expected)


def test_ridge_alpha_is_one_constant():
    """The ridge strength is read from rff.DEFAULTS everywhere, never written as a literal."""
    import pathlib

    import backdoors

    root = pathlib.Path(backdoors.__file__).parent
    hits = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if "alpha=1e-4" in p.read_text().replace(" ", "")
        or "bandwidth,1e-4" in p.read_text().replace(" ", "")
    ]
    assert hits == []


def test_plant_rff_sparsity_default_is_the_library_rule():
    params = {p.name: p for p in _command("plant rff").params}
    assert params["sparsity"].default is None
    assert str(rff.DEFAULTS.sparsity) in (params["sparsity"].help or "")
    assert rff.default_sparsity(784) == rff.DEFAULTS.sparsity and rff.default_sparsity(20) == 20
