"""What *Train* runs on the worker thread: the training data, then ``train_model``.

A stop must land within about a second in every phase. ``train_model`` polls
``should_stop`` before each optimiser step; simulating the training set polls it too,
but only between states, and one state of a large batch of fields takes long (128
Kolmogorov trajectories at 128² advance one state in about 20 s on a CPU). So the set
is simulated in chunks of trajectories small enough that one state of a chunk takes
about ``POLL_S`` (``chunk_size``), and every progress report — the burn-in's too —
checks the flag and stops the job (``InterruptedError``, which the worker reports as
cancelled). Chunk ``i`` is simulated from seed ``seed + i``; a system simulated in one
chunk (every ODE system, any system on a GPU) gets exactly the trajectories of
``system.simulate(M, T, seed)``.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from .common import kolmogorov_cpu_rate

__all__ = ["make_training_job", "chunk_size", "POLL_S"]

#: the longest a stop may wait while the training data are simulated
POLL_S = 0.5


def chunk_size(system, n_trajectories: int, device: str = "cpu") -> int:
    """Trajectories simulated per call so that one state of them takes about ``POLL_S``."""
    if len(system.state_shape) < 2 or str(device).startswith("cuda"):
        return int(n_trajectories)
    rate = kolmogorov_cpu_rate(system.params.get("resolution", 128))
    return int(max(1, min(n_trajectories, rate * POLL_S)))


def _stopper(should_stop: Callable[[], bool]):
    def check():
        if should_stop():
            raise InterruptedError("stopped")
    return check


def simulate_training_set(system, m: int, t: int, seed: int, report: Callable, should_stop: Callable[[], bool],
                          device: str = "cpu"):
    """``(m, t, *s)`` trajectories, simulated in chunks; reports ``("simulate", done, total, …)``."""
    import torch

    check = _stopper(should_stop)
    chunk = chunk_size(system, m, device)
    parts = []
    for i, start in enumerate(range(0, m, chunk)):
        n = min(chunk, m - start)

        def progress(done, total, start=start, n=n):
            check()
            # trajectory-states done over all chunks, as a fraction of the whole set
            report(("simulate", start * total + n * done, m * total, None, None))

        check()
        parts.append(system.simulate(n, t, seed=seed + i, device=device, progress=progress,
                                     should_stop=should_stop).cpu())
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def make_training_job(system, config, loaded: Optional[np.ndarray], m: int, t: int, seed: int) -> Callable:
    """``job(report, should_stop) -> (model, history)``; ``loaded`` trajectories, or simulate ``m × t``."""

    def job(report, should_stop):
        from sda_gui.core.diffusion.training import train_model

        data = loaded
        if data is None:
            data = simulate_training_set(system, m, t, seed, report, should_stop)
        _stopper(should_stop)()
        model, history = train_model(system, data, config,
                                     progress=lambda s, n, tr, va: report(("train", s, n, tr, va)),
                                     should_stop=should_stop)
        return model, history

    return job
