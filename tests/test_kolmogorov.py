"""Kolmogorov flow: the pseudo-spectral solver, coarse graining, the system and the 2-D U-Net."""

import math

import pytest
import torch

from sda_gui.core.diffusion.networks import build_network
from sda_gui.core.diffusion.unet import UNet2d
from sda_gui.core.systems import make_system
from sda_gui.core.systems.kolmogorov import (
    KolmogorovFlow,
    NavierStokes2d,
    coarsen,
    divergence,
    kolmogorov_forcing,
    refine,
    velocity_from_vorticity,
    vorticity,
    wavenumbers,
)

F64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # small FFTs are dominated by per-op overhead; extra threads only contend
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def grid(n):
    x = torch.arange(n, dtype=F64) * (2 * math.pi / n)
    return torch.meshgrid(x, x, indexing="ij")  # axis −2 is x, axis −1 is y


def band_limited(batch, n, kmax, seed=0):
    """Random real fields on n² with Fourier modes |k_x|, |k_y| < kmax only."""
    gen = torch.Generator().manual_seed(seed)
    kx, ky = wavenumbers(n, n, "cpu", F64)
    z = torch.fft.rfft2(torch.randn((batch, n, n), generator=gen, dtype=F64))
    return torch.fft.irfft2(z * ((kx.abs() < kmax) & (ky < kmax)), s=(n, n))


# ------------------------------------------------------------------ solver


def test_taylor_green_decays_at_the_viscous_rate():
    # u = (sin kx cos ky, −cos kx sin ky) is a steady Euler flow (u·∇ω = 0), so with
    # ν alone ω(t) = ω(0) e^{−2νk²t}; the integrating factor makes this exact.
    n, k, nu, t = 32, 2, 0.05, 1.5
    x, y = grid(n)
    uv = torch.stack((torch.sin(k * x) * torch.cos(k * y), -torch.cos(k * x) * torch.sin(k * y)))
    w0 = vorticity(uv)
    assert torch.allclose(w0, 2 * k * torch.sin(k * x) * torch.sin(k * y), atol=1e-12)
    solver = NavierStokes2d(n, viscosity=nu, drag=0.0, forcing=None, dtype=F64)
    w = solver.advance(w0[None], t)[0]
    decay = math.exp(-2 * nu * k**2 * t)
    assert (w - w0 * decay).abs().max() < 1e-12
    assert (velocity_from_vorticity(w) - uv * decay).abs().max() < 1e-12


def test_velocity_is_divergence_free():
    n = 32
    solver = NavierStokes2d(n, viscosity=1e-2, drag=0.1, forcing=kolmogorov_forcing(n, dtype=F64), dtype=F64)
    w = solver.advance(band_limited(2, n, 8), 0.5)
    for uv in (solver.velocity(solver.to_spectral(w)), velocity_from_vorticity(w)):
        assert divergence(uv).abs().max() < 1e-12 * uv.abs().max()
    assert torch.allclose(vorticity(velocity_from_vorticity(w)), w - w.mean((-2, -1), keepdim=True), atol=1e-10)


def test_forced_flow_reaches_a_steady_energy():
    # Re = 100 on 32² (fast); energy E = ½⟨|u|²⟩ from the system's prior. The energy
    # balance dE/dt = ⟨f·u⟩ − ν⟨|∇u|²⟩ − 2αE with ⟨f·u⟩ ≤ f_rms √(2E) bounds the steady
    # state by E ≤ f_rms² / (2α²) = 25 for f = (sin 4y, 0), α = 0.1.
    n = 32
    solver = NavierStokes2d(n, viscosity=1e-2, drag=0.1, forcing=kolmogorov_forcing(n, dtype=F64), cfl=0.8, dtype=F64)
    flow = KolmogorovFlow(resolution=n, size=16)
    w = flow.prior_vorticity(2, torch.Generator().manual_seed(0), dtype=F64)
    energy = []
    for _ in range(40):
        w = solver.advance(w, 1.0)
        energy.append(0.5 * velocity_from_vorticity(w).square().sum(-3).mean().item())
    early, late = sum(energy[20:30]) / 10, sum(energy[30:40]) / 10
    assert abs(early - late) < 0.05 * late
    assert 0.1 < max(energy) < 25.0
    assert torch.isfinite(w).all()


def test_time_step_is_fourth_order():
    n = 32
    force = kolmogorov_forcing(n, dtype=F64)
    w0 = band_limited(1, n, 6) * 5

    def run(cfl):
        return NavierStokes2d(n, 1e-2, 0.1, force, cfl=cfl, dtype=F64).advance(w0, 0.5)

    ref = run(0.05)
    e1, e2 = ((run(c) - ref).norm().item() for c in (0.8, 0.4))
    assert 10 < e1 / e2 < 24  # 2⁴ = 16 for a fourth-order scheme


def test_operators_stay_differentiable_after_inference_mode():
    # cached spectral constants first built under inference_mode must still serve autograd
    flow = KolmogorovFlow(resolution=48, size=24, burn_in=1)
    with torch.inference_mode():
        flow.simulate(1, 2)
        vorticity(torch.randn(1, 2, 24, 24))
    x = torch.randn(1, 2, 24, 24, requires_grad=True)
    (grad,) = torch.autograd.grad(vorticity(x).sum() + flow.transition(x).square().sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


# ------------------------------------------------------------------ coarse graining


def test_coarsening_commutes_with_spectral_derivatives():
    # Block averaging is a convolution with a box, then sampling; the convolution
    # commutes with ∂x, ∂y, and the samples of a field band-limited below the coarse
    # Nyquist (|k| < 8 for 64² → 16²) determine it exactly. Hence, to round-off:
    # coarsen(∂f) = ∂(coarsen f), so a divergence-free band-limited velocity stays
    # divergence-free; and refine is the exact inverse of coarsen on such fields.
    n, r = 64, 4
    uv = velocity_from_vorticity(band_limited(3, n, n // r // 2))
    coarse = coarsen(uv, r)
    assert coarse.shape == (3, 2, 16, 16)
    assert torch.allclose(coarsen(vorticity(uv), r), vorticity(coarse), atol=1e-12)
    assert divergence(coarse).abs().max() < 1e-12
    assert torch.allclose(refine(coarse, r), uv, atol=1e-12)
    c = band_limited(2, 16, 8, seed=1)
    assert torch.allclose(coarsen(refine(c, r), r), c, atol=1e-12)


def test_coarsened_turbulence_is_nearly_divergence_free():
    # Modes above the coarse Nyquist alias under block averaging, so a flow that has them
    # is only nearly divergence-free once coarsened: rms(∇·u) / rms(ω) ≪ 1. (On the
    # 256² → 64² Re = 1000 states this ratio is about 0.02.)
    uv = KolmogorovFlow(resolution=64, size=32, burn_in=5).simulate(1, 1, seed=0, device="cpu")[:, 0].double()
    ratio = divergence(uv).square().mean().sqrt() / vorticity(uv).square().mean().sqrt()
    assert ratio < 0.15


# ------------------------------------------------------------------ the system


def test_simulate_shape_progress_and_reproducibility():
    flow = make_system("kolmogorov", resolution=32, size=16, burn_in=4)
    assert isinstance(flow, KolmogorovFlow) and KolmogorovFlow(**flow.params).params == flow.params
    assert flow.state_shape == (2, 16, 16) and flow.variable_names == ["u", "v"]
    calls = []
    x = flow.simulate(2, 3, seed=0, progress=lambda done, total: calls.append((done, total)))
    assert x.shape == (2, 3, 2, 16, 16) and x.dtype == torch.float32
    assert torch.isfinite(x).all()
    assert calls[-1] == (7, 7) and len(calls) == 7
    assert torch.equal(x, flow.simulate(2, 3, seed=0))
    assert not torch.equal(x, flow.simulate(2, 3, seed=1))
    with pytest.raises(InterruptedError):
        flow.simulate(2, 3, seed=0, should_stop=lambda: True)
    # the CFL speed floor fixes the step count: a trajectory does not depend on its batch
    assert torch.allclose(flow.simulate(1, 3, seed=0)[0], x[0], atol=1e-5)
    mean, scale = flow.normalization()
    assert flow.normalize(x).shape == x.shape and torch.all(scale > 0) and torch.all(mean == 0)


def test_transition_of_coarse_states_is_close_to_the_simulation():
    flow = KolmogorovFlow(resolution=64, size=32, burn_in=10)
    x = flow.simulate(1, 3, seed=0)[0]
    y = flow.transition(x[:-1])
    assert y.shape == x[1:].shape and torch.isfinite(y).all()
    # one-step error of the approximate coarse transition vs. the change of the state
    assert (y - x[1:]).norm() < 0.3 * (x[1:] - x[:-1]).norm()
    noisy = KolmogorovFlow(resolution=64, size=32, noise=0.5)
    gen = torch.Generator().manual_seed(0)
    assert not torch.equal(noisy.transition(x[:1], gen), noisy.transition(x[:1]))


# ------------------------------------------------------------------ the U-Net


def randomised_unet(**kwargs):
    net = UNet2d(5, (2, 16, 16), channels=(8, 16, 32), emb=16, **kwargs).double()
    with torch.no_grad():  # undo the zero initialisations so every path carries signal
        for p in net.parameters():
            if not p.any():
                p.normal_(0.0, 0.05)
    return net


def test_unet_shape_and_input_gradient():
    net = build_network({"name": "unet", "channels": (8, 16, 32), "emb": 16}, 5, (2, 16, 16))
    x = torch.randn(3, 5, 2, 16, 16)
    assert net(x, torch.rand(3)).shape == x.shape
    assert not net(x, torch.rand(3)).any()  # zero-initialised output
    net = randomised_unet()
    x = torch.randn(3, 5, 2, 16, 16, dtype=F64, requires_grad=True)
    (grad,) = torch.autograd.grad(net(x, torch.rand(3, dtype=F64)).square().sum(), x)
    assert grad.shape == x.shape and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_unet_is_equivariant_to_circular_shifts_along_x():
    net = randomised_unet()
    x, t = torch.randn(2, 5, 2, 16, 16, dtype=F64), torch.rand(2, dtype=F64)
    out = net(x, t)
    for shift in (4, 8):  # multiples of the total downsampling 2² (three levels)
        assert torch.allclose(net(x.roll(shift, dims=-2), t), out.roll(shift, dims=-2), atol=1e-10)
    # along y the forcing channel sin(4y) is fixed: a shift that moves it changes the output
    assert not torch.allclose(net(x.roll(2, dims=-1), t), out.roll(2, dims=-1), atol=1e-6)


def test_unet_under_bf16_autocast():
    net = UNet2d(5, (2, 32, 32), channels=(8, 16, 32), emb=16)
    x = torch.randn(2, 5, 2, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = net(x, torch.rand(2))
    assert y.shape == x.shape and y.dtype == x.dtype and torch.isfinite(y).all()


def _mirror(x, n):
    m = x.flip(-2).roll(n // 8, dims=-1).clone()
    m[..., 0, :, :] = -m[..., 0, :, :]
    return m


def test_augmentation_symmetries_commute_with_the_dynamics():
    system = KolmogorovFlow(resolution=64, size=32)
    x = system.prior(3, torch.Generator().manual_seed(0))
    for _ in range(3):
        x = system.transition(x)
    after = system.transition(x)
    scale = (after - x).abs().max()
    # the mirror x → −x, u → −u needs the quarter-period shift along y; without it, it is no symmetry
    assert (_mirror(after, 32) - system.transition(_mirror(x, 32))).abs().max() < 1e-4 * scale
    plain = after.flip(-2).clone()
    plain[:, 0] = -plain[:, 0]
    assert (plain - system.transition(x.flip(-2) * torch.tensor([-1.0, 1.0])[:, None, None])).abs().max() > 0.1 * scale
    assert (after.roll(5, dims=-2) - system.transition(x.roll(5, dims=-2))).abs().max() < 1e-4 * scale


def test_augment_applies_one_symmetry_per_window():
    system = KolmogorovFlow(resolution=64, size=32)
    x = torch.randn(64, 5, 2, 32, 32, generator=torch.Generator().manual_seed(1))
    out = system.augment(x.clone(), torch.Generator().manual_seed(2))
    mirrored = 0
    for a, b in zip(x, out):
        found = [m for m in (False, True) for s in range(32)
                 if torch.equal((_mirror(a, 32) if m else a).roll(s, dims=-2), b)]
        assert len(found) == 1
        mirrored += found[0]
    assert 10 < mirrored < 54  # about half the windows are mirrored
