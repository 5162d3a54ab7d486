"""One call from an observation to posterior trajectory samples (physical units).

Used by the command line, the app's worker thread and the benchmarks: checks the
inputs, builds the guidance, runs the sampler step by step (reporting progress
and the current denoised estimate, stopping on request) and returns samples.
Before sampling it sizes the window chunks of the network calls within a memory
budget (``LocalScoreModel.plan_chunks``) and, on the CPU, lets the process reuse the
memory a call frees (``reuse_freed_memory``); neither changes a sample.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from .diffusion.guidance import gamma_for_steps, make_guidance
from .diffusion.local_score import FOLDS, LocalScoreModel
from .diffusion.sampler import Cancelled, Sampler, TrajectoryRecorder
from .observation import Observation, ObservationError

__all__ = ["assimilate", "reuse_freed_memory", "Cancelled", "available_devices", "resolve_device", "DeviceError",
           "SamplingDiverged"]

# progress(step, total, estimate (N, L, *s) physical units on the CPU)
Progress = Callable[[int, int, torch.Tensor], None]


class SamplingDiverged(FloatingPointError):
    """The sampler produced non-finite values (an inaccurate model or too coarse a step)."""


class DeviceError(RuntimeError):
    """The requested device cannot be used."""


#: glibc's mallopt parameters (malloc.h) and the values ``reuse_freed_memory`` sets
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD, _TRIM_THRESHOLD = 32 * 2**20, 512 * 2**20
_malloc_tuned: Optional[bool] = None


def reuse_freed_memory() -> bool:
    """Lets this process reuse the memory a network call frees (glibc only; once per process).

    glibc maps blocks from 128 KiB (its threshold then follows the largest freed block)
    straight from the system and unmaps them when freed, and it trims the heap's free
    top: every call then faults in fresh zeroed pages. A 64-step Lorenz-63 run took 1 M
    page faults, 12 % of its CPU time. Blocks up to 32 MiB from the heap, and trimming
    only past 512 MiB free, leave the freed chunks for the next call. True when set.
    """
    global _malloc_tuned
    if _malloc_tuned is None:
        _malloc_tuned = False
        try:
            import ctypes
            import ctypes.util

            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _malloc_tuned = bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and \
                bool(libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
        except (OSError, AttributeError):   # not glibc (macOS, Windows, musl): nothing to tune
            pass
    return _malloc_tuned


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
               recorder: Optional[TrajectoryRecorder] = None,
               memory_budget_bytes: Optional[int] = None,
               final_corrections: Optional[int] = None, dynamics=None, fold: str = "centre") -> torch.Tensor:
    """Posterior samples ``(n_samples, L, *state_shape)`` as a float32 CPU tensor.

    ``window_split=False`` differentiates through every window, not only those of
    observed states: the same samples at a higher cost (for comparisons).
    ``recorder`` (``TrajectoryRecorder([0, 1])``) keeps x(t) and x̂(t) of those samples at
    every step in ``recorder.trajectory`` (physical units; memory bound: see the sampler).
    ``memory_budget_bytes`` bounds the network's activations of a call (default
    ``local_score.default_memory_budget``): the windows run in chunks sized from it
    (``LocalScoreModel.plan_chunks``), which changes no sample. ``final_corrections``
    replaces ``corrections`` on the steps that end below t = 0.125 (see the sampler).
    ``dynamics = (system, std, γ)`` adds the system's transition to the SDA guidance
    (``guidance.dynamics``; every window is then differentiated); below 32 steps its γ
    grows as (32/steps)³, or the term would overshoot, and above 64 it falls, to γ/6 at
    256 steps (``gamma_for_steps``). ``fold``: how the windows' outputs make the trajectory's
    (``local_score.fold_windows``: ``"centre"``, ``"mean"`` or ``"interior"``).
    """
    observation.validate(model.state_shape)
    if observation.length < model.window:
        raise ObservationError(
            f"the trajectory has {observation.length} states; this model needs at least 2k+1 = {model.window}")
    if n_samples < 1:
        raise ValueError("the number of samples must be ≥ 1")
    if fold not in FOLDS:
        raise ValueError(f"fold must be one of {', '.join(FOLDS)}, got {fold!r}")
    device = resolve_device(str(device)) if not isinstance(device, torch.device) else device
    if device.type == "cuda":
        # TF32 matmuls: ~3e-4 relative error, far below the sampler's own noise.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        # every call of a run has the same shapes: let cuDNN pick its fastest convolutions
        torch.backends.cudnn.benchmark = True
    if device.type == "cpu":
        reuse_freed_memory()
    model = model.to(device)
    model.autocast = bool(amp)
    model.fold = fold     # before the guidance, whose window split depends on it
    model.plan_chunks(memory_budget_bytes)
    if dynamics is not None:
        system, std, dyn_gamma = dynamics
        dynamics = (system, std, gamma_for_steps(dyn_gamma, steps))
    guide = make_guidance(guidance, observation, model, device, gamma=gamma, zeta=zeta, cg_iterations=cg_iterations,
                          dynamics=dynamics)
    if not window_split:
        guide.obs.split = None
    sampler = Sampler(model, guide, steps=steps, corrections=corrections, tau=tau, cuda_graph=cuda_graph,
                      final_corrections=final_corrections)
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
