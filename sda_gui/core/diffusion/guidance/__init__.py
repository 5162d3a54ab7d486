"""Likelihood guidance: SDA (default), DPS and MMPS, interchangeable in any sampler."""

from __future__ import annotations

from .base import Guidance, ObservationModel
from .dps import DPSGuidance
from .mmps import MMPSGuidance, conjugate_gradient
from .sda import SDAGuidance

__all__ = ["Guidance", "ObservationModel", "SDAGuidance", "DPSGuidance", "MMPSGuidance",
           "conjugate_gradient", "GUIDANCES", "make_guidance"]

GUIDANCES = {"sda": SDAGuidance, "dps": DPSGuidance, "mmps": MMPSGuidance}


def make_guidance(name: str, observation, model, device="cpu", gamma: float = 1e-2,
                  zeta: float = 1.0, cg_iterations: int = 3) -> Guidance:
    obs = ObservationModel(observation, model, device)
    if name == "sda":
        return SDAGuidance(obs, gamma=gamma)
    if name == "dps":
        return DPSGuidance(obs, zeta=zeta)
    if name == "mmps":
        return MMPSGuidance(obs, iterations=cg_iterations)
    raise ValueError(f"unknown guidance '{name}' (choose sda, dps or mmps)")
