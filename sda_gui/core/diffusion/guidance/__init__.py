"""Likelihood guidance: SDA (default), DPS and MMPS, interchangeable in any sampler."""

from __future__ import annotations

from .base import Guidance, ObservationModel
from .dps import DPSGuidance
from .dynamics import DynamicsConsistency, gamma_for_steps
from .mmps import MMPSGuidance, conjugate_gradient
from .sda import SDAGuidance

__all__ = ["Guidance", "ObservationModel", "SDAGuidance", "DPSGuidance", "MMPSGuidance",
           "conjugate_gradient", "GUIDANCES", "make_guidance", "DynamicsConsistency", "gamma_for_steps"]

GUIDANCES = {"sda": SDAGuidance, "dps": DPSGuidance, "mmps": MMPSGuidance}


def make_guidance(name: str, observation, model, device="cpu", gamma: float = 1e-2,
                  zeta: float = 1.0, cg_iterations: int = 3, dynamics=None) -> Guidance:
    """``dynamics``: ``(system, std, γ)`` adds the system's transition to SDA's likelihood."""
    obs = ObservationModel(observation, model, device)
    if dynamics is not None and name != "sda":
        raise ValueError(f"dynamics consistency works with the SDA guidance only, not {name}")
    if name == "sda":
        term = None
        if dynamics is not None:
            system, std, dyn_gamma = dynamics
            term = DynamicsConsistency(system, obs.mean, obs.scale, std, dyn_gamma)
        return SDAGuidance(obs, gamma=gamma, dynamics=term)
    if name == "dps":
        return DPSGuidance(obs, zeta=zeta)
    if name == "mmps":
        return MMPSGuidance(obs, iterations=cg_iterations)
    raise ValueError(f"unknown guidance '{name}' (choose sda, dps or mmps)")
