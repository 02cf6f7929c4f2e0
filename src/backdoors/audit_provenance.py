"""Provenance checks of ``backdoors audit``: signatures that sit beside the model file."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def check(
    model_path: Path, publisher: Path | None, signing_key: Path | None
) -> list[dict[str, Any]]:
    """Placeholder."""
    return []
