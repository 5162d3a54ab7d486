"""One call from an observation to posterior trajectory samples (physical units).

Used by the command line, the app's worker thread and the benchmarks: checks the
inputs, builds the guidance, runs the sampler step by step (reporting progress
and the current denoised estimate, stopping on request) and returns samples.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from .diffusion.guidance import make_guidance
from .diffusion.local_score import LocalScoreModel
from .diffusion.sampler import Cancelled, Sampler, TrajectoryRecorder
from .observation import Observation, ObservationError

__all__ = ["assimilate", "Cancelled", "available_devices", "resolve_device", "DeviceError", "SamplingDiverged"]

# progress(step, total, estimate (N, L, *s) physical units on the CPU)
Progress = Callable[[int, int, torch.Tensor], None]


class SamplingDiverged(FloatingPointError):
    """The sampler produced non-finite values (an inaccurate model or too coarse a step)."""


class DeviceError(RuntimeError):
    """The requested device cannot be used."""


def available_devices() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def resolve_device(name: str = "auto") -> torch.device:
    name = str(name) if name is not None else "auto"
    if name in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError("CUDA was requested but no CUDA GPU is available on this machine")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise DeviceError(f"unknown device '{name}' (choose auto, cpu or cuda)")
    return torch.device(name)


def assimilate(model: LocalScoreModel, observation: Observation, n_samples: int, steps: int = 64,
               corrections: int = 1, guidance: str = "sda", tau: float = 0.5, gamma: float = 1e-2,
               device="cpu", seed: int = 0, progress: Optional[Progress] = None,
               should_stop: Optional[Callable[[], bool]] = None, preview_every: int = 1,
               zeta: float = 1.0, cg_iterations: int = 3, cuda_graph: bool = True,
               amp: bool = False, window_split: bool = True,
               recorder: Optional[TrajectoryRecorder] = None) -> torch.Tensor:
    """Posterior samples ``(n_samples, L, *state_shape)`` as a float32 CPU tensor.

    ``window_split=False`` differentiates through every window, not only those of
    observed states: the same samples at a higher cost (for comparisons).
    ``recorder`` (``TrajectoryRecorder([0, 1])``) keeps x(t) and x̂(t) of those samples at
    every step in ``recorder.trajectory`` (physical units; memory bound: see the sampler).
    """
    observation.validate(model.state_shape)
    if observation.length < model.window:
        raise ObservationError(
            f"the trajectory has {observation.length} states; this model needs at least 2k+1 = {model.window}")
    if n_samples < 1:
        raise ValueError("the number of samples must be ≥ 1")
    device = resolve_device(str(device)) if not isinstance(device, torch.device) else device
    if device.type == "cuda":
        # TF32 matmuls: ~3e-4 relative error, far below the sampler's own noise.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        # every call of a run has the same shapes: let cuDNN pick its fastest convolutions
        torch.backends.cudnn.benchmark = True
    model = model.to(device)
    model.autocast = bool(amp)
    guide = make_guidance(guidance, observation, model, device, gamma=gamma, zeta=zeta, cg_iterations=cg_iterations)
    if not window_split:
        guide.obs.split = None
    sampler = Sampler(model, guide, steps=steps, corrections=corrections, tau=tau, cuda_graph=cuda_graph)
    gen = torch.Generator(device=device).manual_seed(int(seed))
    x = torch.randn((n_samples, observation.length, *model.state_shape), generator=gen, device=device)
    for state in sampler.iterate(x, gen, should_stop, recorder=recorder):
        x = state.x
        if progress is not None and (state.step % preview_every == 0 or state.step == state.total):
            progress(state.step, state.total, model.denormalize(state.estimate).float().cpu())
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).flatten(1).any(1).sum())
        raise SamplingDiverged(f"sampling diverged: {bad} of {n_samples} samples hold NaN or infinity; "
                               f"try more steps, fewer corrections or a smaller τ, or another model")
    return model.denormalize(x).float().cpu()
