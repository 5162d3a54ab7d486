"""Lorenz-84: a plugin file that adds a dynamical system and an observation operator.

Load it with ``--system-file examples/lorenz84.py`` on any subcommand (``simulate``,
``train``, ``assimilate``, ``compare``, ``observe``), with ``sda.load_system_file`` in a
script, or from the app (System → Load system file…). It shows everything a plugin needs:

- a ``DynamicalSystem`` subclass with a unique ``name``, its ``state_shape``,
  ``variable_names``, ``params`` (the constructor's keywords, so ``make_system`` can
  rebuild it from a checkpoint), ``normalization``, ``prior`` and a batched ``transition``;
- an ``Operator`` subclass with a ``name``, observed as ``--operator plugin:energy``.

Lorenz's 1984 model of the mid-latitude general circulation (Lorenz 1984, Tellus A 36):

    dx/dt = −y² − z² − a x + a F
    dy/dt = x y − b x z − y + G
    dz/dt = b x y + x z − z

with a = 0.25, b = 4, F = 8, G = 1 (chaotic), one RK4 step of ``dt`` per state and
transition noise of std ``noise·√dt``. The normalisation is the climatology of a long
run with these parameters (mean and standard deviation of each variable).
"""

from __future__ import annotations

from typing import Optional

import torch

from sda_gui.core.observation import Operator
from sda_gui.core.systems import DynamicalSystem
from sda_gui.core.systems.lorenz63 import rk4  # the classical Runge–Kutta step the built-ins use


class Lorenz84(DynamicalSystem):
    name = "lorenz84"
    title = "Lorenz-84"

    def __init__(self, a: float = 0.25, b: float = 4.0, forcing: float = 8.0, g: float = 1.0,
                 dt: float = 0.05, noise: float = 0.05, burn_in: int = 400):
        self.a, self.b, self.forcing, self.g = float(a), float(b), float(forcing), float(g)
        self._dt, self.noise, self._burn_in = float(dt), float(noise), int(burn_in)

    @property
    def state_shape(self):
        return (3,)

    @property
    def variable_names(self):
        return ["x", "y", "z"]

    @property
    def params(self):
        return {"a": self.a, "b": self.b, "forcing": self.forcing, "g": self.g, "dt": self._dt,
                "noise": self.noise, "burn_in": self._burn_in}

    def normalization(self):
        return torch.tensor([1.0, 0.1, 0.29]), torch.tensor([0.63, 0.91, 0.91])

    def prior(self, n, generator, device="cpu"):
        return torch.tensor([1.0, 0.0, 0.0], device=device) + torch.randn((n, 3), generator=generator, device=device)

    def vector_field(self, s):
        x, y, z = s[..., 0], s[..., 1], s[..., 2]
        return torch.stack((-y * y - z * z - self.a * x + self.a * self.forcing,
                            x * y - self.b * x * z - y + self.g,
                            self.b * x * y + x * z - z), dim=-1)

    def transition(self, x, generator: Optional[torch.Generator] = None):
        x = rk4(self.vector_field, x, self._dt)
        if generator is not None and self.noise > 0:
            x = x + self.noise * self._dt ** 0.5 * torch.randn(x.shape, generator=generator, device=x.device,
                                                                dtype=x.dtype)
        return x


class Energy(Operator):
    """``(x² + y² + z²) / 2`` of each state: one nonlinear observation per state, ``(3,) → (1,)``."""

    name = "energy"
    linear = False

    def output_shape(self, state_shape):
        return (*state_shape[:-1], 1)

    def __call__(self, x, state_ndim):
        return 0.5 * x.square().sum(-1, keepdim=True)
