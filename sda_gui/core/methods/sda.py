"""Score-based data assimilation (SDA) behind the method interface.

The posterior ``p(x_{1:L} | y)`` is sampled by the reverse diffusion of a
trained local score model, guided by the likelihood score (SDA, DPS or MMPS);
see ``core.assimilation`` and ``core.diffusion.sampler``. The members are the
sampler's independent samples; ``ctx.progress`` receives the denoised estimate
after every step.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..assimilation import assimilate
from .base import Method, MethodError, MethodResult, RunContext
from .registry import register_method

__all__ = ["SDA"]

GUIDANCES = ("sda", "dps", "mmps")


@register_method
class SDA(Method):
    name = "sda"
    title = "SDA"
    family = "diffusion"
    needs_model = True

    @dataclass
    class Settings:
        steps: int = 64
        corrections: int = 1
        guidance: str = "sda"
        tau: float = 0.25
        gamma: float = 1e-2
        cg_iterations: int = 3

    @classmethod
    def check_settings(cls, s, system) -> None:
        if s.steps < 1:
            raise MethodError("sda: steps must be ≥ 1")
        if s.corrections < 0:
            raise MethodError("sda: corrections must be ≥ 0")
        if s.guidance not in GUIDANCES:
            raise MethodError(f"sda: guidance must be one of {', '.join(GUIDANCES)}, got '{s.guidance}'")
        if s.tau <= 0:
            raise MethodError("sda: tau must be > 0")
        if s.gamma < 0:
            raise MethodError("sda: gamma must be ≥ 0")
        if s.cg_iterations < 1:
            raise MethodError("sda: cg_iterations must be ≥ 1")

    def run(self, ctx: RunContext) -> MethodResult:
        s = self.settings
        samples = assimilate(ctx.model, ctx.observation, ctx.n_members, steps=s.steps, corrections=s.corrections,
                             guidance=s.guidance, tau=s.tau, gamma=s.gamma, device=ctx.device, seed=ctx.seed,
                             progress=ctx.progress, should_stop=ctx.should_stop, cg_iterations=s.cg_iterations)
        return MethodResult(samples, {"network_calls_per_step": 1 + s.corrections, "k": ctx.model.k})
