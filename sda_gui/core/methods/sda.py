"""Score-based data assimilation (SDA) behind the method interface.

The posterior ``p(x_{1:L} | y)`` is sampled by the reverse diffusion of a
trained local score model, guided by the likelihood score (SDA, DPS or MMPS);
see ``core.assimilation`` and ``core.diffusion.sampler``. The members are the
sampler's independent samples; ``ctx.progress`` receives the denoised estimate
after every step.

``record = R > 0`` keeps x(t) and x̂(t) of the first ``R`` samples at every step
(they are independent draws, so the first are as good as any) in
``diagnostics["trajectory"]`` (a ``sampler.Trajectory``), within the sampler's
memory bound (``RECORD_MAX_BYTES``: longer runs are thinned to evenly spaced steps).

``dynamics_std = q > 0`` (SDA guidance, a system with a transition) also guides x̂ by
the system's own step, −½ Σ ‖x̂_{i+1} − f(x̂_i)‖² / (q² + s_f² + (σ/μ)² G s²) with
``G = dynamics_gamma`` (``diffusion.guidance.dynamics``); off by default except on
Lorenz-96 (below).

``refine_iterations = K > 0`` (a system with a transition) then minimises, from each sample,
that sample's own randomised weak-constraint 4D-Var cost (perturbed observations, background and
model steps; ``weak_constraint.refine``, model error ``refine_model_error`` per step on top of the
system's transition noise, reached in ``refine_stages`` stages of a continuation in q; a
deterministic vector system such as Lorenz-96 defaults to q = 0.005 in 4 stages) for ``K`` L-BFGS
iterations of 10 per stage, from the sample and (with
``refine_from_filter``, the default) from a member of an LETKF run, keeping the lower minimum: the
learned prior offers a basin of the multimodal cost, the filter another, and the known dynamics
sharpen the better one to within ``q``.
Off by default; measured in ``docs/benchmarks.md`` ("Weak-constraint 4D-Var").

``fold``: how the network's window outputs make the trajectory's noise estimate
(``local_score.fold_windows``): ``"centre"``, each state from the window centred on it (the
paper's composition), ``"mean"``, the mean over every window holding it, or ``"interior"``, the
mean over those holding it away from their two edges.

Per-system defaults (``SYSTEM_DEFAULTS``, measured with ``python -m sda_gui.bench_classical
--methods sda`` on its Lorenz-63 and Lorenz-96 rows, see ``docs/benchmarks.md``): the
Langevin step τ = 1 instead of 0.25. The corrections do much of the work on these
systems: with τ = 1 the posterior-mean RMSE of 64 steps is about that of 256 steps at
τ = 0.25, and on dense observations the spread matches the error instead of being too
small. On Lorenz-96 the dynamics term is on too (q = 0.05, G = 0.3): it lowered the RMSE
of every Lorenz-96 row with both shipped models (by 6–15 %) and that of small models trained
in minutes, and costs nothing more per step on dense observations (every window is
differentiated anyway) and up to 1.7× on sparse ones; below 32 steps its G grows
(``guidance.dynamics.gamma_for_steps``) so that short runs stay stable, and above 64 it falls
(to G/6 at 256 steps), firmer where smaller steps allow it. It is turned off, rather than
refused, when the user picks another guidance (``fit_defaults``). Every system keeps the centre
fold: the mean fold lowers the RMSE of the large Lorenz-96 model with its calibration intact, but
spreads the small CPU model's samples too wide, and on Lorenz-63 it differentiates every window
where the centre fold needs a few (``docs/benchmarks.md``, "The mean fold"). Other systems
(Kolmogorov flow, data systems) keep the generic values, not measured there.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..assimilation import assimilate
from ..diffusion.local_score import FOLDS
from ..diffusion.sampler import Sampler, TrajectoryRecorder
from .base import Method, MethodError, MethodResult, RunContext
from .local import LETKF
from .registry import register_method
from .weak_constraint import continuation_defaults, refine, stage_count, transition_std

__all__ = ["SDA", "SYSTEM_DEFAULTS"]

GUIDANCES = ("sda", "dps", "mmps")

#: settings that differ from ``SDA.Settings`` for a system (by its registry name)
SYSTEM_DEFAULTS = {"lorenz63": {"tau": 1.0}, "lorenz96": {"tau": 1.0, "dynamics_std": 0.05}}


@register_method
class SDA(Method):
    name = "sda"
    title = "SDA"
    family = "diffusion"
    needs_model = True

    @dataclass
    class Settings:
        steps: int = 64
        corrections: int = 1
        guidance: str = "sda"
        tau: float = 0.25
        gamma: float = 1e-2
        cg_iterations: int = 3
        #: corrections of the steps that end below t = 0.125 (−1: ``corrections`` there too)
        final_corrections: int = -1
        #: model error std q of one step of the system's own transition in the guidance
        #: (``guidance.dynamics``; 0: off, the default) and its γ
        dynamics_std: float = 0.0
        dynamics_gamma: float = 0.3
        #: how the windows' noise estimates make the trajectory's (``local_score.fold_windows``):
        #: ``"centre"`` (each state from the window centred on it), ``"mean"`` (over every window
        #: that holds it) or ``"interior"`` (over those that hold it away from their edges)
        fold: str = "centre"
        #: samples whose x(t) and x̂(t) are recorded at every step (0: none, the default)
        record: int = 0
        #: outer L-BFGS iterations per stage of a weak-constraint refinement of every sample (0: off, the
        #: default; ``weak_constraint.refine``), the model error q it allows per step, and the stages of
        #: its continuation in q (the last at q; a deterministic vector system: q = 0.005 in 4 stages)
        refine_iterations: int = 0
        refine_model_error: float = 0.02
        refine_stages: int = 1
        #: also minimise each member's refinement cost from an LETKF member and keep the lower minimum
        refine_from_filter: bool = True

    @classmethod
    def default_settings(cls, system) -> "SDA.Settings":
        refinement = {f"refine_{key}": value for key, value in continuation_defaults(system).items()}
        return cls.Settings(**{**refinement, **SYSTEM_DEFAULTS.get(getattr(system, "name", None), {})})

    @classmethod
    def fit_defaults(cls, s, system, given: set) -> None:
        # Lorenz-96's default dynamics term belongs to the SDA guidance and a known transition:
        # a user who picks DPS or MMPS (or a data-built system) gets it off, not a refusal.
        if "dynamics_std" not in given and (s.guidance != "sda" or not getattr(system, "has_dynamics", True)):
            s.dynamics_std = 0.0

    @classmethod
    def check_settings(cls, s, system) -> None:
        if s.steps < 1:
            raise MethodError("sda: steps must be ≥ 1")
        if s.corrections < 0:
            raise MethodError("sda: corrections must be ≥ 0")
        if s.guidance not in GUIDANCES:
            raise MethodError(f"sda: guidance must be one of {', '.join(GUIDANCES)}, got '{s.guidance}'")
        if s.tau <= 0:
            raise MethodError("sda: tau must be > 0")
        if s.gamma < 0:
            raise MethodError("sda: gamma must be ≥ 0")
        if s.final_corrections < -1:
            raise MethodError("sda: final corrections must be ≥ 0 (or −1: as many as the other steps)")
        if s.dynamics_std < 0 or s.dynamics_gamma < 0:
            raise MethodError("sda: dynamics std and dynamics γ must be ≥ 0")
        if s.dynamics_std > 0 and s.guidance != "sda":
            raise MethodError(f"sda: dynamics consistency works with the SDA guidance only, not {s.guidance}")
        if s.dynamics_std > 0 and not getattr(system, "has_dynamics", True):
            raise MethodError("sda: dynamics consistency needs the system's transition; this system was built "
                              "from data and has none")
        if s.fold not in FOLDS:
            raise MethodError(f"sda: fold must be one of {', '.join(FOLDS)}, got '{s.fold}'")
        if s.cg_iterations < 1:
            raise MethodError("sda: cg_iterations must be ≥ 1")
        if s.record < 0:
            raise MethodError("sda: record must be ≥ 0")
        if s.refine_iterations < 0:
            raise MethodError("sda: refine iterations must be ≥ 0")
        if s.refine_model_error < 0:
            raise MethodError("sda: refine model error must be ≥ 0")
        if s.refine_stages < 1:
            raise MethodError("sda: refine stages must be ≥ 1")
        if s.refine_iterations > 0 and not getattr(system, "has_dynamics", True):
            raise MethodError("sda: the refinement needs the system's transition; this system was built from data "
                              "and has none")
        if (s.refine_iterations > 0 and s.refine_model_error == 0
                and transition_std(system) <= 0):
            raise MethodError("sda: this system's step is deterministic, so the refinement's model error must be > 0")

    def run(self, ctx: RunContext) -> MethodResult:
        s = self.settings
        recorder = None
        if s.record:
            recorder = TrajectoryRecorder(range(min(s.record, ctx.n_members)))
            try:   # refused before any work when the bound cannot hold it
                recorder.plan(s.steps, (ctx.n_members, ctx.length, *ctx.state_shape))
            except ValueError as exc:
                raise MethodError(f"sda: {exc}") from None
        final = s.final_corrections if s.final_corrections >= 0 else None
        stages = stage_count(s.refine_model_error, s.refine_stages)
        total = s.steps + stages * s.refine_iterations
        progress = ctx.progress
        if ctx.progress is not None and s.refine_iterations:
            def progress(done, _steps, estimate=None):   # the sampler's steps, then the refinement's
                ctx.progress(done, total, estimate)
        samples = assimilate(ctx.model, ctx.observation, ctx.n_members, steps=s.steps, corrections=s.corrections,
                             guidance=s.guidance, tau=s.tau, gamma=s.gamma, device=ctx.device, seed=ctx.seed,
                             progress=progress, should_stop=ctx.should_stop, cg_iterations=s.cg_iterations,
                             recorder=recorder, final_corrections=final, fold=s.fold,
                             dynamics=(ctx.system, s.dynamics_std, s.dynamics_gamma) if s.dynamics_std > 0 else None)
        calls = Sampler(ctx.model, steps=s.steps, corrections=s.corrections, final_corrections=final).network_calls()
        diagnostics = {"network_calls_per_step": calls / s.steps, "k": ctx.model.k}
        if s.refine_iterations:
            alternative = None
            if s.refine_from_filter and ctx.n_members > 1:
                filter_ctx = RunContext(system=ctx.system, observation=ctx.observation, n_members=ctx.n_members,
                                        device=ctx.device, seed=ctx.seed + 1, should_stop=ctx.should_stop)
                alternative = LETKF(LETKF.default_settings(ctx.system)).run(filter_ctx).members
            samples, refined = refine(ctx, samples, s.refine_model_error, s.refine_iterations, done=s.steps,
                                      total=total, alternative=alternative, stages=stages)
            diagnostics.update({f"refine_{k}": v for k, v in refined.items()})
        if recorder is not None:
            diagnostics["trajectory"] = recorder.trajectory
        return MethodResult(samples, diagnostics)
