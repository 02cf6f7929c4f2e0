"""Open an HTML report in headless Chromium and report what a reader sees.

No Python browser driver: a copy of the page with a small script appended is loaded with
``chromium --headless --dump-dom``; on ``load`` the script writes, into the DOM, each image's
``naturalWidth`` (0 = broken), the tables and their rows, paragraphs that still contain raw
Markdown table pipes, the body's font family and whether the page is wider than the window.
``--screenshot`` renders the original page to a PNG.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
WINDOW = (1366, 900)  # a laptop screen

PROBE = """
<script>
window.addEventListener('load', () => {
  const r = {
    images: [...document.images].map(i => ({src: i.getAttribute('src'), w: i.naturalWidth})),
    tables: [...document.querySelectorAll('table')].map(t => ({
      rows: t.querySelectorAll('tr').length, header: t.querySelectorAll('th').length})),
    raw_pipes: [...document.querySelectorAll('p, pre')].map(p => p.textContent)
      .filter(t => /\\|\\s*-{3,}\\s*\\|/.test(t)).length,
    pre: document.querySelectorAll('pre').length,
    paragraphs: document.querySelectorAll('p').length,
    font: getComputedStyle(document.body).fontFamily,
    font_px: parseFloat(getComputedStyle(document.body).fontSize),
    overflow_px: document.documentElement.scrollWidth - document.documentElement.clientWidth,
  };
  const out = document.createElement('pre');
  out.id = 'h4-probe';
  out.textContent = JSON.stringify(r);
  document.body.appendChild(out);
});
</script>
"""


def chromium() -> str | None:
    """A Chromium/Chrome executable: ``$BACKDOORS_CHROMIUM`` or the first one on PATH."""
    env = os.environ.get("BACKDOORS_CHROMIUM")
    if env:
        return env
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


def require_chromium() -> str:
    exe = chromium()
    if exe is None:
        pytest.skip(
            "no Chromium on PATH (install the `chromium` package, e.g. apt-get install "
            "chromium, as .ci/run does, or set BACKDOORS_CHROMIUM)"
        )
    return exe


def _run(
    exe: str, args: list[str], profile: str, window: tuple[int, int] = WINDOW
) -> subprocess.CompletedProcess:
    w, h = window
    cmd = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--window-size={w},{h}",
        "--virtual-time-budget=5000",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def inspect(page: Path, screenshot: Path | None = None, shot_height: int = 2400) -> dict:
    """What Chromium renders for ``page``; optionally a PNG screenshot of its top
    ``shot_height`` pixels at the laptop window's width."""
    exe = require_chromium()
    page = Path(page).resolve()
    probe = page.with_name(f".probe-{page.name}")
    text = page.read_text(encoding="utf-8")
    probe.write_text(text.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    with tempfile.TemporaryDirectory() as profile:
        try:
            res = _run(exe, ["--dump-dom", probe.as_uri()], profile)
        finally:
            probe.unlink()
        m = re.search(r'<pre id="h4-probe">(.*?)</pre>', res.stdout, re.S)
        assert m, f"Chromium did not run the probe (rc {res.returncode}): {res.stderr[-500:]}"
        found = json.loads(m.group(1).replace("&amp;", "&").replace("&lt;", "<"))
        if screenshot is not None:
            args = [f"--screenshot={Path(screenshot).resolve()}", page.as_uri()]
            shot = _run(exe, args, profile, (WINDOW[0], shot_height))
            assert Path(screenshot).is_file(), f"no screenshot: {shot.stderr[-500:]}"
    return found


def assert_readable(found: dict, n_images: int | None = None, min_tables: int = 1) -> None:
    """Every image loads, tables are tables, prose is proportional and fits a laptop."""
    broken = [i["src"] for i in found["images"] if i["w"] <= 0]
    assert not broken, f"images that do not load: {broken}"
    if n_images is not None:
        assert len(found["images"]) == n_images
    assert len(found["tables"]) >= min_tables, found["tables"]
    assert all(t["rows"] >= 2 and t["header"] >= 1 for t in found["tables"]), found["tables"]
    assert found["raw_pipes"] == 0, "raw Markdown table pipes in the prose"
    assert found["paragraphs"] > 0
    first = found["font"].split(",")[0].strip().strip("\"'").lower()
    assert "mono" not in first and first not in ("courier", "courier new"), found["font"]
    assert found["font_px"] >= 14
    assert found["overflow_px"] <= 0, f"page wider than a {WINDOW[0]}px window"
