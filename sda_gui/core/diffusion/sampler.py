"""Predictor–corrector sampler of the reverse VP SDE, run step by step.

Predictor (exponential integrator, i.e. DDIM) from ``t`` to ``s = t − Δ``:

    r = μ(s)/μ(t),   x ← r x + (σ(s) − r σ(t)) ε(x, t)

then ``C`` Langevin corrections at ``s``:

    δ = τ / mean(ε²),   x ← x − σ(s) (δ ε + √(2δ) z),   z ~ N(0, I)

where ``ε`` is the (guided) noise estimate, re-derived from a denoised estimate
``x̂`` bounded to ``±clip`` normalised units (10 by default). Uniform steps from ``t = 1`` to 0;
cost per step: ``1 + C`` network calls over all windows. ``iterate`` yields after
every step so a caller can report progress, preview the denoised estimate and
stop between network calls (``should_stop`` is checked before each one).

On CUDA the (guided) call is recorded once as a CUDA graph and replayed at every
step (``cuda_graph.py``) when the guidance allows it; the samples are the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import torch

from .cuda_graph import capture
from .guidance import Guidance
from .local_score import LocalScoreModel

__all__ = ["Sampler", "SamplerStep", "Cancelled"]


class Cancelled(Exception):
    """Raised inside the sampler when ``should_stop`` returned True."""


@dataclass
class SamplerStep:
    step: int
    total: int
    x: torch.Tensor          # current x(t) in normalised units
    estimate: torch.Tensor   # denoised estimate x̂ in normalised units


class Sampler:
    def __init__(self, model: LocalScoreModel, guidance: Optional[Guidance] = None, steps: int = 256,
                 corrections: int = 0, tau: float = 0.25, clip: Optional[float] = 10.0,
                 cuda_graph: bool = True):
        if steps < 1:
            raise ValueError("steps must be ≥ 1")
        if corrections < 0:
            raise ValueError("corrections must be ≥ 0")
        self.model = model
        self.guidance = guidance
        self.steps = int(steps)
        self.corrections = int(corrections)
        self.tau = float(tau)
        #: bound on |x̂| in normalised units (None: no bound), see ``eps``
        self.clip = clip
        #: replay the network call as a CUDA graph on CUDA devices where the guidance allows it
        self.cuda_graph = bool(cuda_graph)

    def graph_safe(self) -> bool:
        return self.cuda_graph and (self.guidance is None or getattr(self.guidance, "graph_safe", False))

    def eps(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.guidance is None:
            with torch.no_grad():
                e = self.model(x, t)
        else:
            e = self.guidance(self.model, x, t)
        if self.clip is None:
            return e
        # At high noise x̂ = (x − σ ε)/μ divides the network's error by μ(1) = 1e-3, and a
        # strong likelihood score can push it further; data live within a few normalised
        # units, so bounding x̂ (and re-deriving ε from it) keeps few-step runs stable.
        mu, sigma = self.model.schedule(t)
        x_hat = ((x - sigma * e) / mu).clamp(-self.clip, self.clip)
        return (x - mu * x_hat) / sigma

    def iterate(self, x: torch.Tensor, generator: Optional[torch.Generator] = None,
                should_stop: Optional[Callable[[], bool]] = None) -> Iterator[SamplerStep]:
        """Runs from pure noise ``x = x(1)`` to ``x(0)``, yielding after each step."""
        schedule = self.model.schedule
        times = torch.linspace(1.0, 0.0, self.steps + 1, device=x.device, dtype=x.dtype)
        dims = tuple(range(1, x.ndim))

        captured = None
        use_graph = x.is_cuda and self.graph_safe()

        def evaluate(x, t):
            nonlocal captured, use_graph
            if should_stop is not None and should_stop():
                raise Cancelled()
            if use_graph:
                if captured is None:
                    captured = capture(self.eps, x, t)
                    use_graph = captured is not None
                if captured is not None:
                    return captured(x, t)
            return self.eps(x, t)

        for i in range(self.steps):
            t, s = times[i], times[i + 1]
            mu_t, sigma_t = schedule(t)
            mu_s, sigma_s = schedule(s)
            e = evaluate(x, t)
            estimate = (x - sigma_t * e) / mu_t
            r = mu_s / mu_t
            x = r * x + (sigma_s - r * sigma_t) * e
            for _ in range(self.corrections):
                e = evaluate(x, s)
                z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
                delta = self.tau / e.square().mean(dim=dims, keepdim=True)
                x = x - sigma_s * (delta * e + torch.sqrt(2 * delta) * z)
            yield SamplerStep(i + 1, self.steps, x.detach(), estimate.detach())

    def sample(self, shape: tuple, generator: Optional[torch.Generator] = None, device="cpu",
               should_stop=None, callback=None) -> torch.Tensor:
        """Draws ``shape = (N, L, *state_shape)`` samples in normalised units."""
        x = torch.randn(shape, generator=generator, device=device)
        for step in self.iterate(x, generator, should_stop):
            x = step.x
            if callback is not None:
                callback(step)
        return x
