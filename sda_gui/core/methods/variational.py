"""Strong-constraint 4D-Var over the window, and its ensemble of perturbed analyses (EDA).

Control: the window's first state, in the system's normalised units
``u = normalize(x_1)`` and whitened by the background: ``u = u_b + B^{1/2} v``.
The background ``u_b`` and its covariance ``B`` are the mean and covariance of
``background`` draws from the climatology (``common.climatology``), the same
prior knowledge SDA has; ``B`` is full for vector states with at least twice as
many draws as entries, and diagonal otherwise and for fields (too many entries
for a covariance from a few hundred draws). The cost

    J(v) = ½ ‖v‖² + ½ Σ_i ‖(h_i(M_{1→i}(x_1)) − y_i) / σ_i‖²,   x_1 = denormalize(u_b + B^{1/2} v)

(``= ½ (u − u_b)ᵀ B⁻¹ (u − u_b) + …``) runs the system's *deterministic*
transition ``M`` (``transition(x)``, no generator) through the window, observes
each state with ``h_i`` (mask and operator, ``common.observed_states``) and is
minimised by ``torch.optim.LBFGS`` with a strong-Wolfe line search, the
gradient by autograd through the transition. Strong constraint: the analysed
trajectory is ``M_{1→i}(x_1)``, a model trajectory; where the truth has
transition noise (Lorenz-63) no model trajectory fits all of the window.

EDA: the ``N`` members are ``N`` independent 4D-Vars, each with its own
perturbed observations ``y_i + σ_i ε`` and perturbed background
``u_b + B^{1/2} ε`` (randomise-then-optimise: for a linear model it draws exact
samples of the Gaussian posterior), batched: every cost evaluation runs all
``N`` controls at once through the sum of the ``N`` independent costs. Each
member is its own model trajectory ``M(x_1)``.

Minimiser: ``optimizer="batched"`` (the default) runs one L-BFGS per member,
vectorised (own curvature pairs, own backtracking step, all members in each
evaluation); ``"torch"`` is ``torch.optim.LBFGS`` with a strong-Wolfe line
search on the sum of the costs, whose one curvature model and step length
serve members of very different curvature badly.

Multimodality (long chaotic windows): ``start`` chooses where each member
starts (``"climatology"``: its own climatology draw, ``"background"``: its
perturbed background); ``stages > 1`` is the quasi-static continuation: the
observed states are assimilated in ``stages`` growing chunks, each
minimisation starting from the previous one's minimum and integrating only up
to the chunk's last observed state; ``restarts`` minimises each member from
that many climatology draws and keeps the lowest cost.

Measured (40 members, windows of 1.6 time units, RMSE / spread per state as
DAPPER, means over 4–8 windows; Lorenz-63 x every 8 states σ = 0.4): with one
stage many members stay in local minima (Lorenz-96 all variables every state σ = 1:
0.51 / 1.29, four stages 0.17 / 0.17; Lorenz-63: 1.15 / 2.76, four stages
0.56 / 0.40); with four stages a second restart removes most stray members
(Lorenz-63 0.73 / 1.95 → 0.56 / 0.40; Lorenz-96 every 4th variable every 4th
state 1.98 → 1.86); and the batched minimiser beats the summed one (Lorenz-63,
four stages, two restarts: torch 0.77 / 1.65). Hence the defaults for vector
states: four stages, two restarts, batched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .base import Method, MethodError, MethodResult, RunContext
from .common import climatology, observed_states
from .registry import register_method

__all__ = ["FourDVar", "Background", "background_from_draws", "FourDVarCost", "minimise"]

STARTS, OPTIMIZERS = ("climatology", "background"), ("batched", "torch")
INNER_ITERATIONS = 10   # L-BFGS iterations per outer iteration (progress, cancel; cancel also per evaluation)
FULL_B_MAX = 1024       # vector states with more entries get a diagonal B (fields always do)
HISTORY = 10            # curvature pairs each L-BFGS keeps
# an iteration lowering a member's cost by less than this fraction of itself ends its minimisation;
# looser in a continuation's early stages (only a starting point for the next)
RELATIVE_TOLERANCE, STAGE_TOLERANCE = 1e-9, 1e-6
OUTER_RELATIVE_TOLERANCE = 1e-6  # the same for torch.optim.LBFGS's summed cost over an outer iteration


@dataclass
class Background:
    """``u_b`` (d,) and ``B^{1/2}`` in normalised units: lower-triangular (d, d) or diagonal (d,)."""

    mean: torch.Tensor
    sqrt: torch.Tensor

    @property
    def diagonal(self) -> bool:
        return self.sqrt.ndim == 1

    def apply(self, v: torch.Tensor) -> torch.Tensor:
        """``B^{1/2} v`` for controls ``(n, d)``."""
        return v * self.sqrt if self.diagonal else v @ self.sqrt.T

    def whiten(self, du: torch.Tensor) -> torch.Tensor:
        """``B^{-1/2} du`` for ``(n, d)``."""
        if self.diagonal:
            return du / self.sqrt
        return torch.linalg.solve_triangular(self.sqrt, du.T, upper=False).T


def background_from_draws(u: torch.Tensor, diagonal: bool) -> Background:
    """Mean and ``B^{1/2}`` of normalised draws ``(n, d)``.

    A ridge of 10⁻⁶ of the mean variance keeps a full ``B`` positive definite
    (directions no draw explores); a diagonal ``B`` is floored at 10⁻⁶ of it.
    """
    mean = u.mean(0)
    du = u - mean
    var = du.square().sum(0) / max(len(u) - 1, 1)
    floor = 1e-6 * float(var.mean().clamp_min(1e-12))
    if diagonal:
        return Background(mean, var.clamp_min(floor).sqrt())
    cov = du.T @ du / max(len(u) - 1, 1)
    cov = cov + floor * torch.eye(len(mean), dtype=u.dtype, device=u.device)
    return Background(mean, torch.linalg.cholesky(cov))


class FourDVarCost:
    """The batched cost ``Σ_k J_k(v_k)`` of ``n`` independent 4D-Vars.

    ``backgrounds`` (n, d): each member's background (perturbed or not);
    ``ys[i]`` (n, m_i): each member's observations of state ``i``.
    """

    def __init__(self, system, obs, background: Background, backgrounds: torch.Tensor, ys: dict):
        self.system, self.obs, self.background = system, obs, background
        self.backgrounds, self.ys = backgrounds, ys
        self.state_shape = tuple(system.state_shape)
        self.inv_std = {i: 1.0 / obs.std(i) for i in obs.indices}

    def initial_state(self, v: torch.Tensor) -> torch.Tensor:
        u = self.backgrounds + self.background.apply(v)
        return self.system.denormalize(u.reshape(len(u), *self.state_shape))

    def trajectory(self, v: torch.Tensor, length: int) -> torch.Tensor:
        """``M_{1→i}(x_1)`` for ``i < length``: ``(n, length, *state_shape)``, physical units."""
        x = self.initial_state(v)
        states = [x]
        for _ in range(1, length):
            x = self.system.transition(x)
            states.append(x)
        return torch.stack(states, 1)

    def __call__(self, v: torch.Tensor, observed: list) -> torch.Tensor:
        """Per-member costs ``(n,)`` using the observed states ``observed`` (sorted)."""
        per = 0.5 * v.square().sum(-1)
        x = self.initial_state(v)
        last = observed[-1] if observed else 0
        wanted = set(observed)
        for i in range(last + 1):
            if i > 0:
                x = self.system.transition(x)
            if i in wanted:
                r = (self.obs.h(i, x) - self.ys[i]) * self.inv_std[i]
                per = per + 0.5 * r.square().sum(-1)
        return per


def _torch_lbfgs(cost: FourDVarCost, v: torch.Tensor, observed: list, iterations: int, on_iteration,
                 check_stop, counts: dict) -> None:
    """``torch.optim.LBFGS`` (strong Wolfe) on the sum of the members' costs: one shared
    curvature model and one step length for all of them."""
    v.requires_grad_(True)
    opt = torch.optim.LBFGS([v], lr=1.0, max_iter=INNER_ITERATIONS, history_size=HISTORY,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-7, tolerance_change=1e-12)

    def closure():
        if check_stop is not None:
            check_stop()
        opt.zero_grad()
        total = cost(v, observed).sum()
        counts["evaluations"] += 1
        if not torch.isfinite(total):  # a trajectory blew up: a huge finite cost makes the search back off
            v.grad = torch.zeros_like(v)
            return torch.tensor(1e30, dtype=v.dtype, device=v.device)
        total.backward()
        return total

    previous = math.inf
    for k in range(iterations):
        before = counts["evaluations"]
        loss = float(opt.step(closure).detach())
        counts["outer"] = k + 1
        if on_iteration is not None:
            on_iteration(k + 1)
        # ``step`` returns the cost at its start: one lone evaluation, or a relative change
        # below OUTER_RELATIVE_TOLERANCE over a whole outer iteration, means converged
        if counts["evaluations"] - before <= 1 or previous - loss <= OUTER_RELATIVE_TOLERANCE * abs(loss):
            break
        previous = loss
    v.requires_grad_(False)


def _batched_lbfgs(cost: FourDVarCost, v: torch.Tensor, observed: list, iterations: int, on_iteration,
                   check_stop, counts: dict, tolerance: float = RELATIVE_TOLERANCE) -> None:
    """One L-BFGS per member, vectorised: each has its own history, direction and step.

    Every evaluation runs all members at once (their costs are independent, so
    the gradient of the sum is each member's own gradient). Directions come
    from the two-loop recursion over each member's last ``HISTORY`` pairs
    (pairs with ``sᵀy ≤ 0`` are skipped); the step is a backtracking Armijo
    search per member (safeguarded quadratic interpolation; a trajectory that
    blows up counts as a failed trial). A member stops once its cost falls by
    less than ``tolerance`` of itself in one iteration, its gradient vanishes,
    or its line search fails twice in a row.
    """
    (n, d), m, zeros = v.shape, HISTORY, dict(dtype=v.dtype, device=v.device)

    def evaluate(x):
        if check_stop is not None:
            check_stop()
        counts["evaluations"] += 1
        x = x.detach().requires_grad_(True)
        f = cost(x, observed)
        bad = ~torch.isfinite(f)
        (g,) = torch.autograd.grad(f.masked_fill(bad, 0.0).sum(), x)
        bad = bad | ~torch.isfinite(g).all(1)
        return f.detach().masked_fill(bad, math.inf), g.masked_fill(bad[:, None], 0.0)

    f, g = evaluate(v)
    S, Y = torch.zeros((n, m, d), **zeros), torch.zeros((n, m, d), **zeros)
    rho, gamma = torch.zeros((n, m), **zeros), torch.ones(n, **zeros)
    fresh = torch.ones(n, dtype=torch.bool, device=v.device)   # no curvature pair yet
    failed = torch.zeros_like(fresh)
    done = ~torch.isfinite(f)                                   # a start that blows up cannot move
    slot = 0
    for k in range(iterations * INNER_ITERATIONS):
        # two-loop recursion, newest pair first; empty slots (rho = 0) are no-ops
        q = g.clone()
        order = [(slot - 1 - j) % m for j in range(m)]
        alphas = []
        for j in order:
            a = rho[:, j] * (S[:, j] * q).sum(1)
            q -= a[:, None] * Y[:, j]
            alphas.append(a)
        r = gamma[:, None] * q
        for j, a in zip(reversed(order), reversed(alphas)):
            r += S[:, j] * (a - rho[:, j] * (Y[:, j] * r).sum(1))[:, None]
        direction = -r
        slope = (g * direction).sum(1)
        uphill = slope >= 0
        direction[uphill], slope[uphill] = -g[uphill], -g[uphill].square().sum(1)
        # without curvature information the first step is scaled to unit length
        t = torch.where(fresh | uphill, (1.0 / g.norm(dim=1).clamp_min(1e-12)).clamp_max(1.0), torch.ones_like(f))
        pending = ~done
        x_new, f_new, g_new = v.clone(), f.clone(), g.clone()
        for _ in range(20):
            f_try, g_try = evaluate(v + t[:, None] * direction)
            ok = pending & (f_try <= f + 1e-4 * t * slope)
            x_new[ok] = (v + t[:, None] * direction)[ok]
            f_new[ok], g_new[ok] = f_try[ok], g_try[ok]
            pending &= ~ok
            if not pending.any():
                break
            quad = -slope * t * t / (2.0 * (f_try - f - slope * t))
            quad = torch.where(torch.isfinite(quad), quad, 0.1 * t)
            t = torch.where(pending, torch.minimum(torch.maximum(quad, 0.1 * t), 0.5 * t), t)
        moved = ~done & ~pending
        s_, y_ = x_new - v, g_new - g
        sy, yy = (s_ * y_).sum(1), y_.square().sum(1)
        keep = moved & (sy > 1e-10 * s_.norm(dim=1) * y_.norm(dim=1))
        S[:, slot] = torch.where(keep[:, None], s_, 0.0)
        Y[:, slot] = torch.where(keep[:, None], y_, 0.0)
        rho[:, slot] = torch.where(keep, 1.0 / sy.clamp_min(1e-300), 0.0)
        gamma = torch.where(keep, sy / yy.clamp_min(1e-300), gamma)
        fresh &= ~keep
        slot = (slot + 1) % m
        # a failed search forgets the member's history; the second in a row ends it
        lost = ~done & pending
        rho[lost], fresh[lost] = 0.0, True
        done |= lost & failed
        failed = lost
        converged = moved & ((f - f_new <= tolerance * f_new.abs()) | (g_new.abs().amax(1) <= 1e-8))
        done |= converged
        v.copy_(x_new)
        f, g = f_new, g_new
        if (k + 1) % INNER_ITERATIONS == 0 or done.all():
            counts["outer"] = (k + INNER_ITERATIONS) // INNER_ITERATIONS
            if on_iteration is not None:
                on_iteration(counts["outer"])
        if done.all():
            break


def minimise(cost: FourDVarCost, v: torch.Tensor, observed: list, iterations: int, on_iteration=None,
             check_stop=None, optimizer: str = "batched", final: bool = True) -> dict:
    """Minimises every member's cost over ``v`` (modified in place); returns counts.

    ``optimizer``: ``"batched"`` (one L-BFGS per member, vectorised) or ``"torch"``
    (``torch.optim.LBFGS`` on the sum of the costs). ``iterations`` outer
    iterations of ``INNER_ITERATIONS`` L-BFGS iterations each, ``on_iteration(done)``
    after every outer one; both end early once converged (the batched one to
    ``STAGE_TOLERANCE`` when not ``final``: an early stage of a continuation).
    """
    counts = {"evaluations": 0, "outer": 0}
    with torch.enable_grad():
        if optimizer == "batched":
            tolerance = RELATIVE_TOLERANCE if final else STAGE_TOLERANCE
            _batched_lbfgs(cost, v, observed, iterations, on_iteration, check_stop, counts, tolerance)
        else:
            _torch_lbfgs(cost, v, observed, iterations, on_iteration, check_stop, counts)
    return counts


@register_method
class FourDVar(Method):
    name = "4dvar"
    title = "4D-Var (EDA)"
    family = "variational"

    @dataclass
    class Settings:
        #: outer L-BFGS iterations per stage (each up to 10 inner iterations)
        iterations: int = 20
        #: an ensemble of perturbed 4D-Vars (with one member: a single unperturbed 4D-Var)
        eda: bool = True
        #: quasi-static continuation: observations assimilated in this many growing chunks
        stages: int = 1
        #: where each member's minimisation starts: "climatology" (its own draw) or "background"
        start: str = "climatology"
        #: climatology draws for the background mean and covariance
        background: int = 256
        #: minimisations per member from different climatology draws; the lowest final cost is kept
        restarts: int = 1
        #: "batched": one L-BFGS per member (vectorised); "torch": torch.optim.LBFGS on the summed cost
        optimizer: str = "batched"

    @classmethod
    def default_settings(cls, system):
        if len(system.state_shape) > 1:
            # fields: each draw and each evaluation is expensive (accuracy not measured)
            return cls.Settings(iterations=10, background=32, start="background")
        # measured on Lorenz-63 and Lorenz-96 windows of 1.6 time units (see the module docstring)
        return cls.Settings(stages=4, restarts=2)

    @classmethod
    def check_settings(cls, s, system) -> None:
        if s.iterations < 1:
            raise MethodError("4dvar: iterations must be ≥ 1")
        if s.stages < 1:
            raise MethodError("4dvar: stages must be ≥ 1")
        if s.start not in STARTS:
            raise MethodError(f"4dvar: start must be one of {', '.join(STARTS)}, got '{s.start}'")
        if s.background < 2:
            raise MethodError("4dvar: background must be ≥ 2 climatology draws")
        if s.restarts < 1:
            raise MethodError("4dvar: restarts must be ≥ 1")
        if s.optimizer not in OPTIMIZERS:
            raise MethodError(f"4dvar: optimizer must be one of {', '.join(OPTIMIZERS)}, got '{s.optimizer}'")

    def run(self, ctx: RunContext) -> MethodResult:
        s = self.settings
        n, length, shape = ctx.n_members, ctx.length, ctx.state_shape
        d = math.prod(shape)
        # fields run in float32 (their solver is costly); small states in float64
        dtype = torch.float32 if len(shape) > 1 else torch.float64
        gen = ctx.generator
        eda = bool(s.eda) and n > 1
        n_opt = n if eda else 1
        # candidates: restart r of member k is row r·n_opt + k
        n_cand = n_opt * s.restarts

        draws = climatology(ctx, max(s.background, n_cand), dtype=dtype)
        u_draws = ctx.system.normalize(draws).reshape(len(draws), d)
        # a full B needs a vector state and enough draws to estimate it (else only their span is corrected)
        full = len(shape) == 1 and d <= FULL_B_MAX and len(draws) >= 2 * d
        background = background_from_draws(u_draws, diagonal=not full)
        obs = observed_states(ctx, dtype=dtype)

        def noise(*size):
            return torch.randn(size, generator=gen, device=ctx.device, dtype=dtype)

        backgrounds = background.mean.expand(n_opt, d).clone()
        ys = {i: obs.y(i).expand(n_opt, -1).clone() for i in obs.indices}
        if eda:
            backgrounds = backgrounds + background.apply(noise(n_opt, d))
            for i in obs.indices:
                ys[i] = ys[i] + obs.std(i) * noise(n_opt, obs.count(i))
        # every restart of a member shares its perturbed background and observations
        backgrounds = backgrounds.repeat(s.restarts, 1)
        ys = {i: y.repeat(s.restarts, 1) for i, y in ys.items()}
        cost = FourDVarCost(ctx.system, obs, background, backgrounds, ys)

        # the draws are iid: each candidate starts from its own (restart 0 from the background if asked)
        v = background.whiten(u_draws[:n_cand] - backgrounds)
        if s.start == "background":
            v[:n_opt] = 0.0

        total = s.stages * s.iterations
        counts = {"evaluations": 0, "outer": 0}
        indices = obs.indices
        for stage in range(s.stages):
            chunk = indices[: math.ceil(len(indices) * (stage + 1) / s.stages)]
            base = stage * s.iterations

            def report(done, base=base):
                estimate = None
                if ctx.progress is not None:
                    with torch.no_grad():
                        estimate = cost.trajectory(v, length)[:n_opt]  # restart 0 of each member
                    if not eda:
                        estimate = estimate.expand(n, *estimate.shape[1:])
                ctx.step(base + done, total, estimate)

            stage_counts = minimise(cost, v, chunk, s.iterations, report, ctx.check_stop, s.optimizer,
                                    final=stage == s.stages - 1)
            counts["evaluations"] += stage_counts["evaluations"]
            counts["outer"] += stage_counts["outer"]
            if stage_counts["outer"] < s.iterations:  # converged early: the stage's remaining steps are done
                ctx.step((stage + 1) * s.iterations, total)

        with torch.no_grad():
            # a candidate whose trajectory blew up can never be the one kept
            per = torch.nan_to_num(cost(v, indices), nan=math.inf).reshape(s.restarts, n_opt)
            best = per.argmin(0)
            v = v.reshape(s.restarts, n_opt, d)[best, torch.arange(n_opt, device=ctx.device)]
            per = per.min(0).values
            cost = FourDVarCost(ctx.system, obs, background, backgrounds[:n_opt], {i: y[:n_opt] for i, y in ys.items()})
            members = cost.trajectory(v, length)
        if not eda:
            members = members.expand(n, *members.shape[1:])
        m = max(1, sum(obs.count(i) for i in indices))
        diagnostics = {"evaluations": counts["evaluations"], "outer_iterations": counts["outer"],
                       "cost_per_observation": float(2.0 * per.mean() / m), "eda": eda,
                       "background_covariance": "diagonal" if background.diagonal else "full"}
        return MethodResult(members.float().cpu(), diagnostics)
