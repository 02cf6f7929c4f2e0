"""The README's command-line block runs as written.

The block after ``<!-- cli-example`` is parsed, not copied: editing the README changes what
runs. ``python -c`` lines run in-process, ``backdoors`` lines through ``backdoors.cli.main``
(exit 0 required), ``mkdir -p`` creates folders. The default run replaces the experiment
line (about a minute) by a small record at the same path; the slow run executes it too.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from backdoors.artifacts import files, records
from backdoors.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def cli_block() -> list[str]:
    text = README.read_text()
    m = re.search(r"<!-- cli-example.*?-->\s*```bash\n(.*?)```", text, re.S)
    assert m, "README lost its cli-example block"
    return [ln for ln in m.group(1).splitlines() if ln.strip()]


def run_block(tmp_path: Path, capsys, monkeypatch, run_experiments: bool) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    outputs: dict[str, str] = {}
    for line in cli_block():
        if line.startswith("python -c "):
            exec(compile(shlex.split(line)[2], "<README>", "exec"), {})
            continue
        argv = shlex.split(line, comments=True)
        if argv[:2] == ["mkdir", "-p"]:
            for d in argv[2:]:
                os.makedirs(d, exist_ok=True)
            continue
        assert argv[0] == "backdoors", f"README line not understood: {line}"
        if argv[1] == "experiment" and "--json" in argv and not run_experiments:
            path = argv[argv.index("--json") + 1]
            files.write_json(path, records.make_record(argv[2], {}, 0, {"m": 1.0}, {}))
            continue
        code = main(argv[1:])
        out = capsys.readouterr()
        assert code == 0, (line, out.err)
        outputs[line] = out.out
    return outputs


def _check(tmp_path: Path, outputs: dict[str, str]) -> None:
    verify = next(v for k, v in outputs.items() if k.startswith("backdoors verify"))
    assert json.loads(verify)["triggered"] == 100
    pred = next(v for k, v in outputs.items() if "predict bd.safetensors triggered" in k)
    assert set(json.loads(pred)["labels"]) == {3}
    assert len(np.load(tmp_path / "labels.npy")) == 100
    assert (tmp_path / "exp" / "report" / "report.html").is_file()
    assert oct((tmp_path / "bd.key").stat().st_mode & 0o777) == "0o600"


def test_readme_cli_block_runs(tmp_path, capsys, monkeypatch):
    _check(tmp_path, run_block(tmp_path, capsys, monkeypatch, run_experiments=False))


@pytest.mark.slow
def test_readme_cli_block_runs_with_its_experiment(tmp_path, capsys, monkeypatch):
    _check(tmp_path, run_block(tmp_path, capsys, monkeypatch, run_experiments=True))
    assert json.loads((tmp_path / "exp" / "sig.json").read_text())["experiment"] == "signature"
