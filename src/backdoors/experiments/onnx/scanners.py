"""What the model-file scanners users run today say about an ONNX file.

``modelscan`` (Protect AI) and ``modelaudit`` (promptfoo) look for unsafe *serialization*
(pickle opcodes, Lambda layers, custom operators, external data); neither executes or analyses
the graph's arithmetic. They are not dependencies of this package (their own dependencies
conflict with our pins): install them in a separate virtualenv and point
``BACKDOORS_SCANNERS_BIN`` at its ``bin`` folder (default: ``/work/scanners-venv/bin``, then
``PATH``). Missing scanners are reported as ``not installed``, never as a finding.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

DEFAULT_BIN = "/work/scanners-venv/bin"
#: Environment the scanners run with: modelaudit (promptfoo) sends usage telemetry unless
#: ``PROMPTFOO_DISABLE_TELEMETRY`` is set; every record states that it ran with it off.
NO_TELEMETRY = {"PROMPTFOO_DISABLE_TELEMETRY": "1", "NO_ANALYTICS": "1", "DO_NOT_TRACK": "1"}
TELEMETRY_NOTE = "off (" + ", ".join(f"{k}={v}" for k, v in NO_TELEMETRY.items()) + ")"


def _exe(name: str) -> str | None:
    folder = os.environ.get("BACKDOORS_SCANNERS_BIN", DEFAULT_BIN)
    cand = Path(folder) / name
    if cand.is_file() and os.access(cand, os.X_OK):
        return str(cand)
    return shutil.which(name)


def _run(cmd: list[str], timeout: float) -> tuple[int, str, str]:
    env = {**os.environ, **NO_TELEMETRY}
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    return p.returncode, p.stdout, p.stderr


def modelscan(path: str | os.PathLike, timeout: float = 120) -> dict[str, Any]:
    exe = _exe("modelscan")
    if exe is None:
        return {"status": "not installed"}
    rc, out, err = _run([exe, "-p", str(path), "-r", "json"], timeout)
    try:
        doc = json.loads(out[out.index("{") :])
    except ValueError:
        return {"status": "unreadable output", "returncode": rc, "stderr": err[-300:]}
    summary = doc.get("summary", {})
    skipped = summary.get("skipped", {}).get("skipped_files", [])
    return {
        "status": "ran",
        "returncode": rc,
        "issues": len(doc.get("issues", [])),
        "scanned": summary.get("scanned", {}).get("total_scanned", 0),
        "skipped": [s.get("description", "") for s in skipped][:3],
    }


def modelaudit(path: str | os.PathLike, timeout: float = 180) -> dict[str, Any]:
    exe = _exe("modelaudit")
    if exe is None:
        return {"status": "not installed"}
    rc, out, err = _run([exe, "scan", "--format", "json", "--no-cache", str(path)], timeout)
    try:
        doc = json.loads(out[out.index("{") :])
    except ValueError:
        return {
            "status": "unreadable output",
            "telemetry": TELEMETRY_NOTE,
            "returncode": rc,
            "stderr": err[-300:],
        }
    issues = doc.get("issues", [])
    failed = [c.get("name", "") for c in doc.get("checks", []) if c.get("status") == "failed"]
    return {
        "status": "ran",
        "telemetry": TELEMETRY_NOTE,
        "returncode": rc,
        "issues": [f"{i.get('severity')}: {i.get('message', '')[:160]}" for i in issues][:10],
        "issues_by_severity": _count(i.get("severity", "?") for i in issues),
        "failed_checks": failed[:10],
        "checks": len(doc.get("checks", [])),
    }


def _count(xs: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in xs:
        out[x] = out.get(x, 0) + 1
    return out


def scan(path: str | os.PathLike) -> dict[str, Any]:
    """Both scanners on one file (with telemetry off: :data:`NO_TELEMETRY`)."""
    return {
        "modelscan": modelscan(path),
        "modelaudit": modelaudit(path),
        "telemetry": TELEMETRY_NOTE,
    }
