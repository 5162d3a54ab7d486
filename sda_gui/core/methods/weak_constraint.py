"""Weak-constraint 4D-Var over the window, as an ensemble of randomised maximum-likelihood analyses.

Strong-constraint 4D-Var (``variational``) controls the first state only, so its
trajectory is a model trajectory and its cost grows ever more rugged as the window
lengthens over a chaotic system. Weak-constraint 4D-Var controls every state of the
window and lets each step depart from the model by an error of std ``s`` per entry:

    J(x) = ½ ‖B^{-1/2} (normalize(x_1) − u_b)‖²
         + ½ Σ_i ‖(h_i(x_i) − y_i) / σ_i‖²
         + ½ Σ_{i<L} ‖x_{i+1} − f(x_i)‖² / s²,      s² = q² + s_f²,

with ``f`` the system's deterministic step, ``s_f`` its own transition noise
(``transition_std``: Lorenz-63's stochastic step, 0 on Lorenz-96) and ``q`` a model
error allowed on top (needed where ``s_f = 0``: the smaller ``q``, the closer to the
strong constraint and the stiffer the cost). ``u_b`` and ``B`` are the climatology's
mean and covariance on the first state (``variational.background_from_draws``), the
prior knowledge every method of this package gets.

Ensemble (randomise-then-optimise, "RML"): member ``k`` minimises ``J`` with its own
perturbed background ``u_b + B^{1/2} ε``, observations ``y_i + σ_i ε`` and model
``f(x_i) + s ε``; for a linear model and Gaussian errors the minimisers are exact
draws of the posterior. All members are minimised at once by the batched L-BFGS of
``variational`` (one curvature history and line search per member).

Start: the cost has local minima where the window is long, so each member starts from
the trajectory of one member of an LETKF run on the same observations (a filter's
analyses: close to the observations where they are dense, the background in between).

Measured on the Lorenz-96 and Lorenz-63 benchmark rows in ``docs/benchmarks.md``
("Weak-constraint 4D-Var"): the defaults below come from there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from .base import Method, MethodError, MethodResult, RunContext
from .common import climatology, observed_states
from .local import LETKF
from .registry import register_method
from .variational import background_from_draws, minimise

__all__ = ["WeakConstraint4DVar", "WeakConstraintCost", "refine"]

#: climatology draws for the background of a field (each one is a solver's burn-in)
FIELD_BACKGROUND = 32

class WeakConstraintCost:
    """The batched cost ``Σ_k J_k(v_k)`` of ``n`` perturbed weak-constraint 4D-Vars.

    ``v`` (n, L·d): each member's whole trajectory, flattened, physical units;
    ``backgrounds`` (n, d): each member's (perturbed) background, normalised;
    ``ys[i]`` (n, m_i): each member's observations of state ``i``;
    ``model_noise`` (n, L − 1, d): each member's perturbation of the model's steps.
    """

    def __init__(self, system, obs, background, backgrounds, ys: dict, model_noise, model_std: float, length: int):
        self.system, self.obs, self.background = system, obs, background
        self.backgrounds, self.ys, self.model_noise = backgrounds, ys, model_noise
        self.model_std, self.length = float(model_std), int(length)
        self.state_shape = tuple(system.state_shape)
        self.inv_std = {i: 1.0 / obs.std(i) for i in obs.indices}

    def states(self, v: torch.Tensor) -> torch.Tensor:
        return v.reshape(len(v), self.length, *self.state_shape)

    def __call__(self, v: torch.Tensor, observed=None) -> torch.Tensor:
        """Per-member costs ``(n,)`` (``observed`` is unused: every observation counts)."""
        x = self.states(v)
        n = len(x)
        u1 = self.system.normalize(x[:, 0]).reshape(n, -1)
        per = 0.5 * self.background.whiten(u1 - self.backgrounds).square().sum(-1)
        for i in self.obs.indices:
            r = (self.obs.h(i, x[:, i]) - self.ys[i]) * self.inv_std[i]
            per = per + 0.5 * r.square().sum(-1)
        if self.length > 1:
            flat = x[:, :-1].reshape(n * (self.length - 1), *self.state_shape)
            step = self.system.transition(flat).reshape(x[:, 1:].shape)
            r = (x[:, 1:] - step - self.model_noise) / self.model_std
            per = per + 0.5 * r.reshape(n, -1).square().sum(-1)
        return per


@register_method
class WeakConstraint4DVar(Method):
    name = "wc4dvar"
    title = "WC 4D-Var"
    family = "variational"

    @dataclass
    class Settings:
        #: model error std q allowed per step and entry, physical units, on top of the system's own
        #: transition noise (the two add in variance); a deterministic system needs q > 0
        model_error: float = 0.02
        #: outer L-BFGS iterations (each up to 10 inner iterations)
        iterations: int = 100
        #: perturbed members (randomised maximum likelihood); off: every member minimises the same cost
        rml: bool = True
        #: climatology draws for the background mean and covariance of the first state
        background: int = 256

    @classmethod
    def default_settings(cls, system):
        if len(system.state_shape) > 1:
            # fields: each evaluation steps a solver for every state of every member, and each
            # climatology draw a burn-in (as 4dvar's defaults for fields; accuracy not measured)
            return cls.Settings(iterations=10, background=FIELD_BACKGROUND)
        return cls.Settings()

    @classmethod
    def check_settings(cls, s, system) -> None:
        if s.model_error < 0:
            raise MethodError("wc4dvar: model_error must be ≥ 0")
        if s.iterations < 1:
            raise MethodError("wc4dvar: iterations must be ≥ 1")
        if s.background < 2:
            raise MethodError("wc4dvar: background must be ≥ 2 climatology draws")
        if s.model_error == 0 and float(getattr(system, "transition_std", lambda: 0.0)()) <= 0:
            raise MethodError("wc4dvar: this system's step is deterministic, so model_error must be > 0 "
                              "(0 would be the strong constraint: use 4dvar)")

    def run(self, ctx: RunContext) -> MethodResult:
        s = self.settings
        if ctx.n_members < 2:
            raise MethodError("wc4dvar starts from an LETKF run, which needs at least 2 members")
        total = ctx.length + s.iterations

        # the start: an LETKF run with its defaults (its steps are the first part of the progress)
        progress = None
        if ctx.progress is not None:
            def progress(done, _total, estimate=None):
                ctx.progress(done, total, estimate)

        start_ctx = RunContext(system=ctx.system, observation=ctx.observation, n_members=ctx.n_members,
                               device=ctx.device, seed=ctx.seed, progress=progress, should_stop=ctx.should_stop,
                               generator=ctx.generator)
        start = LETKF(LETKF.default_settings(ctx.system)).run(start_ctx).members
        members, diagnostics = refine(ctx, start, s.model_error, s.iterations, rml=s.rml, background_draws=s.background,
                                      done=ctx.length, total=total)
        return MethodResult(members, diagnostics)


def refine(ctx: RunContext, start: torch.Tensor, model_error: float, iterations: int, rml: bool = True,
           background_draws: Optional[int] = None, done: int = 0, total: int = 0,
           alternative: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, dict]:
    """Each member of ``start`` ``(N, L, *state_shape)`` minimised to its own perturbed weak-constraint cost.

    With ``alternative`` (same shape), member ``k``'s cost is also minimised from
    ``alternative[k]`` and the lower of the two minima is kept (the cost is multimodal on long
    or sparsely observed windows). Returns the members (float32, CPU) and diagnostics. Progress
    goes to ``ctx.step`` as ``done + outer iteration`` of ``total`` (default ``done + iterations``);
    a cancel stops it within one cost evaluation. Draws its perturbations from ``ctx.generator``,
    and ``background_draws`` climatology states (default 256, ``FIELD_BACKGROUND`` for fields).
    """
    n, length, shape = ctx.n_members, ctx.length, ctx.state_shape
    total = total or done + iterations
    d = math.prod(shape)
    dtype = torch.float32 if len(shape) > 1 else torch.float64
    model_std = math.sqrt(model_error ** 2 + float(getattr(ctx.system, "transition_std", lambda: 0.0)()) ** 2)
    gen = ctx.generator
    if background_draws is None:
        background_draws = 256 if len(shape) == 1 else FIELD_BACKGROUND
    draws = climatology(ctx, background_draws, dtype=dtype)
    u_draws = ctx.system.normalize(draws).reshape(len(draws), d)
    background = background_from_draws(u_draws, diagonal=not (len(shape) == 1 and len(draws) >= 2 * d))
    obs = observed_states(ctx, dtype=dtype)

    def noise(*size):
        return torch.randn(size, generator=gen, device=ctx.device, dtype=dtype)

    backgrounds = background.mean.expand(n, d).clone()
    ys = {i: obs.y(i).expand(n, -1).clone() for i in obs.indices}
    model_noise = torch.zeros((n, max(length - 1, 0), *shape), device=ctx.device, dtype=dtype)
    if rml:
        backgrounds = backgrounds + background.apply(noise(n, d))
        for i in obs.indices:
            ys[i] = ys[i] + obs.std(i) * noise(n, obs.count(i))
        model_noise = model_std * noise(n, max(length - 1, 0), *shape)
    starts = [start] if alternative is None else [start, alternative]
    copies = len(starts)
    # candidate c·n + k minimises member k's cost from starts[c][k]
    cost = WeakConstraintCost(ctx.system, obs, background, backgrounds.repeat(copies, 1),
                              {i: y.repeat(copies, 1) for i, y in ys.items()},
                              model_noise.repeat(copies, *([1] * (model_noise.ndim - 1))), model_std, length)
    v = torch.cat([x.to(ctx.device, dtype).reshape(n, -1) for x in starts])

    def report(outer):
        estimate = cost.states(v) if ctx.progress is not None else None
        ctx.step(done + outer, total, estimate)

    counts = minimise(cost, v, obs.indices, iterations, report, ctx.check_stop, "batched")
    if counts["outer"] < iterations:   # converged early: the remaining steps are done
        ctx.step(total, total)
    with torch.no_grad():
        per = torch.nan_to_num(cost(v), nan=math.inf).reshape(copies, n)
        best = per.argmin(0)
        x = cost.states(v).reshape(copies, n, length, *shape)[best, torch.arange(n, device=ctx.device)]
        per = per.min(0).values
        residual = 0.0
        if length > 1:
            step = ctx.system.transition(x[:, :-1].reshape(-1, *shape)).reshape(x[:, 1:].shape)
            residual = float((x[:, 1:] - step).square().mean().sqrt())
    m = max(1, sum(obs.count(i) for i in obs.indices))
    diagnostics = {"evaluations": counts["evaluations"], "outer_iterations": counts["outer"],
                   "cost_per_observation": float(2.0 * per.mean() / m), "model_error_std": model_std,
                   "step_residual": residual}
    if alternative is not None:
        diagnostics["kept_alternative"] = int((best == 1).sum())
    return x.float().cpu(), diagnostics
