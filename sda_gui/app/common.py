"""Small helpers every panel shares: time formatting, devices, one-line messages, questions,
and how fast a CPU simulates a Kolmogorov flow.

Panels stand side by side; what more than one of them needs lives here, never in a
panel another imports.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

from . import engine

__all__ = ["format_eta", "available_devices", "one_line", "is_out_of_memory", "memory_hint", "ask_user",
           "default_confirm", "Confirm", "KOLMOGOROV_CPU_RATE", "kolmogorov_cpu_rate"]

#: Kolmogorov states per second of one trajectory on a CPU, measured at 128² and 256²;
#: the cost grows about as N^2.9 (FFTs on N² points, and a CFL step shrinking as 1/N).
#: The system panel's time estimate and the training data's chunking both use it.
KOLMOGOROV_CPU_RATE = {128: 6.0, 256: 0.8}


def kolmogorov_cpu_rate(resolution: int) -> float:
    """States per second of one trajectory at ``resolution``² on a CPU."""
    res = int(resolution)
    return KOLMOGOROV_CPU_RATE.get(res, KOLMOGOROV_CPU_RATE[128] * (128 / max(res, 1)) ** 2.9)


#: ``confirm(question) -> bool``: True to go on (and discard what the question names)
Confirm = Callable[[str], bool]


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


def one_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (an OSError's reason), else its type."""
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


#: what CPU allocators (torch, numpy) and CUDA say when memory runs out
_OOM_PHRASES = ("out of memory", "can't allocate memory", "cannot allocate memory", "unable to allocate",
                "failed to allocate", "std::bad_alloc")


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return any(phrase in text for phrase in _OOM_PHRASES)


def ask_user(parent, question: str, title: str = "SDA Studio") -> bool:
    """A Yes/No question in a dialog; True for Yes.

    Offscreen (scripts, ``--screenshot``) nobody can answer a dialog, which would wait
    forever: the question is then taken as answered Yes, as a script means it.
    """
    from PySide6.QtWidgets import QApplication, QMessageBox

    if QApplication.platformName() == "offscreen":
        return True
    answer = QMessageBox.question(parent, title, question,
                                  QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                  QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


def default_confirm(parent) -> Confirm:
    return lambda question: ask_user(parent, question)


def memory_hint(device: Optional[str] = None) -> str:
    """What helps when a run does not fit in memory."""
    base = "use fewer samples or a shorter trajectory"
    return base + (", or the CPU" if device and str(device).startswith("cuda") else "")
