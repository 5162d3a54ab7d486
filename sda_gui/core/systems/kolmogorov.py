"""Kolmogorov flow: forced 2-D turbulence on the periodic square [0, 2π]².

Incompressible Navier–Stokes in vorticity form, ``ω = ∂v/∂x − ∂u/∂y``::

    ∂ω/∂t + u·∇ω = ν ∇²ω − α ω + f_ω,     ∇²ψ = −ω,   (u, v) = (∂ψ/∂y, −∂ψ/∂x)

with ``ν = 1/Re`` (Re = 1000), linear drag ``α = 0.1`` and the Kolmogorov
forcing ``(sin 4y, 0)`` of the momentum equation, i.e. ``f_ω = −4 cos 4y``.

Grid convention (used by every function here and by ``UNet2d``): a field has
shape ``(..., H, W)``; axis −2 is ``x`` and axis −1 is ``y``, with
``field[..., i, j]`` the value at ``(x, y) = (2π i / H, 2π j / W)``. A velocity
state is ``(..., 2, H, W)`` holding ``(u, v)``, the ``x`` and ``y`` components.

Solver (``NavierStokes2d``): Fourier pseudo-spectral with ``rfft2``, 2/3-rule
dealiasing (modes with ``|k_x|`` or ``|k_y| ≥ N/3`` are zero), and the
integrating-factor (Lawson) RK4 scheme: the linear part ``L = −ν|k|² − α`` is
integrated exactly by ``exp(L h)``, the advection and forcing by RK4. The step
``h`` divides the requested time into equal substeps under the CFL bound
``h (max|u| + max|v|) ≤ cfl · Δx``.

System (``KolmogorovFlow``): simulated at ``resolution``² (256 by default),
observed as the velocity block-averaged to ``size``² (64), one state every
``dt = 0.2``. Initial vorticity: a random field peaked at wavenumber 4, then
``burn_in = 250`` states (50 time units; from this prior the energy settles in
about 5 and the enstrophy in about 15 time units at 256²). The simulation keeps
the fine vorticity between states; ``transition`` on coarse states goes through
``refine`` (the spectral inverse of block averaging for fields band-limited to
the coarse grid), which drops the sub-grid scales: it approximates the fine
dynamics, good for one-step consistency checks, not for long runs.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable, Optional

import torch

from .base import DynamicalSystem, ProgressFn

__all__ = [
    "KolmogorovFlow",
    "NavierStokes2d",
    "kolmogorov_forcing",
    "wavenumbers",
    "vorticity",
    "velocity_from_vorticity",
    "divergence",
    "coarsen",
    "refine",
]


# --------------------------------------------------------------------------- spectral helpers


# Cached constants are built outside inference mode so that they also serve autograd
# later (an inference tensor cannot be saved for backward).
_constants = torch.inference_mode(False)


@lru_cache(maxsize=32)
@_constants
def _spectral(h: int, w: int, device: torch.device, dtype: torch.dtype):
    """``(kx, ky, ikx, iky)`` on the ``rfft2`` grid; the ``i k`` factors vanish at Nyquist.

    A derivative cannot be represented at the Nyquist mode of an even grid (its
    ``+k`` and ``−k`` halves coincide), so the spectral derivative drops it.
    """
    kx = torch.fft.fftfreq(h, 1.0 / h, device=device, dtype=dtype)[:, None]
    ky = torch.fft.rfftfreq(w, 1.0 / w, device=device, dtype=dtype)[None, :]
    dx = torch.where(kx.abs() == h / 2, 0.0, kx) if h % 2 == 0 else kx
    dy = torch.where(ky == w / 2, 0.0, ky) if w % 2 == 0 else ky
    return kx, ky, 1j * dx, 1j * dy


def wavenumbers(h: int, w: int, device="cpu", dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer wavenumbers ``(kx (h, 1), ky (1, w//2+1))`` of ``rfft2`` on ``[0, 2π]²``."""
    kx, ky, _, _ = _spectral(h, w, torch.device(device), dtype)
    return kx, ky


def _ops(x: torch.Tensor):
    return _spectral(x.shape[-2], x.shape[-1], x.device, x.dtype)


def _irfft2(z: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return torch.fft.irfft2(z, s=like.shape[-2:])


def vorticity(uv: torch.Tensor) -> torch.Tensor:
    """``ω = ∂v/∂x − ∂u/∂y`` of velocity states ``(..., 2, H, W)`` → ``(..., H, W)`` (spectral)."""
    _, _, ikx, iky = _ops(uv)
    z = torch.fft.rfft2(uv)
    return _irfft2(ikx * z[..., 1, :, :] - iky * z[..., 0, :, :], uv)


def divergence(uv: torch.Tensor) -> torch.Tensor:
    """``∂u/∂x + ∂v/∂y`` of velocity states ``(..., 2, H, W)`` → ``(..., H, W)`` (spectral)."""
    _, _, ikx, iky = _ops(uv)
    z = torch.fft.rfft2(uv)
    return _irfft2(ikx * z[..., 0, :, :] + iky * z[..., 1, :, :], uv)


def velocity_from_vorticity(w: torch.Tensor) -> torch.Tensor:
    """Zero-mean velocity ``(∂ψ/∂y, −∂ψ/∂x)`` with ``ψ̂ = ω̂ / |k|²``: ``(..., H, W)`` → ``(..., 2, H, W)``."""
    kx, ky, ikx, iky = _ops(w)
    k2 = kx**2 + ky**2
    psi = torch.fft.rfft2(w) / torch.where(k2 == 0, 1.0, k2)
    psi[..., 0, 0] = 0  # the mean velocity is not set by the vorticity; take it zero
    return _irfft2(torch.stack((iky * psi, -ikx * psi), dim=-3), w)


def coarsen(field: torch.Tensor, factor: int) -> torch.Tensor:
    """Block average of ``factor × factor`` cells over the last two axes."""
    if factor == 1:
        return field
    *batch, h, w = field.shape
    if h % factor or w % factor:
        raise ValueError(f"grid {h}×{w} is not divisible by the coarsening factor {factor}")
    return field.reshape(*batch, h // factor, factor, w // factor, factor).mean(dim=(-3, -1))


def _block_transfer(k: torch.Tensor, factor: int, fine: int) -> torch.Tensor:
    """Fourier multiplier of ``coarsen`` along one axis, coarse samples at ``X_J = J·factor·Δx``.

    Averaging ``e^{ikx}`` over ``x_{Jr}, …, x_{Jr+r−1}`` (``r = factor``, ``Δx = 2π/fine``)
    gives ``e^{ikX_J} · e^{ik(r−1)Δx/2} · sin(krΔx/2) / (r sin(kΔx/2))``.
    """
    h = 2 * math.pi / fine
    half = k * h / 2
    ratio = torch.where(k == 0, 1.0, torch.sin(factor * half) / (factor * torch.sin(torch.where(k == 0, 1.0, half))))
    return torch.polar(ratio, (factor - 1) * half)


def refine(field: torch.Tensor, factor: int) -> torch.Tensor:
    """Spectral inverse of ``coarsen``: ``(..., H, W)`` → ``(..., factor·H, factor·W)``.

    Returns the unique field band-limited to the coarse grid (``|k_x| < H/2``,
    ``|k_y| < W/2``; the coarse Nyquist modes are dropped) whose block average is
    ``field``: ``coarsen(refine(c, r), r) = c`` up to those Nyquist modes, and
    ``refine(coarsen(f, r), r) = f`` for such band-limited ``f``.
    """
    if factor == 1:
        return field
    *batch, h, w = field.shape
    if h % 2 or w % 2:
        raise ValueError("refine needs an even coarse grid")
    kx, ky = wavenumbers(h, w, field.device, field.dtype)
    big_h, big_w = factor * h, factor * w
    z = torch.fft.rfft2(field) * factor**2
    z = z / (_block_transfer(kx, factor, big_h) * _block_transfer(ky, factor, big_w))
    out = z.new_zeros((*batch, big_h, big_w // 2 + 1))
    p, q = h // 2, w // 2
    out[..., :p, :q] = z[..., :p, :q]
    out[..., big_h - p + 1:, :q] = z[..., p + 1:, :q]
    return torch.fft.irfft2(out, s=(big_h, big_w))


def kolmogorov_forcing(resolution: int, wavenumber: int = 4, amplitude: float = 1.0,
                       device="cpu", dtype=torch.float32) -> torch.Tensor:
    """Vorticity forcing ``curl (A sin(k y), 0) = −A k cos(k y)`` on the ``resolution``² grid."""
    y = torch.arange(resolution, device=device, dtype=dtype) * (2 * math.pi / resolution)
    return (-amplitude * wavenumber * torch.cos(wavenumber * y)).expand(resolution, resolution).clone()


# --------------------------------------------------------------------------- solver


class NavierStokes2d:
    """Batched pseudo-spectral solver of ``∂ω/∂t + u·∇ω = ν∇²ω − αω + f_ω`` on ``[0, 2π]²``.

    ``forcing`` is a vorticity forcing field ``(N, N)`` or None. The speed in the CFL
    bound is clamped to ``[min_speed, max_speed]``: the floor fixes the step count of
    typical states, the ceiling keeps a garbage state (an unphysical sample, NaN) from
    asking for unbounded work; such a state may then blow up, visibly. Every operator
    (wavenumbers, dealiasing mask, Biot–Savart kernels) is built once here for
    one ``(resolution, dtype, device)``; vorticity batches are ``(n, N, N)``.
    """

    @_constants
    def __init__(self, resolution: int, viscosity: float = 1e-3, drag: float = 0.0,
                 forcing: Optional[torch.Tensor] = None, cfl: float = 0.5, min_speed: float = 0.0,
                 max_speed: float = math.inf, dtype=torch.float32, device="cpu"):
        n = self.resolution = int(resolution)
        self.viscosity, self.drag = float(viscosity), float(drag)
        self.cfl, self.min_speed, self.max_speed = float(cfl), float(min_speed), float(max_speed)
        self.dtype, self.device = dtype, torch.device(device)
        kx, ky, ikx, iky = _spectral(n, n, self.device, dtype)
        k2 = kx**2 + ky**2
        # 2/3 rule: quadratic products of modes |k| < N/3 alias only onto discarded modes
        self.mask = ((kx.abs() < n / 3) & (ky < n / 3)).to(dtype)
        inv_k2 = torch.where(k2 == 0, 0.0, 1.0 / torch.where(k2 == 0, 1.0, k2))
        # ω̂ → (û, v̂, ∂ω/∂x, ∂ω/∂y) in one broadcast product
        kernels = torch.broadcast_tensors(iky * inv_k2, -ikx * inv_k2, ikx, iky)
        self.kernels = torch.stack(kernels) * self.mask
        self.linear = -self.viscosity * k2 - self.drag
        self._factors: dict = {}
        self.forcing = None
        if forcing is not None:
            self.forcing = torch.fft.rfft2(forcing.to(device=self.device, dtype=dtype)) * self.mask

    # -- pieces

    def to_spectral(self, w: torch.Tensor) -> torch.Tensor:
        return torch.fft.rfft2(w.to(self.dtype)) * self.mask

    def to_physical(self, w_hat: torch.Tensor) -> torch.Tensor:
        return torch.fft.irfft2(w_hat, s=(self.resolution, self.resolution))

    def velocity(self, w_hat: torch.Tensor) -> torch.Tensor:
        """``(n, 2, N, N)`` velocity of spectral vorticity ``w_hat``."""
        return self.to_physical(w_hat[:, None] * self.kernels[:2])

    def tendency(self, w_hat: torch.Tensor) -> torch.Tensor:
        """Spectral ``−(u·∇ω) + f_ω``, dealiased (the non-stiff part of the equation)."""
        u, v, wx, wy = self.to_physical(w_hat[:, None] * self.kernels).unbind(1)
        out = torch.fft.rfft2(u * wx + v * wy).mul_(-self.mask)
        return out if self.forcing is None else out.add_(self.forcing)

    def substeps(self, w_hat: torch.Tensor, time: float) -> int:
        """Equal substeps covering ``time`` under the CFL bound (one sync per call)."""
        uv = self.velocity(w_hat)
        speed = (uv[:, 0].abs().amax() + uv[:, 1].abs().amax()).item() if uv.numel() else 0.0
        if not math.isfinite(speed):  # a NaN/inf state: its result is lost anyway
            speed = self.min_speed
        speed = min(max(speed, self.min_speed, 1e-6), self.max_speed)
        return max(1, math.ceil(time * speed / (self.cfl * 2 * math.pi / self.resolution)))

    def step(self, w_hat: torch.Tensor, h: float) -> torch.Tensor:
        """One integrating-factor RK4 (Lawson) step of size ``h`` in spectral space."""
        e, e2 = self._integrating_factors(h)
        k1 = self.tendency(w_hat)
        k2 = self.tendency(e * (w_hat + (h / 2) * k1))
        k3 = self.tendency(e * w_hat + (h / 2) * k2)
        k4 = self.tendency(e2 * w_hat + h * e * k3)
        return e2 * (w_hat + (h / 6) * k1) + (h / 3) * e * (k2 + k3) + (h / 6) * k4

    @_constants
    def _integrating_factors(self, h: float):
        """``(e^{Lh/2}, e^{Lh})``, cached for the last step size (one per ``advance``)."""
        if h not in self._factors:
            e = torch.exp(self.linear * (h / 2))
            self._factors = {h: (e, e * e)}
        return self._factors[h]

    def advance(self, w: torch.Tensor, time: float) -> torch.Tensor:
        """Vorticity ``(n, N, N)`` at ``t`` → at ``t + time`` (``n`` equal CFL-limited steps)."""
        w_hat = self.to_spectral(w)
        count = self.substeps(w_hat, time)
        for _ in range(count):
            w_hat = self.step(w_hat, time / count)
        return self.to_physical(w_hat)


# --------------------------------------------------------------------------- system

# Climatological std of u and v on the 64² output grid at Re = 1000, α = 0.1: measured with
# KolmogorovFlow(resolution=256, size=64) in float32 on an H100, 64 trajectories from the
# prior, states 250–500 (t = 50…100): std u = 1.024, v = 0.974, pooled 0.999 (other windows
# agree within 1 %; the mean is 0). One scale for both components keeps the normalised
# field divergence-free.
VELOCITY_SCALE = 1.0
# CFL step: h (max|u| + max|v|) ≤ cfl·Δx. Lawson RK4 is stable to cfl ≈ 1.35 (its
# imaginary-axis limit 2√2 over the largest dealiased wavenumber N/3); over one time unit
# of turbulent flow the result differs from a cfl = 0.1 run by 2e-3 (relative L2) at
# cfl = 1, 1e-4 at 0.5 (fourth order). The speed floor: in the run above max|u| + max|v|
# on the fine grid had median 6.3, 99 % quantile 8.1 and maximum 9.5 over 16 000
# states, so a floor of 10 fixes the step count (82 substeps per state at 256²) and a
# trajectory does not depend on the rest of its batch.
_CFL = 1.0
_SPEED_FLOOR = 10.0
# Beyond 4× the floor (40 climatological std) a state is garbage; cap its cost.
_SPEED_CAP = 40.0
# The prior is scaled to max|u| + max|v| = 6, the steady state's median, below the floor.
_PRIOR_SPEED = 6.0


class KolmogorovFlow(DynamicalSystem):
    """2-D Kolmogorov flow observed as the block-averaged velocity ``(u, v)``."""

    name = "kolmogorov"
    title = "Kolmogorov flow"

    def __init__(self, resolution: int = 256, size: int = 64, reynolds: float = 1000.0, drag: float = 0.1,
                 dt: float = 0.2, burn_in: int = 250, noise: float = 0.0):
        resolution, size = int(resolution), int(size)
        if size < 2 or size % 2 or resolution % size:
            raise ValueError(f"size {size} must be even and divide the resolution {resolution}")
        self.resolution, self.size = resolution, size
        self.factor = resolution // size
        self.reynolds, self.drag = float(reynolds), float(drag)
        self._dt, self._burn_in = float(dt), int(burn_in)
        self.noise = float(noise)
        self._solvers: dict = {}

    @property
    def state_shape(self):
        return (2, self.size, self.size)

    @property
    def variable_names(self):
        return ["u", "v"]

    #: the grid convention above: axis −2 is x, axis −1 is y
    state_dims = ("channel", "x", "y")

    def state_coords(self) -> dict:
        """Cell positions on ``[0, 2π)`` along x and y (files' coordinates)."""
        grid = [2 * math.pi * i / self.size for i in range(self.size)]
        return {"x": grid, "y": grid}

    @property
    def params(self):
        return {"resolution": self.resolution, "size": self.size, "reynolds": self.reynolds,
                "drag": self.drag, "dt": self._dt, "burn_in": self._burn_in, "noise": self.noise}

    def normalization(self):
        return torch.zeros(2, 1, 1), torch.full((2, 1, 1), VELOCITY_SCALE)

    @_constants
    def solver(self, device="cpu", dtype=torch.float32) -> NavierStokes2d:
        """The fine-grid solver for one device and dtype (built once, then reused)."""
        key = (str(torch.device(device)), dtype)
        if key not in self._solvers:
            forcing = kolmogorov_forcing(self.resolution, device=device, dtype=dtype)
            self._solvers[key] = NavierStokes2d(self.resolution, 1.0 / self.reynolds, self.drag, forcing,
                                                cfl=_CFL, min_speed=_SPEED_FLOOR, max_speed=_SPEED_CAP, dtype=dtype, device=device)
        return self._solvers[key]

    # -- fine-grid pieces

    def prior_vorticity(self, n: int, generator: torch.Generator, device="cpu", dtype=torch.float32) -> torch.Tensor:
        """Random band-limited vorticity ``(n, N, N)``: white noise × ``|k| e^{−|k|²/2k₀²}``, ``k₀ = 4``.

        Each field is scaled to ``max|u| + max|v| = 6`` (a typical steady-state value).
        """
        n_res = self.resolution
        z = torch.randn((n, n_res, n_res), generator=generator, device=device, dtype=dtype)
        kx, ky = wavenumbers(n_res, n_res, device, dtype)
        k = torch.sqrt(kx**2 + ky**2)
        w = torch.fft.irfft2(torch.fft.rfft2(z) * k * torch.exp(-0.5 * (k / 4.0) ** 2), s=(n_res, n_res))
        speed = velocity_from_vorticity(w).abs().amax(dim=(-2, -1)).sum(-1)
        return w * (_PRIOR_SPEED / speed)[:, None, None]

    def observe(self, w: torch.Tensor) -> torch.Tensor:
        """Fine vorticity ``(n, N, N)`` → coarse velocity states ``(n, 2, size, size)``."""
        return coarsen(velocity_from_vorticity(w), self.factor)

    def _step(self, w: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
        w = self.solver(w.device, w.dtype).advance(w, self._dt)
        if generator is not None and self.noise > 0:
            # vorticity noise whose block average on the output grid is white N(0, noise²)
            z = torch.randn((w.shape[0], self.size, self.size), generator=generator, device=w.device, dtype=w.dtype)
            w = w + refine(self.noise * z, self.factor)
        return w

    def _run(self, n, length, generator, device, progress=None, should_stop=None) -> torch.Tensor:
        """Prior, ``burn_in`` steps, then ``length`` recorded coarse states (fine vorticity kept)."""
        burn, total = self._burn_in, self._burn_in + length
        w = self.prior_vorticity(n, generator, device)
        out = torch.empty((n, length, *self.state_shape), dtype=w.dtype, device=device)
        for i in range(total):
            if should_stop is not None and should_stop():
                raise InterruptedError("simulation cancelled")
            if i > 0:
                w = self._step(w, generator)
            if i >= burn:
                out[:, i - burn] = self.observe(w)
            if progress is not None:
                progress(i + 1, total)
        return out

    # -- DynamicalSystem interface

    def prior(self, n, generator, device="cpu"):
        return self.observe(self.prior_vorticity(n, generator, device))

    def initial_states(self, n, generator, device="cpu", progress: Optional[ProgressFn] = None):
        return self._run(n, 1, generator, torch.device(device), progress)[:, 0]

    def simulate(self, n: int, length: int, seed: int = 0, device="cpu", progress: Optional[ProgressFn] = None,
                 should_stop: Optional[Callable[[], bool]] = None) -> torch.Tensor:
        """``(n, length, 2, size, size)``: the fine vorticity is carried between states.

        ``progress(done, total)`` counts ``burn_in + length`` states; ``should_stop``
        is polled before each state and raises ``InterruptedError``.
        """
        device = torch.device(device)
        gen = torch.Generator(device=device).manual_seed(int(seed))
        return self._run(n, length, gen, device, progress, should_stop)

    def augment(self, windows: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Random symmetries of the forced flow, each applied to a whole window.

        A circular shift along ``x`` (any number of pixels), and with probability
        1/2 the mirror ``x → −x`` with ``u → −u`` combined with a shift of a
        quarter forcing period along ``y`` (``size/8`` pixels), which turns
        ``sin(4y)`` into ``−sin(4y)`` as the mirrored ``u`` needs. Both map
        solutions onto solutions (``tests/test_kolmogorov.py`` checks it against
        ``transition``); the normalisation is a pure scale, so they hold in
        normalised units too.
        """
        b, n = windows.shape[0], self.size
        device = windows.device
        shift = torch.randint(0, n, (b,), generator=generator, device=device)
        rows = (torch.arange(n, device=device) + shift[:, None]) % n
        index = rows.view(b, *(1,) * (windows.ndim - 3), n, 1).expand_as(windows)
        out = windows.gather(-2, index)
        if n % 8 == 0:
            mirror = torch.rand(b, generator=generator, device=device) < 0.5
            if mirror.any():
                m = out[mirror].flip(-2).roll(n // 8, dims=-1)
                m[..., 0, :, :] = -m[..., 0, :, :]
                out[mirror] = m
        return out

    def transition(self, x, generator: Optional[torch.Generator] = None):
        """One ``dt`` from coarse velocity states ``(n, 2, size, size)`` (approximate).

        ``refine`` rebuilds the fine velocity band-limited to the coarse grid, its
        vorticity is advanced on the fine grid, and the result is coarsened again.
        The sub-grid scales the coarse state cannot hold are missing, so this is
        not the fine dynamics, only close to it over one step: on steady 256² → 64²
        states its error is about 1 % of the state's change over ``dt`` (0.3 % of
        the state), against the simulated next state. The mean velocity,
        invisible to the vorticity, decays by the drag alone: ``e^{−α dt}``.
        """
        mean = x.mean(dim=(-2, -1), keepdim=True)
        w = vorticity(refine(x, self.factor))
        return self.observe(self._step(w, generator)) + mean * math.exp(-self.drag * self._dt)
