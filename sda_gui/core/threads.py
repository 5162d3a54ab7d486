"""How many CPU threads torch gets: the cores that are idle now.

torch's default (one thread per core) is fast on an idle machine and can be ten
times slower than one thread on a busy one, where its threads wait on each other
while other processes hold the cores. ``auto_threads`` therefore takes the usable
cores minus the one-minute load average, rounded down, at least 1: a busy machine
runs with one thread and an idle one with all its cores. The command line
(``--threads auto``) and the app's worker use it.
"""

from __future__ import annotations

import math
import os

__all__ = ["usable_cores", "auto_threads", "apply_threads"]


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def auto_threads() -> int:
    cores = usable_cores()
    try:
        load = os.getloadavg()[0]
    except OSError:
        return 1
    return max(1, min(cores, int(math.floor(cores - load))))


def apply_threads(n: int) -> None:
    import torch

    torch.set_num_threads(int(n))
    try:
        torch.set_num_interop_threads(int(n))
    except RuntimeError:
        pass  # settable once per process, before any parallel work; the intra-op count is what matters
