"""Registries fill by explicit module lists: nothing is found by scanning folders or source
text, so these tests check that the lists are complete (a new module that registers
something but is not listed fails here, not in a user's fresh process)."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import pytest

import backdoors
from backdoors.demos import SECTIONS
from backdoors.detectors import DETECTORS
from backdoors.evaluation.recipes import ATTACKS
from backdoors.experiments import EXPERIMENTS
from backdoors.registry import Registry

PACKAGE_REGISTRIES = [
    ("backdoors.evaluation.recipes", ATTACKS),
    ("backdoors.demos", SECTIONS),
    ("backdoors.detectors", DETECTORS),
    ("backdoors.experiments", EXPERIMENTS),
]


@pytest.mark.parametrize(("package", "registry"), PACKAGE_REGISTRIES)
def test_every_public_module_of_a_registry_package_is_listed(package, registry):
    pkg = __import__(package, fromlist=["__path__"])
    public = {
        f"{package}.{m.name}"
        for m in pkgutil.iter_modules(pkg.__path__)
        if not m.name.startswith("_") and not m.name.endswith("_report")
    }
    assert public - set(registry.modules) == set(), f"modules missing from {registry.kind} list"
    assert set(registry.modules) - public == set(), "listed modules that do not exist"


def _names_in_fresh_processes(*codes: str) -> list[dict[str, list[str]]]:
    """The registered artifact and key kinds after running each of ``codes`` in its own fresh
    interpreter (the interpreters run side by side)."""
    procs = []
    for code in codes:
        prog = (
            "import json, importlib, pkgutil, backdoors\n"
            "from backdoors.artifacts import files as io\n"
            f"{code}\n"
            "print(json.dumps({'artifacts': sorted(io.ARTIFACTS._items),"
            " 'keys': sorted(io.KEYS._items)}))\n"
        )
        procs.append(subprocess.Popen([sys.executable, "-c", prog], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))  # fmt: skip
    outs = []
    for p in procs:
        out, err = p.communicate()
        assert p.returncode == 0, err[-2000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    return outs


def test_kind_modules_register_every_model_and_key_kind():
    """Importing only io.KIND_MODULES registers every kind that any module registers."""
    everything, listed = _names_in_fresh_processes(
        "for m in pkgutil.walk_packages(backdoors.__path__, 'backdoors.'):\n"
        "    if '.cli' not in m.name and not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)",
        "io.import_kinds()",
    )
    assert listed == everything
    assert {"rff_classifier", "signature_classifier"} <= set(listed["artifacts"])


def test_registry_loads_only_the_listed_modules_once():
    reg: Registry[int] = Registry("thing", modules=("backdoors.metrics",))
    assert reg.names() == []  # metrics registers nothing here: loads without error
    with pytest.raises(backdoors.errors.InvalidInputError, match="unknown thing 'x'"):
        reg.get("x")
    reg.register("a")(1)
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("a")(2)
    assert reg.get("a") == 1 and "a" in reg
