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

Continuation in q (``stages``): a small q is what a deterministic truth asks for, but
it makes the cost stiff and its basins narrow, so stage ``s`` of ``S`` minimises with

    q_s = q · 2^(S − 1 − s),     s = 0 … S − 1,

each from the previous stage's minimum: the large-q stages settle the trajectory's
shape where the cost is smooth, the last one sharpens it at q. A member keeps one
draw ``ε`` of its model-step perturbation throughout, scaled by each stage's
``s_s = (q_s² + s_f²)^½``, so the last stage is the RML draw of the final cost.

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

__all__ = ["WeakConstraint4DVar", "WeakConstraintCost", "refine", "continuation_defaults", "stage_count",
           "transition_std"]

#: climatology draws for the background of a field (each one is a solver's burn-in)
FIELD_BACKGROUND = 32
#: a deterministic vector system's defaults: q and the continuation's stages reaching it
#: (q = 0.04, 0.02, 0.01, 0.005), measured on the Lorenz-96 rows of docs/benchmarks.md
DETERMINISTIC_MODEL_ERROR, DETERMINISTIC_STAGES = 0.005, 4

class WeakConstraintCost:
    """The batched cost ``Σ_k J_k(v_k)`` of ``n`` perturbed weak-constraint 4D-Vars.

    ``v`` (n, L·d): each member's whole trajectory, flattened, physical units;
    ``backgrounds`` (n, d): each member's (perturbed) background, normalised;
    ``ys[i]`` (n, m_i): each member's observations of state ``i``;
    ``step_noise`` (n, L − 1, d): each member's perturbation of the model's steps in units of
    ``model_std`` (standard normal draws; zeros without perturbation), so that a continuation
    can change ``model_std`` and keep each member's draw.
    """

    def __init__(self, system, obs, background, backgrounds, ys: dict, step_noise, model_std: float, length: int):
        self.system, self.obs, self.background = system, obs, background
        self.backgrounds, self.ys, self.step_noise = backgrounds, ys, step_noise
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
            r = (x[:, 1:] - step) / self.model_std - self.step_noise
            per = per + 0.5 * r.reshape(n, -1).square().sum(-1)
        return per


def transition_std(system) -> float:
    """The system's own transition noise ``s_f`` (0 for a deterministic step or none declared)."""
    return float(getattr(system, "transition_std", lambda: 0.0)())


def stage_count(model_error: float, stages: int) -> int:
    """The continuation's stages actually run: one where q is 0 (halving it changes nothing)."""
    return stages if model_error > 0 else 1


def continuation_defaults(system) -> dict:
    """``{"model_error", "stages"}`` for a deterministic vector system (the continuation down to a
    small q), else ``{}``: a stochastic step is a model error already, smooth at any q, and a
    field's evaluations are too costly for four stages (neither measured with a continuation)."""
    if (len(getattr(system, "state_shape", ())) == 1 and getattr(system, "has_dynamics", True)
            and transition_std(system) <= 0):
        return {"model_error": DETERMINISTIC_MODEL_ERROR, "stages": DETERMINISTIC_STAGES}
    return {}


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
        #: outer L-BFGS iterations per stage (each up to 10 inner iterations)
        iterations: int = 100
        #: perturbed members (randomised maximum likelihood); off: every member minimises the same cost
        rml: bool = True
        #: climatology draws for the background mean and covariance of the first state
        background: int = 256
        #: continuation in q: stage s of S minimises with q·2^(S−1−s), ``iterations`` each
        stages: int = 1

    @classmethod
    def default_settings(cls, system):
        if len(system.state_shape) > 1:
            # fields: each evaluation steps a solver for every state of every member, and each
            # climatology draw a burn-in (as 4dvar's defaults for fields; accuracy not measured)
            return cls.Settings(iterations=10, background=FIELD_BACKGROUND)
        return cls.Settings(**continuation_defaults(system))

    @classmethod
    def check_settings(cls, s, system) -> None:
        if s.model_error < 0:
            raise MethodError("wc4dvar: model_error must be ≥ 0")
        if s.iterations < 1:
            raise MethodError("wc4dvar: iterations must be ≥ 1")
        if s.background < 2:
            raise MethodError("wc4dvar: background must be ≥ 2 climatology draws")
        if s.stages < 1:
            raise MethodError("wc4dvar: stages must be ≥ 1")
        if s.model_error == 0 and transition_std(system) <= 0:
            raise MethodError("wc4dvar: this system's step is deterministic, so model_error must be > 0 "
                              "(0 would be the strong constraint: use 4dvar)")

    def run(self, ctx: RunContext) -> MethodResult:
        s = self.settings
        if ctx.n_members < 2:
            raise MethodError("wc4dvar starts from an LETKF run, which needs at least 2 members")
        stages = stage_count(s.model_error, s.stages)
        total = ctx.length + stages * s.iterations

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
                                      done=ctx.length, total=total, stages=stages)
        return MethodResult(members, diagnostics)


def refine(ctx: RunContext, start: torch.Tensor, model_error: float, iterations: int, rml: bool = True,
           background_draws: Optional[int] = None, done: int = 0, total: int = 0,
           alternative: Optional[torch.Tensor] = None, stages: int = 1) -> tuple[torch.Tensor, dict]:
    """Each member of ``start`` ``(N, L, *state_shape)`` minimised to its own perturbed weak-constraint cost.

    ``stages`` > 1: the continuation in q of the module docstring, ``iterations`` outer
    iterations per stage (one stage where ``model_error`` is 0: halving it changes nothing).
    With ``alternative`` (same shape), member ``k``'s cost is also minimised from
    ``alternative[k]`` and the lower of the two minima is kept (the cost is multimodal on long
    or sparsely observed windows). Returns the members (float32, CPU) and diagnostics. Progress
    goes to ``ctx.step`` as ``done + outer iterations so far`` of ``total`` (default
    ``done + stages · iterations``); a cancel stops it within one cost evaluation. Draws its
    perturbations from ``ctx.generator``, and ``background_draws`` climatology states (default
    256, ``FIELD_BACKGROUND`` for fields).
    """
    n, length, shape = ctx.n_members, ctx.length, ctx.state_shape
    stages = stage_count(model_error, stages)
    total = total or done + stages * iterations
    d = math.prod(shape)
    dtype = torch.float32 if len(shape) > 1 else torch.float64
    system_std = transition_std(ctx.system)
    stds = [math.hypot(model_error * 2.0 ** (stages - 1 - stage), system_std) for stage in range(stages)]
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
    step_noise = torch.zeros((n, max(length - 1, 0), *shape), device=ctx.device, dtype=dtype)
    if rml:
        backgrounds = backgrounds + background.apply(noise(n, d))
        for i in obs.indices:
            ys[i] = ys[i] + obs.std(i) * noise(n, obs.count(i))
        step_noise = noise(n, max(length - 1, 0), *shape)
    starts = [start] if alternative is None else [start, alternative]
    copies = len(starts)
    # candidate c·n + k minimises member k's cost from starts[c][k]
    cost = WeakConstraintCost(ctx.system, obs, background, backgrounds.repeat(copies, 1),
                              {i: y.repeat(copies, 1) for i, y in ys.items()},
                              step_noise.repeat(copies, *([1] * (step_noise.ndim - 1))), stds[0], length)
    v = torch.cat([x.to(ctx.device, dtype).reshape(n, -1) for x in starts])
    counts = {"evaluations": 0, "outer": 0}
    for stage, std in enumerate(stds):
        cost.model_std = std
        base = done + stage * iterations

        def report(outer, base=base):
            estimate = cost.states(v) if ctx.progress is not None else None
            ctx.step(base + outer, total, estimate)

        last = stage == stages - 1
        stage_counts = minimise(cost, v, obs.indices, iterations, report, ctx.check_stop, "batched", final=last)
        counts = {key: counts[key] + stage_counts[key] for key in counts}
        if stage_counts["outer"] < iterations:   # converged early: the stage's remaining steps are done
            ctx.step(total if last else base + iterations, total)
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
                   "cost_per_observation": float(2.0 * per.mean() / m), "model_error_std": stds[-1],
                   "step_residual": residual, "stages": stages}
    if alternative is not None:
        diagnostics["kept_alternative"] = int((best == 1).sum())
    return x.float().cpu(), diagnostics
