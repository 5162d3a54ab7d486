"""What the views show of a 2-D velocity field: its vorticity, computed by the core.

The plots and the observation editor draw Kolmogorov states as the vorticity
``ω = ∂v/∂x − ∂u/∂y`` (``core.systems.kolmogorov.vorticity``); the views call
these helpers and never the core themselves. Systems without a vorticity show
their first channel.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

__all__ = ["vorticity_frames", "vorticity_fn"]


def _core_vorticity(system):
    if getattr(system, "name", "") != "kolmogorov":
        return None
    try:
        from sda_gui.core.systems.kolmogorov import vorticity
    except ImportError:
        return None
    return vorticity


def vorticity_frames(system, x: np.ndarray) -> Optional[np.ndarray]:
    """Vorticity ``(…, X, Y)`` of velocity fields ``(…, 2, X, Y)``, or None when the system has none."""
    vorticity = _core_vorticity(system)
    if vorticity is None:
        return None
    import torch

    lead = x.shape[:-3]
    w = vorticity(torch.as_tensor(x.reshape(-1, *x.shape[-3:])))
    w = w.detach().cpu().numpy() if hasattr(w, "detach") else np.asarray(w)
    return w.reshape(*lead, *w.shape[-2:])


def vorticity_fn(system) -> Optional[Callable[[np.ndarray], np.ndarray]]:
    """``frame (2, X, Y) → ω (X, Y)`` for the system, if it has a vorticity."""
    if _core_vorticity(system) is None:
        return None
    return lambda frame: vorticity_frames(system, np.asarray(frame)[None])[0]
