"""How much memory an assimilation needs, checked before it starts, and how much there is.

A run of ``N`` samples of ``L`` states of ``S`` numbers each (float32, 4 bytes) holds

- trajectory-sized arrays: the sampler's ``x``, its noise and denoised estimates, the
  guidance's buffers, the estimate copied to the CPU for the preview, the final
  samples and what the results view draws of them —
  ``TRAJECTORY_COPIES · 4·N·L·S`` bytes;
- the network's activations: the model sees the ``N·(L − 2k)`` windows of ``2k + 1``
  states in one batch, and the guidance keeps the autograd graph of those it
  differentiates. One window's activations ``A`` (numbers) are measured by running the
  network once on one window with hooks that add up the size of every leaf layer's
  output; the graph, its gradient and the convolutions' workspace give
  ``GRAPH_FACTOR``: ``GRAPH_FACTOR · 4·N·(L − 2k)·A`` bytes.

``estimate = 4·N·(TRAJECTORY_COPIES·L·S + GRAPH_FACTOR·(L − 2k)·A)``. The factors
were calibrated against the peak resident memory of CPU runs, 4 steps, C = 1, 20 % of
the entries observed (``python -m sda_gui.app.run_memory MODEL:N:L …`` prints the
comparison): the activations alone came to 1.5× ``4·N·(L−2k)·A`` for Lorenz-96
(N = 256, both shipped models), 0.7× for Lorenz-63 (N = 1024; most windows run without
a graph) and 3.1× for the Kolmogorov U-Net (N = 2, L = 12). ``GRAPH_FACTOR = 3`` meets
the largest, so the estimate errs on the safe side for the others (2× and 4× too high).
What there is: the smallest of the
system's available memory, the process's address-space limit and its cgroup's limit
on the CPU; ``torch.cuda.mem_get_info`` on a GPU. A run that does not fit is refused
with the largest sample count that would, before anything is allocated.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

__all__ = ["MemoryPlan", "plan_run", "available_bytes", "activation_numbers", "format_bytes",
           "TRAJECTORY_COPIES", "GRAPH_FACTOR", "HEADROOM"]

TRAJECTORY_COPIES = 12
GRAPH_FACTOR = 3.0
#: fraction of the free memory a run may take (the UI, Python and the allocators need the rest)
HEADROOM = 0.7

_ACTIVATIONS: dict = {}   # id(model) → (model, activation numbers per window)


def format_bytes(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def activation_numbers(model) -> int:
    """Numbers in every leaf layer's output for one window (measured once per model)."""
    cached = _ACTIVATIONS.get(id(model))
    if cached is not None and cached[0] is model:
        return cached[1]
    import torch

    total = [0]

    def hook(_module, _inputs, output):
        if torch.is_tensor(output):
            total[0] += output.numel()

    net = model.net
    device = next(iter(net.parameters()), torch.zeros(())).device
    # leaves only: a block's output is also its last layer's, and must not count twice
    handles = [m.register_forward_hook(hook) for m in net.modules() if m is not net and not list(m.children())]
    try:
        x = torch.zeros((1, model.window, *model.state_shape), device=device)
        with torch.no_grad():
            net(x, torch.full((1,), 0.5, device=device))
    finally:
        for h in handles:
            h.remove()
    numbers = max(int(total[0]), model.window * _prod(model.state_shape))
    _ACTIVATIONS[id(model)] = (model, numbers)
    return numbers


def _prod(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _read_int(path: str) -> Optional[int]:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cpu_available() -> Optional[int]:
    limits = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                limits.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    # a container's limit (cgroup v2, then v1)
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < 2**60:
            limits.append(max(0, limit - usage))
            break
    # ulimit -v: the address space left to this process
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        try:
            vm = next(int(line.split()[1]) * 1024 for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines()
                      if line.startswith("VmSize:"))
        except (OSError, StopIteration, ValueError):
            vm = 0
        limits.append(max(0, soft - vm))
    return min(limits) if limits else None


def available_bytes(device: str) -> Optional[int]:
    """Free memory for a run on ``device`` ("cpu", "cuda", "cuda:1"); None when unknown."""
    if str(device).startswith("cuda"):
        try:
            import torch

            free, _ = torch.cuda.mem_get_info(torch.device(device))
            return int(free)
        except (RuntimeError, AssertionError, ValueError):
            return None
    return _cpu_available()


@dataclass
class MemoryPlan:
    needed: int                 # bytes the run would need
    available: Optional[int]    # bytes free on its device (None: unknown)
    max_samples: int            # the most samples that fit (n_samples when it fits or is unknown)
    n_samples: int
    device: str

    @property
    def fits(self) -> bool:
        return self.available is None or self.needed <= HEADROOM * self.available

    def message(self) -> str:
        """Why the run is refused and what helps (one line)."""
        where = "the GPU" if self.device.startswith("cuda") else "this computer"
        free = format_bytes(self.available or 0)
        text = (f"{self.n_samples} samples need about {format_bytes(self.needed)} of memory and {where} has "
                f"{free} free: ")
        if self.max_samples >= 1:
            text += f"use at most {self.max_samples} samples or a shorter trajectory"
        else:
            text += "even one sample does not fit; use a shorter trajectory"
        if self.device.startswith("cuda"):
            text += ", or the CPU"
        return text


def bytes_needed(model, n_samples: int, length: int) -> int:
    per_sample = _per_sample(model, length)
    return int(n_samples * per_sample)


def _per_sample(model, length: int) -> float:
    size = _prod(model.state_shape)
    windows = max(1, int(length) - 2 * model.k)
    return 4.0 * (TRAJECTORY_COPIES * int(length) * size + GRAPH_FACTOR * windows * activation_numbers(model))


def plan_run(model, n_samples: int, length: int, device: str) -> MemoryPlan:
    """What a run of ``n_samples`` × ``length`` states needs on ``device``, and whether it fits."""
    per_sample = _per_sample(model, length)
    needed = int(n_samples * per_sample)
    free = available_bytes(device)
    most = n_samples if free is None else int(HEADROOM * free // per_sample)
    return MemoryPlan(needed=needed, available=free, max_samples=min(int(n_samples), most),
                      n_samples=int(n_samples), device=str(device))


def calibrate(model_path: str, n_samples: int, length: int, steps: int = 4, corrections: int = 1) -> tuple[int, int]:
    """``(estimate, measured)`` bytes of one CPU run in a fresh process (peak resident memory
    above that of the process with the model loaded); run with ``python -m``."""
    import subprocess
    import sys

    code = f"""
import resource, torch, numpy as np
torch.set_num_threads(1)
from sda_gui.core.diffusion.checkpoint import load_checkpoint
from sda_gui.core.methods.registry import run_method
from sda_gui.core.observation import synthesize
from sda_gui.core.systems import make_system
model = load_checkpoint({model_path!r})
system = make_system(model.system['name'], **model.system.get('params', {{}}))
truth = np.zeros(({length}, *model.state_shape), np.float32)
mask = np.random.default_rng(0).random(truth.shape) < 0.2
obs = synthesize(truth, mask, 1.0, seed=0)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
run_method('sda', system, obs, {n_samples}, {{'steps': {steps}, 'corrections': {corrections}}}, model=model)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    measured = int(out.stdout.strip().splitlines()[-1]) * 1024
    from sda_gui.core.diffusion.checkpoint import load_checkpoint

    return bytes_needed(load_checkpoint(model_path), n_samples, length), measured


if __name__ == "__main__":
    import sys

    specs = sys.argv[1:]
    try:
        parsed = [(path, int(n), int(length)) for path, n, length in (spec.split(":") for spec in specs)]
    except ValueError:
        parsed = None
    if not parsed or any(not Path(path).is_file() or n < 1 or length < 1 for path, n, length in parsed):
        print("usage: python -m sda_gui.app.run_memory MODEL.pt:SAMPLES:LENGTH [...] "
              "(an existing model file, positive counts)", file=sys.stderr)
        sys.exit(2)
    for path, n, length in parsed:
        est, got = calibrate(path, n, length)
        print(f"{Path(path).name} N={n} L={length}: estimate {format_bytes(est)}, measured peak {format_bytes(got)}"
              f" (ratio {est / max(got, 1):.2f})")
