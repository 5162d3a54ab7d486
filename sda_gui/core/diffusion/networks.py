"""Noise-prediction networks ``ε_φ(x_W(t), t)`` over a window of ``W = 2k+1`` states.

Every network takes ``x`` of shape ``(B, W, *state_shape)`` (normalised units) and
``t`` of shape ``(B,)`` and returns a tensor shaped like ``x``. ``build_network``
rebuilds one from the ``arch`` dict stored in a checkpoint.

- ``ResMLP``: residual MLP on the flattened window (small states, e.g. Lorenz-63).
- ``RingConv``: 1-D convolutions with circular padding along a ring of variables
  (Lorenz-96); the window's states are the channels, so any ring size works.
- ``UNet2d`` (``unet.py``): 2-D fields (Kolmogorov flow).

Sampling calls a ``ResMLP`` with one diffusion time shared by every window. Its
modulated layer norm followed by a linear layer,
``W (LN(h) ⊙ g ⊙ (1 + a) + β ⊙ (1 + a) + b) + c`` with ``LN`` unscaled, is then one
layer norm and one matrix product with weights ``W diag(g (1 + a))`` and bias
``W (β (1 + a) + b) + c`` folded once per call (likewise the output layer's norm):
the same function, three fewer passes over the activations per block
(``ResMLP.fuse_shared_time``; per-window times, as in training, and autocast take the
plain path).

``arch["precondition"] = True`` wraps the network so that it predicts the clean
window and the wrapper returns ``ε`` (``preconditioning.py``); ``arch["sigma_data"]``
is the data's standard deviation it assumes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .embedding import TimeEmbedding
from .preconditioning import Preconditioned
from .schedule import VPSchedule
from .unet import UNet2d

__all__ = ["ResMLP", "RingConv", "build_network", "NETWORKS"]


class _ResBlock(nn.Module):
    def __init__(self, width: int, emb: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.modulation = nn.Linear(emb, 2 * width)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, h, e):
        a, b = self.modulation(e).chunk(2, dim=-1)
        return h + self.mlp(self.norm(h) * (1 + a) + b)


def _normalise(h: torch.Tensor, eps: float) -> torch.Tensor:
    """Layer norm of the rows of ``h`` without scale and shift, as a one-group norm: the same
    statistics, and on the CPU a faster kernel than ``layer_norm`` for rows of this size."""
    return F.group_norm(h.view(h.shape[0], 1, h.shape[1]), 1, eps=eps).view(h.shape)


class ResMLP(nn.Module):
    #: fold the modulation and norm scalings into the weights when one time is shared (see the module docstring)
    fuse_shared_time = True

    def __init__(self, window: int, state_shape: tuple, width: int = 256, depth: int = 5, emb: int = 32):
        super().__init__()
        self.features = window * math.prod(state_shape)
        self.embedding = TimeEmbedding(emb)
        self.inp = nn.Linear(self.features, width)
        self.blocks = nn.ModuleList(_ResBlock(width, emb) for _ in range(depth))
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, self.features))

    def forward(self, x, t):
        e = self.embedding(t)
        h = self.inp(x.flatten(1))
        # under autocast the products would change precision mid-block: the plain path then
        if self.fuse_shared_time and e.shape[0] == 1 and not torch.is_autocast_enabled(x.device.type):
            return self._shared_time(h, e[0]).view_as(x)
        for block in self.blocks:
            h = block(h, e)
        return self.out(h).view_as(x)

    def _shared_time(self, h, e):
        """The blocks and the output layer for one time embedding ``e`` (``(emb,)``) of every row."""
        no_graph = not torch.is_grad_enabled()
        for block in self.blocks:
            a, b = block.modulation(e).chunk(2, dim=-1)
            first, second = block.mlp[0], block.mlp[2]
            gain = block.norm.weight * (1 + a)
            bias = torch.addmv(first.bias, first.weight, block.norm.bias * (1 + a) + b)
            u = _normalise(h, block.norm.eps)
            z = F.silu(torch.addmm(bias, u, (first.weight * gain).t()), inplace=no_graph)
            # h + z Wᵀ + c in this order on both paths, so that windows with and without a graph
            # round alike; without one the product accumulates into the residual stream itself
            h = torch.addmm(h, z, second.weight.t(), out=h if no_graph else None).add_(second.bias)
        norm, linear = self.out
        u = _normalise(h, norm.eps)
        return torch.addmm(torch.addmv(linear.bias, linear.weight, norm.bias), u, (linear.weight * norm.weight).t())


class _ConvBlock(nn.Module):
    def __init__(self, width: int, emb: int, kernel: int):
        super().__init__()
        self.norm = nn.GroupNorm(1, width)
        self.modulation = nn.Linear(emb, 2 * width)
        pad = kernel // 2
        self.conv1 = nn.Conv1d(width, width, kernel, padding=pad, padding_mode="circular")
        self.conv2 = nn.Conv1d(width, width, kernel, padding=pad, padding_mode="circular")
        self.act = nn.SiLU()
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, h, e):
        a, b = self.modulation(e)[..., None].chunk(2, dim=1)
        return h + self.conv2(self.act(self.conv1(self.norm(h) * (1 + a) + b)))


class RingConv(nn.Module):
    def __init__(self, window: int, state_shape: tuple, width: int = 64, depth: int = 4,
                 kernel: int = 5, emb: int = 32):
        super().__init__()
        if len(state_shape) != 1:
            raise ValueError("RingConv expects one ring of variables, state_shape (N,)")
        self.embedding = TimeEmbedding(emb)
        self.inp = nn.Conv1d(window, width, kernel, padding=kernel // 2, padding_mode="circular")
        self.blocks = nn.ModuleList(_ConvBlock(width, emb, kernel) for _ in range(depth))
        self.out = nn.Sequential(nn.GroupNorm(1, width), nn.Conv1d(width, window, 1))

    def forward(self, x, t):
        e = self.embedding(t)
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, e)
        return self.out(h)


NETWORKS: dict[str, type] = {"resmlp": ResMLP, "ringconv": RingConv, "unet": UNet2d}


_WRAPPER_KEYS = ("name", "precondition", "sigma_data")


def build_network(arch: dict, window: int, state_shape: tuple, schedule: VPSchedule | None = None) -> nn.Module:
    """``arch = {"name": "resmlp", "width": 256, ...}`` → a fresh network."""
    kwargs = {k: v for k, v in arch.items() if k not in _WRAPPER_KEYS}
    try:
        cls = NETWORKS[arch["name"]]
    except KeyError:
        raise ValueError(f"unknown network architecture {arch.get('name')!r}") from None
    net = cls(window=window, state_shape=tuple(state_shape), **kwargs)
    if arch.get("precondition"):
        net = Preconditioned(net, schedule or VPSchedule(), float(arch.get("sigma_data", 1.0)))
    return net
