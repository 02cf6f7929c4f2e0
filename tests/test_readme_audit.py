"""The README's audit example runs as written: a plain nn.Sequential trained outside the
package, saved as a safetensors state dict with its spec, audited by the CLI."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from backdoors.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"


def _example() -> tuple[str, list[str]]:
    text = README.read_text(encoding="utf-8")
    part = text[text.index("## Auditing a model trained elsewhere") :]
    code = re.search(r"```python\n(.*?)```", part, re.S).group(1)
    cmd = re.search(r"```bash\n(.*?)```", part, re.S).group(1).strip()
    return code, shlex.split(cmd)


def test_readme_audit_example_runs_as_written(tmp_path, monkeypatch, capsys):
    code, argv = _example()
    assert argv[:2] == ["backdoors", "audit"]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    assert main(argv[1:]) == 0, capsys.readouterr().err
    res = json.loads((tmp_path / "audit.json").read_text())
    rows = res["detectors"]
    assert not [n for n, r in rows.items() if r["status"] == "error"]
    for name in ("neural_cleanse", "weight_stats", "strip", "spectral_signatures"):
        assert rows[name]["status"] == "scored", (name, rows[name])
    assert (tmp_path / "audit-report" / "report.html").is_file()
