"""How many CPU threads torch gets: the cores that are idle now.

torch's default (one thread per core) is fast on an idle machine and can be ten
times slower than one thread on a busy one, where its threads wait on each other
while other processes hold the cores. ``auto_threads`` therefore takes the usable
cores minus the busy ones, rounded to the nearest whole core, at least 1: a busy
machine runs with one thread and an idle one with all its cores.

The busy cores are measured now, not averaged over the past minute: on Linux the
non-idle share of the CPU time in ``/proc/stat`` over ``SAMPLE_S`` seconds times the
number of CPUs (``busy_cores``); elsewhere the one-minute load average. The load
average lags: a run that just ended still counts as most of a core for a minute,
and rounded down it made a two-core machine that had just finished a run give the
next one a single thread. The command line (``--threads auto``) and the app's
worker use it.
"""

from __future__ import annotations

import math
import os
import time

__all__ = ["usable_cores", "busy_cores", "auto_threads", "apply_threads"]


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


#: how long ``busy_cores`` watches the CPU counters (part of every run's start-up)
SAMPLE_S = 0.1


def _cpu_times(text: str) -> tuple[int, int, int]:
    """(busy, total jiffies, number of CPUs) from the text of ``/proc/stat``."""
    lines = text.splitlines()
    fields = [int(v) for v in lines[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)          # idle + iowait
    total = sum(fields[:8])                                           # guest time is inside user time
    cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    return total - idle, total, max(1, cpus)


def _read_stat() -> str:
    with open("/proc/stat") as f:
        return f.read()


def busy_cores(sample_s: float = SAMPLE_S) -> float:
    """How many cores other work keeps busy now (``/proc/stat``; else the load average)."""
    try:
        busy0, total0, cpus = _cpu_times(_read_stat())
        time.sleep(sample_s)
        busy1, total1, _ = _cpu_times(_read_stat())
        if total1 > total0:
            return cpus * (busy1 - busy0) / (total1 - total0)
    except (OSError, ValueError, IndexError):
        pass
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return float(usable_cores() - 1)    # nothing to measure with: leave one core alone


def auto_threads() -> int:
    cores = usable_cores()
    return max(1, min(cores, int(math.floor(cores - busy_cores() + 0.5))))


def apply_threads(n: int) -> None:
    import torch

    torch.set_num_threads(int(n))
    try:
        torch.set_num_interop_threads(int(n))
    except RuntimeError:
        pass  # settable once per process, before any parallel work; the intra-op count is what matters
