"""Replaying a guided network call as one CUDA graph.

A guided call of a small network (forward, backward for the likelihood score, a few
element-wise ops) is hundreds of short kernels; on a GPU their launches, not their
arithmetic, set the time. The sampler calls the same function with tensors of the
same shape at every step, so the kernels are recorded once and replayed: the inputs
are copied into fixed buffers, the graph runs, the output buffer is read.

Only functions that never synchronise with the host can be captured (no ``.item()``,
no boolean indexing, no data-dependent Python branches); guidance classes say so with
``graph_safe``.
"""

from __future__ import annotations

import logging
from typing import Callable, Optional

import torch

__all__ = ["CapturedCall", "capture"]

log = logging.getLogger(__name__)


class CapturedCall:
    """``fn(x, t)`` recorded for the shape, dtype and device of ``x``."""

    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor,
                 t: torch.Tensor, warmup: int = 2):
        self.x = x.detach().clone()
        self.t = torch.as_tensor(t, dtype=x.dtype, device=x.device).detach().clone()
        # Warm-up on a side stream, as torch.cuda.graph requires: lazy initialisation
        # (cuBLAS handles, autograd's streams) must not happen during the capture.
        stream = torch.cuda.Stream(device=x.device)
        stream.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(stream):
            for _ in range(warmup):
                fn(self.x, self.t)
        torch.cuda.current_stream(x.device).wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = fn(self.x, self.t)

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.x.copy_(x)
        self.t.copy_(t)
        self.graph.replay()
        # the next replay overwrites the output buffer
        return self.out.clone()


def capture(fn, x, t) -> Optional[CapturedCall]:
    """A captured ``fn`` or ``None`` where capture fails (the caller then runs ``fn`` as is)."""
    try:
        return CapturedCall(fn, x, t)
    except Exception as exc:  # noqa: BLE001 - any capture failure falls back to eager calls
        log.warning("CUDA graph capture failed (%s); running the sampler without graphs", exc)
        torch.cuda.synchronize(x.device)
        return None
