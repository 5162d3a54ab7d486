"""Markov-blanket score: one window network composed over a whole trajectory.

The network ``ε_φ`` sees ``W = 2k+1`` consecutive states. A trajectory
``x_{1:L}`` (``L ≥ W``) is unfolded into its ``L − 2k`` overlapping windows,
evaluated in one batch, and folded back: state ``i`` takes the centre output of
the window centred on it; the first and last ``k`` states take the edge outputs
of the first and last windows. Because ``∇_{x_i} log p(x_{1:L}) =
∇_{x_i} log p(x_{i−k:i+k})`` for a first-order chain (approximately, at
positive noise), the composed ``ε`` approximates the full-trajectory noise for
any ``L`` with a single trained network.

Mean fold (``fold = "mean"``): state ``i`` takes instead the mean of the outputs of
every window that holds it (up to ``2k+1``; fewer within ``2k`` of either end),

    ε_i = (1 / |J_i|) Σ_{m ∈ J_i} ε_φ(x_{m:m+2k})_{i−m},   J_i = {m : 0 ≤ m ≤ L−2k−1, m ≤ i ≤ m+2k}.

For a first-order chain every interior output of a window is the same conditional score
as its centre one (``∇_{x_i} log p`` holds only ``p(x_i | x_{i−1})`` and ``p(x_{i+1} | x_i)``),
and only the window's two edge outputs lack a neighbour; averaging the estimates of
several windows averages their errors too. The interior fold (``fold = "interior"``)
averages only those interior outputs, offsets ``1 … 2k−1`` (the trajectory's first and
last states, held by no window's interior, keep their end window's edge output): the edge
outputs score their state too loosely and widen the samples. With either, the likelihood's
gradient reaches every window that holds an observed state (``window_split``), so on sparsely
observed states a step costs more. Measured in ``docs/benchmarks.md`` ("The mean fold").

A likelihood gradient only flows back through the windows whose used outputs are
observed: with every 4th state observed, 8 of 25 windows. ``WindowSplit`` names
them, and ``forward`` then records the autograd graph for those windows alone and
evaluates the others without one — the same ε and the same gradient, with the
backward pass cut to 8/25 of its arithmetic in that case.

Chunks (``plan_chunks``): the windows of a call run in chunks of ``max_windows``,
chosen from two sizes measured on the network by a probe of one and two windows:

- memory: an autograd graph keeps ``a`` bytes of activations per window, so a
  ``memory_budget_bytes`` budget (``DEFAULT_MEMORY_BUDGET``: 2 GiB on the CPU, half the
  device's memory on CUDA) holds ``budget // a`` windows. Beyond that many, each
  chunk with a graph is checkpointed (``torch.utils.checkpoint``): only its input is
  kept, and the backward pass recomputes its activations one chunk at a time. Without
  a graph only one chunk's activations exist at once. Memory then grows with
  ``N · L`` only through the trajectory-sized tensors (x, ε, x̂), not the activations.
- speed (CPU): a chunk whose widest activation (``w`` bytes per window) fills about
  one core's L2 cache (``CPU_CHUNK_BYTES`` per thread) keeps the element-wise passes
  between the matrix products in cache: the cost per window no longer rises with
  the number of windows, so a step costs ``∝ N · L``.

Chunking reorders no sum: every window is computed on its own either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch import nn

from .schedule import VPSchedule

__all__ = ["unfold_windows", "fold_windows", "FOLDS", "WindowSplit", "window_split", "LocalScoreModel",
           "DEFAULT_MEMORY_BUDGET", "CPU_CHUNK_BYTES", "default_memory_budget"]

#: activations a call may hold at once on the CPU (bytes); see ``default_memory_budget``
DEFAULT_MEMORY_BUDGET = 2 * 2**30
#: widest activation of one chunk per torch thread on the CPU: about a core's L2 cache
CPU_CHUNK_BYTES = 2 * 2**20


def default_memory_budget(device) -> int:
    """``DEFAULT_MEMORY_BUDGET`` on the CPU; half the device's memory on CUDA."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory // 2)
    return DEFAULT_MEMORY_BUDGET


def unfold_windows(x: torch.Tensor, k: int) -> torch.Tensor:
    """``(N, L, *s)`` → ``(N, L − 2k, 2k+1, *s)`` overlapping windows (a view)."""
    w = 2 * k + 1
    if x.shape[1] < w:
        raise ValueError(f"trajectory of {x.shape[1]} states is shorter than the window of {w} states (L ≥ 2k+1)")
    return x.unfold(1, w, 1).movedim(-1, 2)


#: how window outputs become a trajectory's (``fold_windows``)
FOLDS = ("centre", "mean", "interior")


def _offsets(k: int, fold: str) -> range:
    """The offsets within a window whose outputs a fold averages (``"centre"``: none, it selects)."""
    if fold == "mean":
        return range(2 * k + 1)
    if fold == "interior":
        return range(1, 2 * k) if k > 0 else range(1)
    raise ValueError(f"fold must be one of {', '.join(FOLDS)}, got {fold!r}")


def fold_windows(e: torch.Tensor, k: int, fold: str = "centre") -> torch.Tensor:
    """``(N, L − 2k, 2k+1, *s)`` window outputs → ``(N, L, *s)`` trajectory output.

    ``"centre"``: each state's output from the window centred on it (the edge states from
    the end windows); ``"mean"``: the mean over every window that holds the state;
    ``"interior"``: the mean over the windows that hold it away from their two edges (the
    trajectory's first and last states, which no window holds so, from the end windows).
    """
    if fold == "centre":
        return torch.cat((e[:, 0, :k], e[:, :, k], e[:, -1, k + 1:]), dim=1)
    offsets = _offsets(k, fold)
    n, m = e.shape[:2]
    length = m + 2 * k
    out = e.new_zeros((n, length, *e.shape[3:]))
    count = e.new_zeros(length)
    for offset in offsets:     # the window at j contributes its output `offset` to state j + offset
        out[:, offset:offset + m] += e[:, :, offset]
        count[offset:offset + m] += 1
    out = out / count.clamp(min=1).reshape(length, *([1] * (e.ndim - 3)))
    if fold == "interior" and k > 0:
        out = torch.cat((e[:, 0, :1], out[:, 1:-1], e[:, -1, -1:]), dim=1)
    return out


@dataclass(frozen=True)
class WindowSplit:
    """Windows of an ``L``-state trajectory that a gradient needs (``grad``) and the rest."""

    length: int
    grad: torch.Tensor    # window indices evaluated with an autograd graph
    rest: torch.Tensor    # window indices evaluated without one
    order: torch.Tensor   # puts ``cat(grad, rest)`` back in window order


def window_split(length: int, k: int, states, device="cpu", fold: str = "centre") -> Optional[WindowSplit]:
    """The split for a gradient that reaches only the outputs of ``states``.

    State ``i`` takes its output from window ``clamp(i − k, 0, L − 2k − 1)`` with the
    centre fold, from every window ``max(0, i − 2k) … min(i, L − 2k − 1)`` with the
    mean fold, and from those of them that hold it away from their edges with the
    interior fold (see ``fold_windows``). ``None`` when every window is needed (nothing to
    save). The indices are device tensors made here, ahead of any CUDA graph capture,
    which forbids host-to-device copies.
    """
    m = length - 2 * k
    if m < 1:
        return None
    states = np.asarray(states, dtype=np.int64)
    if fold == "centre":
        grad = np.unique(np.clip(states - k, 0, m - 1))
    else:
        offsets = _offsets(k, fold)
        windows = [i - o for i in states.tolist() for o in offsets if 0 <= i - o < m]
        if fold == "interior" and k > 0:   # the end states come from the end windows
            windows += [0] * bool((states == 0).any()) + [m - 1] * bool((states == length - 1).any())
        grad = np.unique(np.asarray(windows, dtype=np.int64))
    if grad.size == m:
        return None
    rest = np.setdiff1d(np.arange(m), grad)
    order = np.argsort(np.concatenate((grad, rest)))
    as_index = lambda a: torch.as_tensor(a, dtype=torch.long, device=device)  # noqa: E731
    return WindowSplit(length, as_index(grad), as_index(rest), as_index(order))


class LocalScoreModel(nn.Module):
    """A window network plus everything that gives it meaning.

    Works in normalised units; ``mean``/``scale`` convert from physical units
    and travel with the model in its checkpoint.
    """

    def __init__(self, net: nn.Module, k: int, state_shape: tuple, mean: torch.Tensor, scale: torch.Tensor,
                 schedule: VPSchedule | None = None, system: dict | None = None, arch: dict | None = None):
        super().__init__()
        self.net = net
        self.k = int(k)
        self.state_shape = tuple(state_shape)
        self.schedule = schedule or VPSchedule()
        self.system = system or {}
        self.arch = arch or {}
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).expand(self.state_shape).clone())
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32).expand(self.state_shape).clone())
        #: chunk the windows of a call to bound memory (None: one batch); set by ``plan_chunks``
        self.max_windows: int | None = None
        #: most windows whose activations an autograd graph may keep (None: no bound); beyond, chunks are
        #: checkpointed (see the module docstring)
        self.max_graph_windows: int | None = None
        #: run the window network under bf16 autocast on CUDA (sampling; see ``_net``)
        self.autocast = False
        #: how window outputs are folded into the trajectory's (``FOLDS``; set per run by ``assimilate``)
        self.fold = "centre"

    @property
    def window(self) -> int:
        return 2 * self.k + 1

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.scale

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.mean

    def forward(self, x: torch.Tensor, t: torch.Tensor, split: Optional[WindowSplit] = None) -> torch.Tensor:
        """Noise estimate ``ε(x(t), t)`` for trajectories ``x`` of shape ``(N, L, *s)``.

        With ``split`` and autograd on, only ``split.grad``'s windows are recorded for
        a backward pass; the gradient of anything that reads only their used outputs
        is unchanged.
        """
        n, length = x.shape[:2]
        windows = unfold_windows(x, self.k)
        m = windows.shape[1]
        tt = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        if split is None or split.length != length or not torch.is_grad_enabled():
            out = self._windows(windows, tt)
        else:
            with_graph = self._windows(windows.index_select(1, split.grad), tt)
            with torch.no_grad():
                without = self._windows(windows.index_select(1, split.rest), tt)
            out = torch.cat((with_graph, without), dim=1).index_select(1, split.order)
        return fold_windows(out, self.k, self.fold)

    def _windows(self, windows: torch.Tensor, tt: torch.Tensor) -> torch.Tensor:
        """``(N, M, W, *s)`` windows → their ``(N, M, W, *s)`` network outputs."""
        n, m = windows.shape[:2]
        flat = windows.reshape(n * m, self.window, *self.state_shape)
        # A shared time is passed once and broadcast by the network: embedding and
        # modulation per window would cost as much as a hidden layer.
        tt = tt.reshape(1) if tt.ndim == 0 else tt.repeat_interleave(m)
        rows = flat.shape[0]
        graph = torch.is_grad_enabled()
        checkpointed = graph and self.max_graph_windows is not None and rows > self.max_graph_windows
        size = self.max_windows
        if checkpointed:
            size = min(size or rows, self.max_graph_windows)
        if size is None or rows <= size:
            out = self._net(flat, tt)
        else:
            chunks = flat.split(size)
            times = [tt] * len(chunks) if tt.shape[0] == 1 else tt.split(size)
            if checkpointed:
                from torch.utils.checkpoint import checkpoint

                # the network draws no random numbers: no RNG state to keep (and none to touch in a CUDA graph)
                out = torch.cat([checkpoint(self._net, a, b, use_reentrant=False, preserve_rng_state=False)
                                 for a, b in zip(chunks, times)])
            else:
                out = torch.cat([self._net(a, b) for a, b in zip(chunks, times)])
        return out.view(n, m, self.window, *self.state_shape)

    def activation_bytes(self) -> tuple[int, int]:
        """``(a, w)``: bytes an autograd graph keeps per window, and the widest activation per window.

        Measured on the model's device by running the network on 1 and on 2 windows (one
        shared time) with a hook that sees every tensor autograd saves; the difference
        is one window's share (weights and the time embedding are saved by both).
        """
        device = self.mean.device
        key = (str(device), self.window, self.state_shape, bool(self.autocast))
        if getattr(self, "_activation_probe", (None,))[0] == key:     # the weights do not change the sizes
            return self._activation_probe[1]
        totals, widest = [], 0
        for b in (1, 2):
            saved = []

            def pack(tensor, saved=saved):
                saved.append(tensor)
                return tensor

            x = torch.zeros((b, self.window, *self.state_shape), device=device, requires_grad=True)
            with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
                out = self._net(x, torch.full((1,), 0.5, device=device))
            saved.append(out)
            totals.append(sum(t.numel() * t.element_size() for t in saved))
            if b == 2:
                widest = max((t.numel() * t.element_size() // 2 for t in saved if t.ndim and t.shape[0] == 2),
                             default=0)
        sizes = (max(1, totals[1] - totals[0]), max(1, widest))
        self._activation_probe = (key, sizes)
        return sizes

    def plan_chunks(self, memory_budget_bytes: Optional[int] = None, threads: Optional[int] = None) -> int:
        """Sets ``max_windows`` and ``max_graph_windows`` for calls on the model's device; returns
        ``max_windows``. ``memory_budget_bytes``: ``default_memory_budget`` when None."""
        device = self.mean.device
        budget = default_memory_budget(device) if memory_budget_bytes is None else int(memory_budget_bytes)
        if budget < 1:
            raise ValueError("the memory budget must be ≥ 1 byte")
        per_window, widest = self.activation_bytes()
        self.max_graph_windows = max(1, budget // per_window)
        size = self.max_graph_windows
        if device.type == "cpu":
            threads = threads or torch.get_num_threads()
            size = min(size, max(1, CPU_CHUNK_BYTES * threads // widest))
        self.max_windows = int(size)
        return self.max_windows

    def _net(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.autocast and x.is_cuda:
            # bf16 matrix units run the convolutions at twice the TF32 rate; a preconditioned
            # network's rounding reaches ε multiplied by c_out ≤ σ_data, not by σ/μ
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return self.net(x, t).float()
        return self.net(x, t)

    def denoise(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tweedie: ``x̂ = (x(t) − σ ε) / μ``; returns ``(x̂, ε)``."""
        mu, sigma = self.schedule(torch.as_tensor(t, dtype=x.dtype, device=x.device))
        eps = self(x, t)
        return (x - sigma * eps) / mu, eps
