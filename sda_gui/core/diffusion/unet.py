"""A 2-D U-Net ``ε_φ(x_W(t), t)`` for windows of ``W = 2k+1`` states of a periodic 2-D field.

Input ``x`` of shape ``(B, W, C, H, Wd)`` (normalised units) and ``t`` of shape ``(B,)``.
The window's states and variables are flattened into ``W·C`` image channels; with
``forcing=True`` one constant channel holding ``sin(4y)`` is appended (the Kolmogorov
forcing, which fixes the orientation the flow otherwise cannot know). Grid convention as
in ``systems/kolmogorov.py``: axis −2 is ``x``, axis −1 is ``y``, and pixel ``j`` along
the last axis sits at ``y = 2π j / Wd``.

Every convolution pads circularly (the domain is a torus), so the network commutes
with circular shifts along ``x`` by multiples of ``2^(levels−1)``, the total
downsampling (along ``y`` too when ``forcing=False``). Each level holds ``blocks``
residual blocks ``h + conv(SiLU(conv(SiLU(GN(h)·(1+a) + b))))`` modulated by the time
embedding ``(a, b)``; levels are joined by stride-2 convolutions on the way down and
nearest upsampling + convolution on the way up, with concatenated skip connections.
The last convolution starts at zero, so a fresh network predicts ``ε = 0``.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .embedding import TimeEmbedding

__all__ = ["UNet2d"]


def _conv(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, padding_mode="circular")


def _norm(width: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(width, 16), width)


class _Block(nn.Module):
    """Residual block with time modulation; a 1×1 convolution matches widths on the skip path."""

    def __init__(self, cin: int, cout: int, emb: int, kernel: int):
        super().__init__()
        self.norm1, self.norm2 = _norm(cin), _norm(cout)
        self.modulation = nn.Linear(emb, 2 * cin)
        self.conv1, self.conv2 = _conv(cin, cout, kernel), _conv(cout, cout, kernel)
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)
        # a residual branch that starts at zero keeps the fresh network near the identity
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        a, b = self.modulation(e)[..., None, None].chunk(2, dim=1)
        y = self.conv1(F.silu(self.norm1(h) * (1 + a) + b))
        return self.skip(h) + self.conv2(F.silu(self.norm2(y)))


class _Up(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int):
        super().__init__()
        self.conv = _conv(cin, cout, kernel)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(h, scale_factor=2.0, mode="nearest"))


class UNet2d(nn.Module):
    """Noise predictor for windows of 2-D fields; see the module docstring."""

    def __init__(self, window: int, state_shape: tuple, channels=(32, 64, 128), blocks: int = 2,
                 emb: int = 64, kernel: int = 3, forcing: bool = True):
        super().__init__()
        if len(state_shape) != 3:
            raise ValueError("UNet2d expects 2-D fields, state_shape (C, H, W)")
        c, h, w = (int(s) for s in state_shape)
        channels = [int(ch) for ch in channels]
        scale = 2 ** (len(channels) - 1)
        if h % scale or w % scale:
            raise ValueError(f"grid {h}×{w} must be divisible by {scale} for {len(channels)} levels")
        self.window, self.state_shape, self.forcing = int(window), (c, h, w), bool(forcing)
        features = self.window * c
        if self.forcing:
            y = torch.arange(w) * (2 * math.pi / w)
            self.register_buffer("force", torch.sin(4 * y).expand(1, 1, h, w).clone(), persistent=False)

        self.embedding = TimeEmbedding(emb)
        self.inp = _conv(features + self.forcing, channels[0], kernel)
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i, ch in enumerate(channels):
            prev = channels[max(i - 1, 0)]
            self.down.append(nn.ModuleList(_Block(prev if j == 0 else ch, ch, emb, kernel) for j in range(blocks)))
            # decoder blocks take the skip of their level concatenated (not at the bottom)
            inner = ch if i == len(channels) - 1 else 2 * ch
            self.up.append(nn.ModuleList(_Block(inner if j == 0 else ch, ch, emb, kernel) for j in range(blocks)))
            if i < len(channels) - 1:
                self.downsample.append(_conv(ch, ch, kernel, stride=2))
                self.upsample.append(_Up(channels[i + 1], ch, kernel))
        self.out = nn.Sequential(_norm(channels[0]), nn.SiLU(), _conv(channels[0], features, kernel))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        e = self.embedding(t)
        h = x.flatten(1, 2)
        if self.forcing:
            h = torch.cat((h, self.force.to(h.dtype).expand(h.shape[0], -1, -1, -1)), dim=1)
        h = self.inp(h)
        skips = []
        for i, level in enumerate(self.down):
            for block in level:
                h = block(h, e)
            if i < len(self.downsample):
                skips.append(h)
                h = self.downsample[i](h)
        for i in reversed(range(len(self.up))):
            if i < len(self.upsample):
                h = torch.cat((self.upsample[i](h), skips.pop()), dim=1)
            for block in self.up[i]:
                h = block(h, e)
        return self.out(h).view_as(x).to(x.dtype)
