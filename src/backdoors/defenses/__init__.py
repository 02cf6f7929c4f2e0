"""Defenses (paper §6-§7): evaluation-time immunization by smoothing, oblivious local
mitigation (Goldwasser-Shafer-Vafa-Vaikuntanathan 2024) and the robustness corollary.

:data:`DEFENSES` maps a name to a function ``(model, **params) -> mitigated model``.
"""

from __future__ import annotations

from backdoors.registry import Registry

DEFENSES: Registry = Registry("defense")


def _register() -> None:
    from backdoors.defenses import oblivious, smoothing

    if "smoothing" not in DEFENSES._items:
        DEFENSES.register("smoothing")(smoothing.immunize)
        DEFENSES.register("oblivious")(oblivious.mitigate)


_register()
