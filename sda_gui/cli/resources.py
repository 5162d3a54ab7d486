"""CPU threads and memory: how many threads a run gets, whether it fits, and out-of-memory errors.

Threads: ``--threads auto`` takes the cores that are idle now (``core.threads``); a
number sets them.

Memory: ``estimate_*`` give a rough lower bound of a run's peak (the arrays that
scale with samples × window × state size, times a factor for the working copies);
``check_fits`` refuses a run whose estimate exceeds the memory free now
(``MemAvailable``, the address-space limit and the cgroup limit on the CPU, free
device memory on CUDA) with one line and a suggestion. What slips past the
estimate is caught as an out-of-memory error (``is_out_of_memory``) and reported
the same way.
"""

from __future__ import annotations

import math
import re
import resource
from typing import Optional

from sda_gui.core.threads import apply_threads, auto_threads, usable_cores

from .checks import CliError

__all__ = ["usable_cores", "auto_threads", "parse_threads", "apply_threads", "available_bytes", "check_fits",
           "is_out_of_memory", "gib", "OOM_HINTS", "oom_hint", "oom_summary", "simulation_bytes", "method_bytes"]


def parse_threads(value) -> int:
    text = str(value).strip().lower()
    if text == "auto":
        return auto_threads()
    try:
        n = int(text)
    except ValueError:
        raise CliError(f"--threads must be a number ≥ 1 or auto, got '{value}'") from None
    if n < 1:
        raise CliError(f"--threads must be ≥ 1, got {n}")
    return n


def gib(n: float) -> str:
    return f"{n / 2 ** 30:.1f} GiB" if n >= 2 ** 28 else f"{n / 2 ** 20:.0f} MiB"


def _meminfo_available() -> Optional[int]:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _address_space_left() -> Optional[int]:
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return max(0, soft - int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_left() -> Optional[int]:
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        if limit == "max":
            return None
        with open("/sys/fs/cgroup/memory.current") as f:
            return max(0, int(limit) - int(f.read().strip()))
    except (OSError, ValueError):
        return None


def available_bytes(device=None) -> Optional[int]:
    """Memory a run may still take on ``device`` (None when unknown)."""
    if device is not None and getattr(device, "type", str(device)).startswith("cuda"):
        import torch

        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except RuntimeError:
            return None
    values = [v for v in (_meminfo_available(), _address_space_left(), _cgroup_left()) if v is not None]
    return min(values) if values else None


def check_fits(need_bytes: float, device, what: str, suggestion: str) -> None:
    free = available_bytes(device)
    if free is not None and need_bytes > free:
        where = "on the GPU" if str(getattr(device, "type", device)).startswith("cuda") else "here"
        raise CliError(f"{what} needs at least {gib(need_bytes)} of memory, {gib(free)} is free {where}; "
                       f"{suggestion}")


_OOM_WORDS = ("out of memory", "can't allocate", "cannot allocate", "unable to allocate", "failed to allocate",
              "defaultcpuallocator", "std::bad_alloc")


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    if isinstance(exc, RuntimeError):
        text = str(exc).lower()
        return any(word in text for word in _OOM_WORDS)
    return False


#: what to try when a command runs out of memory (``oom_hint`` adds --device cpu for a GPU run)
OOM_HINTS = {
    "simulate": "use fewer --trajectories or a shorter --length",
    "train": "use a smaller --batch-size, fewer or shorter trajectories, or a smaller network",
    "assimilate": "use fewer --samples (or --particles) or a shorter window",
    "compare": "use fewer --samples (or --particles) or a shorter window",
    "evaluate": "use fewer --samples or --particles",
    "bench": "use fewer --samples or a smaller --resolution or --batch",
}


def oom_hint(command: str, device) -> str:
    hint = OOM_HINTS.get(command, "use less data")
    return hint + (", or --device cpu" if str(getattr(device, "type", device)).startswith("cuda") else "")


def oom_summary(exc: BaseException) -> str:
    """How much the failed allocation asked for, when the message says so (torch, numpy, CUDA)."""
    text = str(exc)
    match = re.search(r"allocate (\d+) bytes", text)
    if match:
        return f"an allocation of {gib(int(match.group(1)))} failed"
    match = re.search(r"allocate ([\d.]+ ?[KMGTP]i?B)", text, re.IGNORECASE)
    return f"an allocation of {match.group(1)} failed" if match else "an allocation failed"


def simulation_bytes(system, trajectories: int, length: int) -> float:
    """The trajectories (float32) twice — the tensor and the file image — plus a fine-grid solver's state."""
    size = math.prod(system.state_shape)
    out = 4.0 * trajectories * length * size
    fine = 4.0 * 40 * trajectories * getattr(system, "resolution", 0) ** 2
    return 2 * out + fine


def method_bytes(family: str, n_members: int, length: int, state_size: int, particles: int = 0) -> float:
    """A floor for one method's run: particle paths (float64, resampled copies), a diffusion sampler's
    working copies and network activations, or an ensemble's states and covariances."""
    if family == "particle":
        return 8.0 * 3 * max(particles, 1) * length * state_size
    if family == "diffusion":
        return 4.0 * 32 * n_members * length * state_size
    if family == "variational":
        # weak-constraint 4D-Var controls whole trajectories: L-BFGS keeps 10 pairs of them per member
        return 8.0 * 32 * n_members * length * state_size + 8.0 * n_members ** 2 * length
    return 8.0 * 8 * n_members * length * state_size + 8.0 * n_members ** 2 * length
