"""Small helpers every panel shares: time formatting and the devices the engine can use.

Panels stand side by side; what more than one of them needs lives here, never in a
panel another imports.
"""

from __future__ import annotations

import math

from . import engine

__all__ = ["format_eta", "available_devices"]


def format_eta(seconds: float) -> str:
    """``"42 s"``, ``"3 min 07 s"``, or ``"…"`` when the time is not known yet."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "…"
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


def available_devices() -> list[str]:
    """Devices the engine can use; only the CPU is known before the engine has loaded."""
    if not engine.ENGINE.ready():
        return ["cpu"]
    try:
        from sda_gui.core.assimilation import available_devices as core_devices
        return list(core_devices())
    except ImportError:
        return ["cpu"]
