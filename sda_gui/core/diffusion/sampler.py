"""Predictor–corrector sampler of the reverse VP SDE, run step by step.

Predictor (exponential integrator, i.e. DDIM) from ``t`` to ``s = t − Δ``:

    r = μ(s)/μ(t),   x ← r x + (σ(s) − r σ(t)) ε(x, t)

then ``C`` Langevin corrections at ``s``:

    δ = τ / mean(ε²),   x ← x − σ(s) (δ ε + √(2δ) z),   z ~ N(0, I)

where ``ε`` is the (guided) noise estimate, re-derived from a denoised estimate
``x̂`` bounded to ``±clip`` normalised units (10 by default). Uniform steps from ``t = 1`` to 0;
cost per step: ``1 + C`` network calls over all windows (``network_calls`` counts a run). ``iterate`` yields after
every step so a caller can report progress, preview the denoised estimate and
stop between network calls (``should_stop`` is checked before each one).

Near the end of the diffusion (``s < final_span``, 0.125 by default) a step takes
``final_corrections`` corrections instead of ``C`` when that is set: the Langevin
chain then mixes where the posterior is narrowest, which pulls the samples' states
closer to one trajectory of the dynamics (``docs/benchmarks.md``, dense Lorenz-96).
The corrections are unadjusted Langevin steps, biased by O(τ): more is not always better
(there, 8 per step on the last 8 of 64 steps helps, 32 hurts).

On CUDA the (guided) call is recorded once as a CUDA graph and replayed at every
step (``cuda_graph.py``) when the guidance allows it; the samples are the same.

Recording (the diffusion-time scrubber): a ``TrajectoryRecorder`` handed to
``iterate`` keeps, for a few chosen samples, the state ``x(t_i)`` and the denoised
estimate ``x̂(t_i)`` at the times ``t_i = 1 − i/steps`` (``i = 0 … steps``; at
``t = 0`` both are the sample), in physical units, float32, on the CPU. One frame
takes ``2 · R · L · |state| · 4`` bytes for ``R`` recorded samples; beyond
``max_bytes`` (``RECORD_MAX_BYTES`` = 256 MiB by default) the recording is thinned
to evenly spaced steps (the first and the last always kept), and a bound that
cannot hold even those two frames is refused. Without a recorder nothing is copied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
import torch

from .cuda_graph import capture
from .guidance import Guidance
from .local_score import LocalScoreModel

__all__ = ["Sampler", "SamplerStep", "Cancelled", "Trajectory", "TrajectoryRecorder", "RECORD_MAX_BYTES"]

#: the most memory a recording may hold by default (x and x̂ of every kept step)
RECORD_MAX_BYTES = 256 * 2**20


class Cancelled(Exception):
    """Raised inside the sampler when ``should_stop`` returned True."""


@dataclass
class SamplerStep:
    step: int
    total: int
    x: torch.Tensor          # current x(t) in normalised units
    estimate: torch.Tensor   # denoised estimate x̂ in normalised units


@dataclass
class Trajectory:
    """x(t) and x̂(t) of recorded samples through the reverse diffusion (physical units, CPU)."""

    times: torch.Tensor      # (F,) diffusion times, from 1 (noise) down to 0 (sample)
    x: torch.Tensor          # (F, R, L, *state_shape) float32
    x_hat: torch.Tensor      # (F, R, L, *state_shape) float32
    indices: tuple           # which samples of the run were recorded
    steps: tuple             # sampler step index of each frame (0 … steps)

    @property
    def nbytes(self) -> int:
        return int(self.x.numel() * self.x.element_size() + self.x_hat.numel() * self.x_hat.element_size())


class TrajectoryRecorder:
    """Keeps x(t) and x̂(t) of samples ``indices`` at (up to) every step, within ``max_bytes``."""

    def __init__(self, indices: Sequence[int], max_bytes: int = RECORD_MAX_BYTES):
        self.indices = tuple(int(i) for i in indices)
        if not self.indices:
            raise ValueError("record at least one sample")
        if min(self.indices) < 0:
            raise ValueError("recorded sample indices must be ≥ 0")
        self.max_bytes = int(max_bytes)
        self.trajectory: Optional[Trajectory] = None
        self._slot: dict = {}

    @staticmethod
    def frame_bytes(n_recorded: int, sample_shape: Sequence[int]) -> int:
        """Bytes of one frame: x and x̂ of ``n_recorded`` samples of shape ``(L, *state_shape)``."""
        return 2 * 4 * int(n_recorded) * int(np.prod(tuple(sample_shape)))

    def plan(self, steps: int, shape: tuple) -> np.ndarray:
        """The step indices kept for a run of ``steps`` steps on a batch ``shape = (N, L, *s)``;
        ValueError when the samples do not exist or two frames exceed ``max_bytes``."""
        n = int(shape[0])
        if max(self.indices) >= n:
            raise ValueError(f"cannot record sample {max(self.indices)} of a run of {n} samples")
        per_frame = self.frame_bytes(len(self.indices), shape[1:])
        fit = self.max_bytes // per_frame
        if fit < 2:
            raise ValueError(f"recording {len(self.indices)} sample(s) takes {per_frame / 2**20:.1f} MiB per step, "
                             f"more than the bound of {self.max_bytes / 2**20:.0f} MiB allows: record fewer samples")
        return np.unique(np.linspace(0, steps, int(min(steps + 1, fit))).round().astype(int))

    def start(self, steps: int, shape: tuple, denormalize: Callable) -> None:
        """Allocates the frames of a run (``plan``); called by ``Sampler.iterate``."""
        kept = self.plan(steps, shape)
        self._slot = {int(i): j for j, i in enumerate(kept)}
        self._denormalize = denormalize
        frames = (len(kept), len(self.indices), *shape[1:])
        self.trajectory = Trajectory(times=1.0 - torch.as_tensor(kept, dtype=torch.float32) / steps,
                                     x=torch.empty(frames, dtype=torch.float32),
                                     x_hat=torch.empty(frames, dtype=torch.float32),
                                     indices=self.indices, steps=tuple(int(i) for i in kept))

    def add(self, i: int, x: torch.Tensor, x_hat: torch.Tensor) -> None:
        """Frame of step ``i`` (time ``1 − i/steps``) when it is one kept; normalised inputs."""
        j = self._slot.get(int(i))
        if j is None:
            return
        idx = list(self.indices)
        self.trajectory.x[j] = self._denormalize(x[idx]).float().cpu()
        self.trajectory.x_hat[j] = self._denormalize(x_hat[idx]).float().cpu()


class Sampler:
    def __init__(self, model: LocalScoreModel, guidance: Optional[Guidance] = None, steps: int = 256,
                 corrections: int = 0, tau: float = 0.25, clip: Optional[float] = 10.0,
                 cuda_graph: bool = True, final_corrections: Optional[int] = None, final_span: float = 0.125):
        if steps < 1:
            raise ValueError("steps must be ≥ 1")
        if corrections < 0:
            raise ValueError("corrections must be ≥ 0")
        if final_corrections is not None and final_corrections < 0:
            raise ValueError("final corrections must be ≥ 0")
        if not 0 <= final_span <= 1:
            raise ValueError("the final span must be within [0, 1]")
        self.model = model
        self.guidance = guidance
        self.steps = int(steps)
        self.corrections = int(corrections)
        self.tau = float(tau)
        #: corrections of the steps that end below ``final_span`` (None: ``corrections`` there too)
        self.final_corrections = None if final_corrections is None else int(final_corrections)
        self.final_span = float(final_span)
        #: bound on |x̂| in normalised units (None: no bound), see ``eps``
        self.clip = clip
        #: replay the network call as a CUDA graph on CUDA devices where the guidance allows it
        self.cuda_graph = bool(cuda_graph)

    def corrections_at(self, s: float) -> int:
        """Corrections of the step that ends at diffusion time ``s``."""
        # a margin below the span: a grid time equal to it (1 − 56/64 = 0.125) is not "below" in float32
        if self.final_corrections is not None and s < self.final_span - 1e-6:
            return self.final_corrections
        return self.corrections

    def correction_plan(self) -> list[int]:
        """Corrections of each step, from the grid's times on the CPU (no device sync per step)."""
        ends = torch.linspace(1.0, 0.0, self.steps + 1)[1:].tolist()
        return [self.corrections_at(s) for s in ends]

    def network_calls(self) -> int:
        """Network calls of a whole run: one per step plus its corrections."""
        return self.steps + sum(self.correction_plan())

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
                should_stop: Optional[Callable[[], bool]] = None,
                recorder: Optional[TrajectoryRecorder] = None) -> Iterator[SamplerStep]:
        """Runs from pure noise ``x = x(1)`` to ``x(0)``, yielding after each step.

        ``recorder`` (see the module docstring) receives ``x(t)`` and ``x̂(t)`` of its samples.
        """
        schedule = self.model.schedule
        if recorder is not None:
            recorder.start(self.steps, tuple(x.shape), self.model.denormalize)
        times = torch.linspace(1.0, 0.0, self.steps + 1, device=x.device, dtype=x.dtype)
        dims = tuple(range(1, x.ndim))
        plan = self.correction_plan()

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
            if recorder is not None:
                recorder.add(i, x, estimate)
            r = mu_s / mu_t
            x = r * x + (sigma_s - r * sigma_t) * e
            for _ in range(plan[i]):
                e = evaluate(x, s)
                z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
                delta = self.tau / e.square().mean(dim=dims, keepdim=True)
                x = x - sigma_s * (delta * e + torch.sqrt(2 * delta) * z)
            if recorder is not None and i + 1 == self.steps:
                recorder.add(self.steps, x, x)   # at t = 0 the estimate of a sample is the sample
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
